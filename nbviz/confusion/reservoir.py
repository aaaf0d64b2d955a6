"""A bounded random sample of example images for every confusion-matrix cell.

Each cell keeps a uniform random sample of the inputs that landed in it
(reservoir sampling, Algorithm R), stored as small uint8 RGB thumbnails. The
total is bounded too: once many cells are occupied, every cell's reservoir
shrinks to ``max_total // occupied`` (never below one) by dropping random slots,
which keeps each sample uniform.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def thumbnails(images: torch.Tensor, size: int) -> np.ndarray:
    """``(M, C, H, W)`` or ``(M, H, W)`` images -> ``(M, h, w, 3)`` uint8, longest side <= size.

    Float images within [0, 1] are shown as they are; others (e.g. normalised
    inputs) are min-max scaled per image. One channel is grey, three are RGB,
    four drop alpha; other channel counts show the channel mean in grey.
    """
    x = images.detach()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    else:
        flat = x.flatten(1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        in_unit = (lo >= 0) & (hi <= 1)
        scale = torch.where(in_unit, torch.ones_like(hi), 1.0 / (hi - lo).clamp_min(1e-12))
        shift = torch.where(in_unit, torch.zeros_like(lo), lo)
        x = (x - shift[:, None, None, None]) * scale[:, None, None, None]
    c = x.shape[1]
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif c == 4:
        x = x[:, :3]
    elif c != 3:
        x = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    if max(h, w) > size:
        scale = size / max(h, w)
        out = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = F.interpolate(x, size=out, mode="bilinear", antialias=True, align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def check_images(inputs, n: int) -> torch.Tensor:
    """Validate optional example inputs for a batch of ``n`` samples."""
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a torch.Tensor or numpy.ndarray of images, got {type(inputs).__name__}"
        )
    if inputs.ndim not in (3, 4):
        raise ValueError(
            f"inputs must be images of shape (N, C, H, W) or (N, H, W), got shape "
            f"{tuple(inputs.shape)}"
        )
    if inputs.shape[0] != n:
        raise ValueError(
            f"inputs must hold one image per target: expected {n} images, got {inputs.shape[0]}"
        )
    if inputs.is_complex() or inputs.dtype == torch.bool:
        raise ValueError(f"inputs must be real-valued images, got dtype {inputs.dtype}")
    return inputs


class ExampleReservoir:
    """Per-cell uniform samples of thumbnails, bounded per cell and in total."""

    def __init__(self, per_cell: int = 16, max_total: int = 4096, size: int = 32, seed: int = 0):
        for name, v in (("per_cell", per_cell), ("max_total", max_total), ("size", size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.per_cell, self.max_total, self.size = per_cell, max_total, size
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.image_shape: tuple | None = None  # (C, H, W) of the first batch
        self.cap = self.per_cell
        self.seen: dict[int, int] = {}  # cell -> samples that landed in it
        self.slots: dict[int, list[np.ndarray]] = {}  # cell -> thumbnails (<= cap)

    def check(self, images: torch.Tensor) -> None:
        """Thumbnails are stacked, so every batch must have the first batch's image shape."""
        shape = tuple(images.shape[1:])
        if self.image_shape is not None and shape != self.image_shape:
            raise ValueError(
                f"inputs must keep the image shape of earlier batches {self.image_shape}, "
                f"got {shape}"
            )

    def add(self, cells: np.ndarray, images: torch.Tensor) -> None:
        """Offer a batch: ``cells[i]`` is the flat cell of ``images[i]``.

        Thumbnails are computed only for the samples that enter a reservoir."""
        cells = np.asarray(cells, dtype=np.int64)
        n = cells.shape[0]
        if n == 0:
            return
        self.image_shape = tuple(images.shape[1:])
        # Position of each sample among this batch's samples of the same cell.
        order = np.argsort(cells, kind="stable")
        sorted_cells = cells[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        rank = np.empty(n, np.int64)
        rank[order] = rank_sorted
        before = np.array([self.seen.get(int(c), 0) for c in cells], dtype=np.int64)
        count = before + rank + 1  # this sample is the count-th of its cell
        # Algorithm R: fill while count <= cap, then replace slot j ~ U[0, count).
        j = (self._rng.random(n) * count).astype(np.int64)
        slot = np.where(count <= self.cap, count - 1, j)
        take = np.flatnonzero(slot < self.cap)
        for c, k in zip(*np.unique(cells, return_counts=True), strict=True):
            self.seen[int(c)] = self.seen.get(int(c), 0) + int(k)
        if take.size == 0:
            return
        thumbs = thumbnails(images[torch.from_numpy(take)], self.size)
        for t, i in enumerate(take):  # in batch order, so later samples win
            store = self.slots.setdefault(int(cells[i]), [])
            s = int(slot[i])
            if s < len(store):
                store[s] = thumbs[t]
            else:
                store.append(thumbs[t])
        self._shrink_to_budget()

    def _shrink_to_budget(self) -> None:
        cap = max(1, min(self.per_cell, self.max_total // max(1, len(self.slots))))
        if cap >= self.cap:
            return
        self.cap = cap
        for c, store in self.slots.items():
            if len(store) > cap:
                keep = np.sort(self._rng.choice(len(store), size=cap, replace=False))
                self.slots[c] = [store[k] for k in keep]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cells (M,), images (M, h, w, 3) uint8)`` for the browser."""
        cells = [c for c, store in self.slots.items() for _ in store]
        if not cells:
            return np.zeros(0, np.int64), np.zeros((0, 1, 1, 3), np.uint8)
        images = np.stack([im for store in self.slots.values() for im in store])
        return np.asarray(cells, np.int64), images

    def __len__(self) -> int:
        return sum(len(s) for s in self.slots.values())
