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
from collections.abc import Sequence

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
        self._pending: list[tuple[int, np.ndarray]] = []  # steps waiting to fill one row

    def __len__(self) -> int:
        return self._n

    def add(self, step: int, values: Sequence[float] | np.ndarray) -> None:
        row = np.asarray(values, dtype=np.float64).reshape(self.width)
        if self._n == self.capacity and not self._pending:
            self._merge()  # before a new row starts, so every row spans `stride` steps
        self._pending.append((step, row))
        if len(self._pending) < self.stride:
            return
        steps = [s for s, _ in self._pending]
        stack = np.stack([r for _, r in self._pending])
        self._pending.clear()
        self._rows[self._n] = self._combine(stack)
        self._spans[self._n] = (steps[0], steps[-1])
        self._n += 1

    def _combine(self, stack: np.ndarray) -> np.ndarray:
        if self.reduce == "max":
            return np.nanmax(stack, axis=0) if not np.isnan(stack).all() else stack[0]
        return stack.mean(axis=0)

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

    def rebin(self, fn) -> None:
        """Apply ``fn`` (width -> width) to every row, recorded and pending (see `Bins`)."""
        self._rows[: self._n] = fn(self._rows[: self._n])
        self._pending = [(s, fn(r[None])[0]) for s, r in self._pending]


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
            # A power of two just above the first peak: later doublings stay exact.
            self.radius = 2.0 ** math.ceil(math.log2(peak)) if peak > 0 else 2.0**-20
            return 0
        doublings = 0
        while peak > self.radius:
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
        r = self.radius or 1.0
        return np.linspace(-r, r, self.bins + 1)
