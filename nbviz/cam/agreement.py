"""Agreement of class activation maps with human masks: does the map look where a person
would? The pointing game, the energy inside the mask, and the IoU of the map's top pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_tensor
from .core import CamResult, upsample


@dataclass
class Agreement:
    """Per layer and image: does the map look where the human mask is?

    ``pointing`` (L, N) bool: the map's peak lies inside the mask (the pointing
    game, without tolerance; the peak is found at the layer's own resolution
    and placed at its cell's centre, because an upsampled coarse map has flat
    tops). ``energy`` (L, N): the share of the map's total inside the mask.
    ``iou`` (L, N): intersection over union of the mask and the map's
    top-``top`` fraction of pixels (maps at the image size). ``empty`` (L, N):
    the map is zero everywhere (it scores 0 on all three: "shows nothing" is
    told apart from "looks elsewhere" by this).
    """

    layers: list[str]
    pointing: np.ndarray
    energy: np.ndarray
    iou: np.ndarray
    empty: np.ndarray
    top: float = 0.15

    def summary(self) -> str:
        """A text table of the means over images, one row per layer."""
        width = max(len("layer"), *(len(p) for p in self.layers))
        rows = [f"{'layer':<{width}}  pointing  energy  IoU@{self.top:.0%}  empty"]
        for i, p in enumerate(self.layers):
            rows.append(
                f"{p:<{width}}  {self.pointing[i].mean():8.2f}  {self.energy[i].mean():6.2f}"
                f"  {self.iou[i].mean():7.2f}  {self.empty[i].mean():5.2f}"
            )
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.summary()


def agreement(res: CamResult, masks: Any, target: int = 0, top: float = 0.15) -> Agreement:
    """Score ``res``'s maps for target column ``target`` against binary ``masks`` (N, H, W).

    >>> import torch
    >>> from nbviz.cam.core import CamResult
    >>> raw = torch.zeros(1, 1, 4, 4); raw[0, 0, 0, 0] = 1
    >>> res = CamResult("gradcam", ["l"], torch.zeros(1, 1), torch.ones(1, 1), (4, 4), {"l": raw})
    >>> mask = torch.zeros(1, 4, 4, dtype=torch.bool); mask[0, :2, :2] = True
    >>> a = agreement(res, mask)
    >>> bool(a.pointing[0, 0]), float(a.energy[0, 0])
    (True, 1.0)
    """
    if len(res.image_size) != 2:
        kind = "signals" if len(res.image_size) == 1 else "volumes"
        raise ValueError(
            f"agreement scores maps of images (H, W); these maps are of {kind} "
            f"{tuple(res.image_size)}"
        )
    n = res.targets.shape[0]
    m = check_masks(masks, n, res.image_size)
    if not 0 < top <= 1:
        raise ValueError(f"top must be a fraction in (0, 1], got {top!r}")
    flat_mask = m.flatten(1)
    k = max(1, math.ceil(top * flat_mask.shape[1]))
    H, W = res.image_size
    pointing, energy, iou, empty = [], [], [], []
    for layer in res.layers:
        raw = res.raw(layer, target)
        h, w = raw.shape[1:]
        maps = upsample(raw, res.image_size).flatten(1)
        alive = maps.amax(dim=1) > 0  # an all-zero map points nowhere
        empty.append((~alive).numpy())
        cell = raw.flatten(1).argmax(dim=1)
        py = (((cell // w).double() + 0.5) * H / h).long().clamp_(0, H - 1)
        px = (((cell % w).double() + 0.5) * W / w).long().clamp_(0, W - 1)
        pointing.append((m[torch.arange(len(m)), py, px] & alive).numpy())
        total = maps.sum(dim=1).clamp_min(1e-30)
        energy.append(((maps * flat_mask).sum(dim=1) / total * alive).numpy())
        region = torch.zeros_like(flat_mask)
        region.scatter_(1, maps.topk(k, dim=1).indices, True)
        inter = (region & flat_mask).sum(dim=1)
        union = (region | flat_mask).sum(dim=1).clamp_min(1)
        iou.append((inter / union * alive).numpy())
    return Agreement(
        layers=list(res.layers),
        pointing=np.stack(pointing),
        energy=np.stack(energy).astype(np.float32),
        iou=np.stack(iou).astype(np.float32),
        empty=np.stack(empty),
        top=top,
    )


def check_masks(masks: Any, n: int, size: tuple[int, int]) -> torch.Tensor:
    """``masks`` as an (N, H, W) bool tensor on the CPU, or a ValueError naming what's wrong."""
    masks = as_tensor(masks, "masks")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or masks.shape[0] != n or tuple(masks.shape[1:]) != tuple(size):
        raise ValueError(
            f"masks must have shape ({n}, {size[0]}, {size[1]}) like the images, got "
            f"{tuple(masks.shape)}"
        )
    return (masks.detach().cpu() > 0.5) if masks.is_floating_point() else masks.detach().cpu() != 0
