"""Where the model looked in a confusion matrix's kept examples: Grad-CAM (or another
``nbviz.cam`` method) for each example's true class and its predicted class.

Maps are computed in batches through :func:`nbviz.cam.compute`: one forward per batch
and one backward per target, so a correctly classified example (true = predicted) costs
one backward and a wrong one two. They are kept per example id, at each layer's own
resolution as uint8 (each map scaled by its own peak, as the Grad-CAM explorer sends
them), until the example leaves the matrix's sample.

>>> import torch, nbviz
>>> from nbviz.examples import SmallCNN
>>> maps = ExampleMaps(SmallCNN(num_classes=3), layers=["features.block4"])
>>> maps.compute([7], torch.rand(1, 3, 32, 32), torch.tensor([1 * 3 + 2]), num_classes=3)
>>> maps.layers, maps.maps[7].raw[0].shape  # (true class, predicted class, h, w)
(['features.block4'], (2, 2, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import int_at_least
from .._outputs import Output, check_output
from ..cam.core import METHODS, compute, quantise, resolve_layers

INPUT_BUDGET = 256 * 2**20  # bytes of kept inputs at most: fewer examples for large inputs


@dataclass
class Explained:
    """One example's maps: ``raw[l]`` is ``(2, h, w)`` uint8 for layer ``l`` (row 0 the
    true class, row 1 the predicted class), ``probs`` the model's probabilities of both."""

    raw: list[np.ndarray]
    probs: tuple[float, float]


class ExampleMaps:
    """The maps of a model for examples given by id, cell and input; see the module."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str | nn.Module] | None = None,
        method: str = "gradcam",
        *,
        output: Output = None,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if method not in METHODS:
            raise ValueError(
                f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}"
            )
        int_at_least("batch_size", batch_size)
        resolve_layers(model, layers)  # a missing layer is said now, not at the first map
        self.model, self.requested, self.method = model, layers, method
        self.output, self.batch_size = check_output(output), batch_size
        self.layers: list[str] = []  # known from the first computation
        self.maps: dict[int, Explained] = {}

    def missing(self, ids: Sequence[int]) -> list[int]:
        """The ids among ``ids`` without maps yet."""
        return [i for i in ids if i not in self.maps]

    def compute(
        self, ids: Sequence[int], inputs: torch.Tensor, cells: torch.Tensor, num_classes: int
    ) -> None:
        """Maps for examples ``ids`` (inputs ``(E, ...)``, flat cells ``true * K + predicted``)."""
        if not len(ids):
            return
        cells = torch.as_tensor(cells, dtype=torch.long)
        true, predicted = cells // num_classes, cells % num_classes
        correct = true == predicted
        # Correct examples need one target, wrong ones two: each group its own pass.
        for rows in (correct.nonzero()[:, 0], (~correct).nonzero()[:, 0]):
            if not len(rows):
                continue
            t, p = true[rows], predicted[rows]
            same = bool((t == p).all())
            targets = t[:, None] if same else torch.stack([t, p], dim=1)
            res = compute(
                self.model,
                inputs[rows],
                self.requested,
                targets=targets,
                method=self.method,
                batch_size=self.batch_size,
                output=self.output,
            )
            if self.layers and res.layers != self.layers:
                self.maps.clear()  # the model's layers changed: every old map is stale
            self.layers = list(res.layers)
            per_layer = [quantise(res.raw(layer, None)) for layer in res.layers]  # (n, T, ...)
            probs = res.probs.gather(1, targets.to(res.probs.device)).cpu().numpy()
            for j, r in enumerate(rows.tolist()):
                raw = [q[j] if not same else np.concatenate([q[j], q[j]]) for q in per_layer]
                pr = probs[j]
                self.maps[int(ids[r])] = Explained(raw, (float(pr[0]), float(pr[-1])))

    def keep_only(self, ids: Sequence[int]) -> None:
        """Forget the maps of examples no longer kept."""
        keep = set(int(i) for i in ids)
        for i in [i for i in self.maps if i not in keep]:
            del self.maps[i]

    def arrays(self, ids: Sequence[int]) -> dict[str, Any]:
        """The maps of ``ids`` (those computed) for the browser: ``ids (E,)``, ``maps``
        (flat uint8: for each layer, ``(E, 2, h, w)`` from its ``offset``), ``index`` (one
        ``{layer, h, w, offset}`` per layer) and ``probs (E, 2)``. Images only: maps are
        ``(h, w)``."""
        done = [i for i in ids if i in self.maps]
        chunks, index, offset = [], [], 0
        for li, layer in enumerate(self.layers):
            block = np.stack([self.maps[i].raw[li] for i in done]) if done else None
            h, w = block.shape[2:] if block is not None else (1, 1)
            index.append({"layer": layer, "h": int(h), "w": int(w), "offset": offset})
            if block is not None:
                chunks.append(block.reshape(-1))
                offset += block.size
        return {
            "ids": np.asarray(done, np.int64),
            "maps": np.concatenate(chunks) if chunks else np.zeros(0, np.uint8),
            "index": index,
            "probs": np.asarray([self.maps[i].probs for i in done], np.float32).reshape(-1, 2),
        }


def examples_within_budget(input_shape: tuple[int, ...], itemsize: int, wanted: int) -> int:
    """How many inputs of this shape fit :data:`INPUT_BUDGET` (at least 1, at most ``wanted``)."""
    size = int(np.prod(input_shape)) * itemsize
    return max(1, min(wanted, INPUT_BUDGET // max(size, 1)))
