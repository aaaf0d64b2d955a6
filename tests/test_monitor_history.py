"""The monitor's bounded histories, directly: `Bins` (histogram edges whose range doubles
exactly) and `RowHistory` (rows merged pairwise, visibly, to stay within a capacity)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from nbviz.monitor.history import Bins, RowHistory


def test_bins_fit_and_merge_equal_histc_over_the_final_range():
    b = Bins(16)
    assert b.fit(float("nan")) == 0 and b.radius is None
    assert b.fit(0.3) == 0 and b.radius == 0.5
    assert b.fit(0.5) >= 0 and b.radius >= 0.5
    g = torch.Generator().manual_seed(0)
    for bins in (8, 16, 64):
        b = Bins(bins)
        v = (torch.rand(3000, generator=g) * 2 - 1) * 0.7
        v = torch.cat([v, torch.tensor([-0.7, 0.7, 0.0])])
        b.fit(float(v.abs().max()))
        r0 = b.radius
        assert r0 > 0.7 and math.log2(r0) == int(math.log2(r0))
        counts = torch.histc(v, bins=bins, min=-r0, max=r0).numpy()[None]
        doublings = b.fit(5.0)
        assert doublings == 3 and b.radius == r0 * 8
        merged = b.merge(counts, doublings)
        direct = torch.histc(v, bins=bins, min=-b.radius, max=b.radius).numpy()
        np.testing.assert_array_equal(merged[0], direct)
        assert merged.sum() == counts.sum() == v.numel()
        np.testing.assert_allclose(b.edges(), np.linspace(-b.radius, b.radius, bins + 1))


def test_bins_doubling_is_exact_for_a_value_at_the_first_peak():
    """A first peak that is a power of two (a clipped or saturated value) stays in the
    same bin after the range doubles as a histogram over the final range puts it."""
    v = torch.tensor([-0.25, 0.1, 0.5, 1.0])
    b = Bins(8)
    b.fit(1.0)
    counts = torch.histc(v, bins=8, min=-b.radius, max=b.radius).numpy()
    d = b.fit(3.0)
    direct = torch.histc(v, bins=8, min=-b.radius, max=b.radius).numpy()
    np.testing.assert_array_equal(b.merge(counts, d), direct)


def test_row_history_merges_pairwise_with_spans_and_stride():
    h = RowHistory(width=3, capacity=4)
    values = np.arange(30, dtype=float)[:, None] * [1, -1, 2]
    for step in range(30):
        h.add(step * 10, values[step])
        assert len(h) <= 4
    # 30 steps at capacity 4: stride 8, rows of steps 0-7, 8-15, 16-23; 24-29 still pending.
    assert h.stride == 8 and len(h) == 3
    assert h.steps().tolist() == [[0, 70], [80, 150], [160, 230]]
    np.testing.assert_allclose(h.rows(), [values[i : i + 8].mean(axis=0) for i in (0, 8, 16)])
    h.add(300, values[0])
    h.add(310, values[1])
    assert len(h) == 4 and h.steps()[-1].tolist() == [240, 310]
    m = RowHistory(width=2, capacity=2, reduce="max")
    for step, row in enumerate([[1, 5], [3, np.nan], [2, 0], [0, 1]]):
        m.add(step, row)
    assert m.stride == 2 and m.steps().tolist() == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(m.rows(), [[3, np.nan], [2, 1]])  # NaN merged visibly
    for step, row in enumerate([[9, -1], [4, np.nan], [0, 0], [1, 1]], start=4):
        m.add(step, row)
    assert m.stride == 4 and m.steps().tolist() == [[0, 3], [4, 7]]
    np.testing.assert_array_equal(m.rows(), [[3, np.nan], [9, np.nan]])  # and combined
    # Everything recorded is in view: every step lies in exactly one span (or is pending).
    big = RowHistory(width=1, capacity=8)
    for step in range(1000):
        big.add(step, [step])
    spans = big.steps()
    assert spans[0, 0] == 0 and (spans[1:, 0] == spans[:-1, 1] + 1).all()
    assert (spans[:, 1] - spans[:, 0] + 1 == big.stride).all()
    np.testing.assert_allclose(big.rows()[:, 0], spans.mean(axis=1))  # mean of 0..n


def test_row_history_rebin_applies_to_rows_and_pending_and_validates():
    h = RowHistory(width=4, capacity=2)
    for step in range(3):  # one merged row of stride 2, one pending step
        h.add(step, [1, 2, 3, 4])
    assert h.stride == 2 and len(h) == 1
    h.rebin(lambda c: c[..., ::-1].copy())
    h.add(3, [4, 3, 2, 1])
    np.testing.assert_array_equal(h.rows(), [[4, 3, 2, 1]] * 2)
    with pytest.raises(ValueError, match="capacity must be an even int >= 2"):
        RowHistory(2, capacity=3)
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'max'"):
        RowHistory(2, reduce="median")
    with pytest.raises(ValueError, match="bins must be a multiple of 4"):
        Bins(10)


def test_row_history_memory_is_bounded_by_capacity_not_steps():
    """The steps waiting to fill a row must not pile up: the stride grows with the run."""
    h = RowHistory(width=8, capacity=8)
    row = np.ones(8)
    for step in range(2000):
        h.add(step, row)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        peak = 0
        for step in range(2000, 60000):
            h.add(step, row)
            if step % 1000 == 0:
                peak = max(peak, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    assert h.stride >= 8192 and len(h) <= 8
    assert peak < 20_000, f"{peak} bytes held for a history of 8 rows of 8 values"
