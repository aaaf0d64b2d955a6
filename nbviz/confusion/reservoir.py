"""A bounded random sample of example images for every confusion-matrix cell.

Each cell keeps a uniform random sample of the inputs that landed in it
(reservoir sampling), stored as small uint8 RGB thumbnails. The total is
bounded too: once many cells are occupied, every cell's reservoir shrinks to
``max_total // occupied`` (never below one) by dropping random slots, which
keeps each sample uniform.

Sampling is Li's Algorithm L ("Reservoir-sampling algorithms of time
complexity O(n(1 + log(N/n)))", ACM TOMS 1994): each cell knows which of its
samples is the next to enter, so a batch costs one count of its cells, and
samples that do not enter (almost all, once a cell is full) cost nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import int_at_least
from .._images import thumbnails


class ExampleReservoir:
    """Per-cell uniform samples of thumbnails, bounded per cell and in total."""

    def __init__(self, per_cell: int = 16, max_total: int = 4096, size: int = 32, seed: int = 0):
        for name, v in (("per_cell", per_cell), ("max_total", max_total), ("size", size)):
            int_at_least(name, v)
        self.per_cell, self.max_total, self.size = per_cell, max_total, size
        self.keep_inputs = False
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget every kept example and every cell's count."""
        self.image_shape: tuple | None = None  # (C, H, W) of the first batch
        self.cap = self.per_cell
        self.seen: dict[int, int] = {}  # cell -> samples that landed in it
        self.slots: dict[int, list[np.ndarray]] = {}  # cell -> thumbnails (<= cap)
        # Algorithm L's state of a full cell: the 1-based count of its next sample to enter,
        # and W, the largest of the kept samples' (virtual) uniform keys.
        self.next_entry: dict[int, int] = {}
        self._w: dict[int, float] = {}
        # Beside each thumbnail: (id, input, mask); input and mask only with keep_inputs.
        self.kept: dict[int, list[tuple[int, torch.Tensor | None, torch.Tensor | None]]] = {}
        self._next_id = getattr(self, "_next_id", 0)  # ids never repeat, not even after reset

    def check(self, images: torch.Tensor) -> None:
        """Thumbnails are stacked, so every batch must have the first batch's image shape."""
        shape = tuple(images.shape[1:])
        if self.image_shape is not None and shape != self.image_shape:
            raise ValueError(
                f"inputs must keep the image shape of earlier batches {self.image_shape}, "
                f"got {shape}"
            )

    def add(
        self,
        cells: list[int] | np.ndarray,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> bool:
        """Offer a batch: ``cells[i]`` is the flat cell of ``images[i]`` (and ``masks[i]``,
        kept with the input when ``keep_inputs``). Returns whether a thumbnail entered (only
        then do the kept examples change).

        Thumbnails are computed only for the samples that enter a reservoir."""
        order = cells if isinstance(cells, list) else np.asarray(cells, dtype=np.int64).tolist()
        if not order:
            return False
        self.image_shape = tuple(images.shape[1:])
        seen, nxt, cap = self.seen, self.next_entry, self.cap
        where: dict[int, list[int]] | None = None  # cell -> its samples' batch indices
        take: list[tuple[int, int, int]] = []  # (batch index, cell, slot)
        counts: dict[int, int] = {}
        for c in order:
            counts[c] = counts.get(c, 0) + 1
        for c, k in counts.items():
            before = seen.get(c, 0)
            seen[c] = total = before + k
            entry = nxt.get(c, before + 1)  # (a cell not yet full takes every sample)
            if entry > total:
                continue  # the usual case once a cell is full
            if where is None:
                where = {}
                for i, cell in enumerate(order):
                    where.setdefault(cell, []).append(i)
            while entry <= total:
                slot = entry - 1 if entry <= cap else int(self._rng.random() * cap)
                take.append((where[c][entry - before - 1], c, slot))
                entry = self._following(c, entry)
            nxt[c] = entry
        if not take:
            return False
        take.sort()  # batch order: of two samples that enter one slot, the later stays
        index = [i for i, _, _ in take]
        if len(index) == len(order):
            chosen = images
        elif images.is_cpu and images.dtype in _NUMPY_READY:  # numpy's indexing: ~10x cheaper
            chosen = torch.from_numpy(images.detach().numpy()[index])
        else:
            chosen = images[torch.tensor(index, device=images.device)]
        thumbs = thumbnails(chosen, self.size)
        inputs = picked_masks = None
        if self.keep_inputs:  # copies: the caller's batch is not held
            inputs = chosen.detach().to("cpu", copy=True)
            if masks is not None:
                picked_masks = masks.detach().to("cpu", copy=True)[index]
        for t, (_, c, s) in enumerate(take):
            store, extra = self.slots.setdefault(c, []), self.kept.setdefault(c, [])
            item = (
                self._next_id,
                None if inputs is None else inputs[t].clone(),
                None if picked_masks is None else picked_masks[t],
            )
            self._next_id += 1
            if s < len(store):
                store[s], extra[s] = thumbs[t], item
            else:
                store.append(thumbs[t])
                extra.append(item)
        self._shrink_to_budget()
        return True

    def _following(self, cell: int, entry: int) -> int:
        """The count of the sample to enter after the one counted ``entry`` (Algorithm L:
        W shrinks by U**(1/cap) at each entry, and the gap to the next is geometric in W)."""
        cap = self.cap
        if entry < cap:
            return entry + 1  # still filling
        rand = self._rng.random
        w = (self._w.get(cell, 1.0) if entry > cap else 1.0) * (1.0 - rand()) ** (1.0 / cap)
        self._w[cell] = w
        return entry + 1 + _gap(1.0 - rand(), w)

    def _shrink_to_budget(self) -> None:
        cap = max(1, min(self.per_cell, self.max_total // max(1, len(self.slots))))
        if cap >= self.cap:
            return
        self.cap = cap
        for c, store in self.slots.items():
            if len(store) > cap:
                keep = np.sort(self._rng.choice(len(store), size=cap, replace=False))
                self.slots[c] = [store[k] for k in keep]
                self.kept[c] = [self.kept[c][k] for k in keep]
            n = self.seen[c]
            if n >= cap:  # full at the new size: W is the cap-th smallest of n uniform keys
                self._w[c] = w = float(self._rng.beta(cap, n - cap + 1))
                self.next_entry[c] = n + 1 + _gap(1.0 - self._rng.random(), w)

    def load(
        self,
        cells: np.ndarray,
        images: np.ndarray,
        inputs: np.ndarray | None = None,
        masks: np.ndarray | None = None,
    ) -> None:
        """Keep exactly these thumbnails (``images[i]`` in cell ``cells[i]``, with its input
        and mask where recorded), as recorded elsewhere: for showing them, not for sampling
        on (their cells' counts are unknown)."""
        self.reset()
        for i, c in enumerate(np.asarray(cells).tolist()):
            self.slots.setdefault(c, []).append(images[i])
            item = (
                self._next_id,
                None if inputs is None else torch.from_numpy(np.asarray(inputs[i])),
                None if masks is None else torch.from_numpy(np.asarray(masks[i])),
            )
            self.kept.setdefault(c, []).append(item)
            self._next_id += 1

    def ids(self) -> np.ndarray:
        """The kept examples' ids, in the order of :meth:`arrays`."""
        return np.asarray([k[0] for extra in self.kept.values() for k in extra], np.int64)

    def inputs(self) -> list[tuple[int, int, torch.Tensor, torch.Tensor | None]]:
        """``(id, cell, input, mask)`` of every kept example whose input was kept."""
        return [
            (i, c, x, m) for c, extra in self.kept.items() for i, x, m in extra if x is not None
        ]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cells (M,), images (M, h, w, 3) uint8)`` for the browser."""
        cells = [c for c, store in self.slots.items() for _ in store]  # (kept: same order)
        if not cells:
            return np.zeros(0, np.int64), np.zeros((0, 1, 1, 3), np.uint8)
        images = np.stack([im for store in self.slots.values() for im in store])
        return np.asarray(cells, np.int64), images

    def recorded(self) -> dict[str, np.ndarray]:
        """What a run directory records: ``cells`` and ``images`` as :meth:`arrays`, and,
        where every kept example has them, ``inputs`` and ``masks`` stacked."""
        cells, images = self.arrays()
        out = {"cells": cells, "images": images}
        kept = [k for extra in self.kept.values() for k in extra]
        if kept and all(x is not None for _, x, _ in kept):
            out["inputs"] = torch.stack([x for _, x, _ in kept]).numpy()
            if all(m is not None for _, _, m in kept):
                out["masks"] = torch.stack([m for _, _, m in kept]).numpy()
        return out

    def __len__(self) -> int:
        return sum(len(s) for s in self.slots.values())


_NUMPY_READY = (torch.float32, torch.float64, torch.uint8)


def _gap(u: float, w: float) -> int:
    """Samples skipped before the next entry: geometric with success probability ``w``,
    from one uniform ``u`` in (0, 1]."""
    if w >= 1.0:
        return 0
    return int(math.log(u) / math.log1p(-w))
