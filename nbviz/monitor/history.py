"""Bounded histories: rows over steps that merge visibly instead of dropping.

A `RowHistory` keeps at most ``capacity`` rows. Each row covers ``stride``
consecutive recorded steps (its values are their mean, or maximum); when the
rows fill up, neighbours merge pairwise and the stride doubles, so memory is
fixed and the whole run stays in view at a coarser grain. `Bins` is a
histogram with a fixed number of bins over [-R, R] whose range doubles when a
value falls outside it: bins then merge pairwise, exactly, in every row
already recorded.

>>> h = RowHistory(width=2, capacity=4)
>>> for step in range(10):
...     h.add(step, [step, 2 * step])
>>> h.stride, h.steps().tolist()
(4, [[0, 3], [4, 7]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


class RowHistory:
    """Rows of ``width`` values, one per ``stride`` recorded steps, at most ``capacity``."""

    def __init__(self, width: int, capacity: int = 256, reduce: str = "mean") -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even int >= 2, got {capacity!r}")
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
        self.width, self.capacity, self.reduce = width, capacity, reduce
        self.stride = 1
        self._rows = np.zeros((capacity, width), dtype=np.float64)
        self._spans = np.zeros((capacity, 2), dtype=np.int64)  # first and last step of a row
        self._n = 0
        # Steps waiting to fill one row, as a running sum (or max) and a count: constant
        # memory however long the run (a list of them would grow with the stride).
        self._acc = np.zeros(width, dtype=np.float64)
        self._count = 0
        self._first = 0  # first step of the row being filled
        # Called with (step, row) for every row added, before merging (a run log's tap).
        self.on_add: Callable[[int, np.ndarray], None] | None = None

    def __len__(self) -> int:
        return self._n

    def add(self, step: int, values: Sequence[float] | np.ndarray) -> None:
        """Record the row of ``step`` (steps come in increasing order)."""
        row = np.asarray(values, dtype=np.float64).reshape(self.width)
        if self.on_add is not None:
            self.on_add(step, row)
        if self._n == self.capacity and not self._count:
            self._merge()  # before a new row starts, so every row spans `stride` steps
        if not self._count:
            self._acc[:], self._first = row, step
        elif self.reduce == "max":
            # A NaN in any merged step shows in the row (np.maximum propagates it, as the
            # mean does; nanmax would hide it).
            np.maximum(self._acc, row, out=self._acc)
        else:
            self._acc += row
        self._count += 1
        if self._count < self.stride:
            return
        self._rows[self._n] = self._acc if self.reduce == "max" else self._acc / self._count
        self._spans[self._n] = (self._first, step)
        self._n += 1
        self._count = 0

    def _merge(self) -> None:
        half = self.capacity // 2
        rows = self._rows.reshape(half, 2, self.width)
        self._rows[:half] = rows.max(axis=1) if self.reduce == "max" else rows.mean(axis=1)
        spans = self._spans.reshape(half, 2, 2)
        self._spans[:half, 0], self._spans[:half, 1] = spans[:, 0, 0], spans[:, 1, 1]
        self._n = half
        self.stride *= 2

    def rows(self) -> np.ndarray:
        """(rows, width): the merged rows, oldest first (steps not yet making a row excluded)."""
        return self._rows[: self._n].copy()

    def steps(self) -> np.ndarray:
        """(rows, 2): the first and last step each row covers."""
        return self._spans[: self._n].copy()

    def state(self) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """Everything it holds, as plain ints and arrays (a run log's checkpoint)."""
        ints = {"stride": self.stride, "n": self._n, "count": self._count, "first": self._first}
        arrays = {"rows": self.rows(), "spans": self.steps(), "acc": self._acc.copy()}
        return ints, arrays

    def load(self, ints: dict[str, int], arrays: dict[str, np.ndarray]) -> None:
        """Become the history that `state` described (same width and capacity)."""
        n = int(ints["n"])
        self.stride, self._n = int(ints["stride"]), n
        self._count, self._first = int(ints["count"]), int(ints["first"])
        self._rows[:n], self._spans[:n] = arrays["rows"], arrays["spans"]
        self._acc[:] = arrays["acc"]

    def rebin(self, fn) -> None:
        """Apply ``fn`` (width -> width) to every row, recorded and pending (see `Bins`)."""
        self._rows[: self._n] = fn(self._rows[: self._n])
        if self._count:  # a sum of rows: fn must be linear, as `Bins.merge` is
            self._acc[:] = fn(self._acc[None])[0]


class Bins:
    """Histogram edges over [-R, R] with ``bins`` bins; R doubles to take in larger values."""

    def __init__(self, bins: int = 64) -> None:
        if bins < 4 or bins % 4:
            raise ValueError(f"bins must be a multiple of 4, got {bins!r}")
        self.bins = bins
        self.radius: float | None = None

    def fit(self, peak: float) -> int:
        """Make the range cover ``peak`` (max |value|); returns how many times it doubled."""
        if not math.isfinite(peak):
            return 0
        if self.radius is None:
            # A power of two strictly above the first peak: later doublings stay exact, and
            # a peak that is itself a power of two is inside the range, not on its upper
            # edge (where torch.histc's closed interval would put it in the last bin, and
            # a doubling in another bin than a histogram over the new range gives).
            self.radius = 2.0 ** (math.floor(math.log2(peak)) + 1) if peak > 0 else 2.0**-20
            return 0
        doublings = 0
        while peak >= self.radius:  # strictly inside: see above
            self.radius *= 2
            doublings += 1
        return doublings

    def merge(self, counts: np.ndarray, doublings: int) -> np.ndarray:
        """Counts of rows binned over the old range, re-binned after ``doublings`` doublings:
        old bins (2k, 2k+1) become new bin bins/4 + k; the outer quarters are empty."""
        for _ in range(doublings):
            q = self.bins // 4
            merged = counts.reshape(*counts.shape[:-1], self.bins // 2, 2).sum(axis=-1)
            out = np.zeros_like(counts)
            out[..., q : q + self.bins // 2] = merged
            counts = out
        return counts

    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges over [-radius, radius]."""
        r = self.radius or 1.0
        return np.linspace(-r, r, self.bins + 1)
