"""Histograms over time: one row of bin fractions per recorded step, per (layer, kind).

Each (layer, kind) pair, kind being "weights", "gradients" or "activations", has its own
symmetric range (`history.Bins`) that doubles exactly when a larger value arrives, merging
the rows kept so far, and its own bounded history (`history.RowHistory`). Rows are
fractions of the values binned, so rows of tensors of any size compare.

>>> import torch
>>> h = ValueHistograms(bins=8, capacity=4)
>>> f = h.fractions(("fc", "weights"), [torch.tensor([-0.5, 0.1, 0.2, 0.9])])
>>> h.add(("fc", "weights"), 0, f)
True
>>> h.rows[("fc", "weights")][1].rows().sum(axis=1).tolist()  # a row sums to 1
[1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .history import Bins, RowHistory

Key = tuple[str, str]  # (layer path, kind)


class ValueHistograms:
    """The histograms of every (layer, kind) recorded so far.

    Args:
        bins: bins per histogram (a multiple of 4: a doubling merges pairs into the middle
            half).
        capacity: rows kept per history before older ones merge pairwise.
        seed: seed of the generator that picks where a sample of a large tensor starts
            (its own: training's random numbers stay as they are).
    """

    def __init__(self, bins: int = 64, capacity: int = 256, seed: int = 0) -> None:
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 4 or bins % 4:
            raise ValueError(f"bins must be an int >= 4 and a multiple of 4, got {bins!r}")
        self.bins, self.capacity = bins, capacity
        # (layer, kind) -> (its range, its rows; None until a first finite value arrives)
        self.rows: dict[Key, tuple[Bins, RowHistory | None]] = {}
        self._sampler = torch.Generator().manual_seed(seed)
        # Called with (key, step, radius, fractions) for every row added (a run log's tap):
        # the radius the row was binned over, so a reader re-merges older rows as here.
        self.on_add: Callable[[Key, int, float, np.ndarray], None] | None = None

    def fractions(self, key: Key, tensors: list[torch.Tensor], sample: int | None = None) -> Any:
        """The finite values' histogram (fractions) over the range of ``key``, which doubles
        (re-binning the rows) to take them in; None if there is no finite value.

        With ``sample``, at most that many values, drawn uniformly, are binned (the range
        still takes in every value).
        """
        if len(tensors) == 1:
            flat = tensors[0].reshape(-1).float()  # a view when it is already float32
        else:
            flat = torch.cat([t.reshape(-1).float() for t in tensors])
        if flat.numel() == 0:
            return None
        lo, hi = torch.aminmax(flat)  # one pass; NaN and +-Inf show in the extremes
        if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
            flat = flat[torch.isfinite(flat)]
            if flat.numel() == 0:
                return None
            lo, hi = torch.aminmax(flat)
        peak = max(-float(lo), float(hi))
        if sample is not None and flat.numel() > sample:
            # A systematic sample: every k-th value from a random start, a view of the
            # tensor (drawing 2**18 random indices cost as much as binning every value).
            # k shares no factor with the size of one item, so the sample visits every
            # channel and position equally.
            k = -(-flat.numel() // sample)  # ceil
            item = flat.numel() // len(tensors[0]) if tensors[0].ndim else 1
            while math.gcd(k, item) != 1:
                k += 1
            start = int(torch.randint(k, (), generator=self._sampler))
            flat = flat[start::k]
        if key not in self.rows:
            self.rows[key] = (Bins(self.bins), None)
        bins, rows = self.rows[key]
        doublings = bins.fit(peak)
        if rows is None:
            rows = RowHistory(bins.bins, self.capacity)
            self.rows[key] = (bins, rows)
        elif doublings:
            rows.rebin(lambda c: bins.merge(c, doublings))
        r = bins.radius
        counts = torch.histc(flat, bins=bins.bins, min=-r, max=r).cpu().numpy()
        return counts / max(1, flat.numel())  # fractions: rows of any size compare

    def add(self, key: Key, step: int, fractions: np.ndarray | None) -> bool:
        """Append a row that `fractions` made for ``key`` (None: nothing); whether one was."""
        if fractions is None:
            return False
        bins, rows = self.rows[key]
        assert rows is not None and bins.radius is not None  # fractions() made them
        if self.on_add is not None:
            self.on_add(key, step, bins.radius, fractions)
        rows.add(step, fractions)
        return True

    def replay_state(
        self, key: Key, radius: float, ints: dict[str, int], arrays: dict[str, np.ndarray]
    ) -> None:
        """Take one histogram as a checkpoint holds it (its range and its rows' state)."""
        bins, rows = Bins(self.bins), RowHistory(self.bins, self.capacity)
        bins.radius = radius
        rows.load(ints, arrays)
        self.rows[key] = (bins, rows)

    def replay(self, key: Key, step: int, radius: float, fractions: np.ndarray) -> None:
        """Add a row that another process binned over ``radius`` (a run log's reader): older
        rows merge exactly as they did where it was recorded."""
        if key not in self.rows:
            self.rows[key] = (Bins(self.bins), RowHistory(self.bins, self.capacity))
        bins, rows = self.rows[key]
        assert rows is not None
        if bins.radius is None:
            bins.radius = radius
        elif radius > bins.radius:
            doublings = round(math.log2(radius / bins.radius))
            bins.radius = radius
            rows.rebin(lambda c: bins.merge(c, doublings))
        rows.add(step, fractions)

    def strides(self) -> dict[Key, int]:
        """``key -> steps per row`` of every histogram with a row."""
        return {key: rows.stride for key, (_, rows) in self.rows.items() if rows is not None}

    def snapshot(self) -> dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``key -> (bin edges, rows, steps)`` of every histogram with a row."""
        return {
            key: (bins.edges(), rows.rows(), rows.steps())
            for key, (bins, rows) in self.rows.items()
            if rows is not None
        }
