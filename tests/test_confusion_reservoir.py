"""Example reservoirs: bounded and uniform (thumbnails: test_images.py)."""

import numpy as np
import pytest
import torch

from nbviz.confusion.reservoir import ExampleReservoir


def tagged(ids):
    """uint8 images (N, 3, 2, 2) whose first two channels encode their id."""
    ids = np.asarray(ids)
    x = np.zeros((len(ids), 3, 2, 2), np.uint8)
    x[:, 0] = (ids // 256)[:, None, None]
    x[:, 1] = (ids % 256)[:, None, None]
    return torch.from_numpy(x)


def ids_of(thumbs):
    return thumbs[:, 0, 0, 0].astype(int) * 256 + thumbs[:, 0, 0, 1].astype(int)


def test_fills_in_order_then_stays_bounded():
    r = ExampleReservoir(per_cell=4, max_total=100, size=8, seed=0)
    r.add(np.zeros(3, int), tagged([0, 1, 2]))
    assert sorted(ids_of(np.stack(r.slots[0]))) == [0, 1, 2]
    for start in range(3, 200, 7):
        ids = np.arange(start, start + 7)
        r.add(np.zeros(7, int), tagged(ids))
    assert len(r.slots[0]) == 4 and r.seen[0] == 3 + 7 * len(range(3, 200, 7))


def test_sample_is_uniform():
    # Each of 40 items should be kept with probability 4/40 = 0.1.
    hits = np.zeros(40)
    trials = 1500
    for seed in range(trials):
        r = ExampleReservoir(per_cell=4, max_total=100, size=8, seed=seed)
        for chunk in np.array_split(np.arange(40), 5):  # batches, incl. several per cell
            r.add(np.zeros(len(chunk), int), tagged(chunk))
        hits[ids_of(np.stack(r.slots[0]))] += 1
    freq = hits / trials
    # binomial std = sqrt(.1 * .9 / 1500) ~ 0.0077; 5 sigma band
    assert np.all(np.abs(freq - 0.1) < 0.04), freq
    # first and last items are not favoured
    assert abs(freq[:10].mean() - freq[-10:].mean()) < 0.02


def keep_frequencies(trials: int, offer) -> np.ndarray:
    """How often each of 40 items (ids 0-39 of cell 0) was kept, over seeded trials."""
    hits = np.zeros(40)
    for seed in range(trials):
        r = offer(seed)
        hits[ids_of(np.stack(r.slots[0]))] += 1
    return hits / trials


def test_sample_stays_uniform_through_whole_batches_and_a_shrinking_budget():
    """Forty samples of one cell in one batch; or twenty, then a second cell that halves
    every reservoir (budget 8 over two cells), then twenty more: every sample is kept
    with the same probability (8/40, then 4/40)."""

    def one_batch(seed):
        r = ExampleReservoir(per_cell=8, max_total=100, size=8, seed=seed)
        r.add(np.zeros(40, int), tagged(np.arange(40)))
        return r

    def shrinking(seed):
        r = ExampleReservoir(per_cell=8, max_total=8, size=8, seed=seed)
        r.add(np.zeros(20, int), tagged(np.arange(20)))
        r.add(np.array([1]), tagged([1000]))  # a second cell: each keeps 4 now
        for chunk in np.array_split(np.arange(20, 40), 3):
            r.add(np.zeros(len(chunk), int), tagged(chunk))
        assert r.cap == 4 and len(r.slots[0]) == 4
        return r

    for offer, p in ((one_batch, 0.2), (shrinking, 0.1)):
        freq = keep_frequencies(2000, offer)
        sigma = np.sqrt(p * (1 - p) / 2000)
        assert np.all(np.abs(freq - p) < 5 * sigma), (offer.__name__, freq)
        assert abs(freq[:20].mean() - freq[20:].mean()) < 6 * sigma / np.sqrt(20)


def test_same_seed_same_sample_and_full_cells_cost_no_draws():
    """Deterministic for a seed; once a cell is full, a batch whose samples do not enter
    leaves the random stream untouched (Algorithm L draws only at entries)."""
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 3, size=int(rng.integers(1, 40))) for _ in range(300)]
    kept = []
    for _ in range(2):
        r = ExampleReservoir(per_cell=4, max_total=100, size=8, seed=7)
        first = 0
        for cells in batches:
            r.add(cells, tagged(np.arange(first, first + len(cells))))
            first += len(cells)
        kept.append({c: list(ids_of(np.stack(s))) for c, s in r.slots.items()})
        assert r.seen == {c: int((np.concatenate(batches) == c).sum()) for c in range(3)}
    assert kept[0] == kept[1]
    state = r._rng.bit_generator.state
    entry = r.next_entry[0]
    skip = entry - r.seen[0] - 1  # samples of cell 0 that will not enter (here: hundreds)
    assert skip > 0
    assert not r.add(np.zeros(skip, int), tagged(np.arange(skip)))
    assert r._rng.bit_generator.state == state and r.next_entry[0] == entry
    assert r.add(np.zeros(1, int), tagged([9999]))  # the next one enters


def test_total_budget_shrinks_every_cell():
    r = ExampleReservoir(per_cell=16, max_total=64, size=8, seed=0)
    cells = np.repeat(np.arange(32), 10)
    r.add(cells, tagged(np.arange(len(cells))))
    assert len(r) <= 64 and r.cap == 2
    assert all(1 <= len(s) <= 2 for s in r.slots.values())
    cells_arr, images = r.arrays()
    assert images.shape == (len(r), 2, 2, 3) and images.dtype == np.uint8
    assert len(cells_arr) == len(r)
    # each thumbnail is one of its cell's images
    for c, i in zip(cells_arr, ids_of(images), strict=True):
        assert cells[i] == c


def test_bad_arguments():
    with pytest.raises(ValueError, match="per_cell"):
        ExampleReservoir(per_cell=0)
    r = ExampleReservoir()
    r.add(np.array([0]), torch.rand(1, 3, 8, 8))
    with pytest.raises(
        ValueError, match=r"image shape of earlier batches \(3, 8, 8\), got \(3, 9, 9\)"
    ):
        r.check(torch.rand(1, 3, 9, 9))


def test_plural_doctests():
    import doctest

    import nbviz._text

    assert doctest.testmod(nbviz._text).failed == 0


def test_samples_are_picked_from_images_of_any_dtype_and_device_path():
    """Entering samples are picked with numpy's indexing where it can view the images, with
    torch's elsewhere (half precision here): the same thumbnails either way."""
    ids = np.arange(12)
    kept = []
    for dtype in (torch.float32, torch.float16):
        r = ExampleReservoir(per_cell=4, max_total=100, size=8, seed=3)
        images = tagged(ids).to(dtype) / 255
        r.add(np.zeros(6, int), images[:6])  # the first four enter, maybe more
        r.add(np.zeros(6, int), images[6:])  # some enter: picked from the batch
        kept.append(np.stack(r.slots[0]))
    np.testing.assert_array_equal(kept[0], kept[1])
