"""Example reservoirs: bounded, uniform, and thumbnails that look like the input."""

import numpy as np
import pytest
import torch

from nbviz.confusion.reservoir import ExampleReservoir, thumbnails


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


def test_batches_keep_what_algorithm_r_keeps_one_sample_at_a_time():
    """Batches of any size, several samples of a cell in one batch: the kept samples are
    exactly those of Algorithm R run one sample at a time with the same draws."""
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 3, size=int(rng.integers(1, 40))) for _ in range(300)]
    r = ExampleReservoir(per_cell=4, max_total=100, size=8, seed=7)
    draws = np.random.default_rng(7)  # the reservoir's own stream, replayed
    seen, kept, first = {}, {}, 0
    for cells in batches:
        ids = np.arange(first, first + len(cells))
        first += len(cells)
        r.add(cells, tagged(ids))
        for c, u, i in zip(cells.tolist(), draws.random(len(cells)).tolist(), ids, strict=True):
            seen[c] = count = seen.get(c, 0) + 1
            slot = count - 1 if count <= 4 else int(u * count)
            if slot < 4:
                store = kept.setdefault(c, [])
                store[slot : slot + 1] = [i]
    assert r.seen == seen
    assert {c: list(ids_of(np.stack(s))) for c, s in r.slots.items()} == kept


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


def test_thumbnails_of_unit_range_normalized_grey_and_large_images():
    x = torch.rand(2, 3, 8, 8)
    t = thumbnails(x, 32)
    assert t.shape == (2, 8, 8, 3) and t.dtype == np.uint8
    np.testing.assert_allclose(t / 255.0, x.permute(0, 2, 3, 1).numpy(), atol=1 / 255)
    z = torch.randn(1, 3, 8, 8) * 3  # normalized input: min-max scaled
    tz = thumbnails(z, 32)
    assert tz.min() == 0 and tz.max() == 255
    g = thumbnails(torch.rand(1, 1, 8, 8), 32)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    big = thumbnails(torch.rand(1, 3, 128, 64), 32)
    assert big.shape == (1, 32, 16, 3)
    hw = thumbnails(torch.rand(2, 10, 10), 32)  # (N, H, W)
    assert hw.shape == (2, 10, 10, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="per_cell"):
        ExampleReservoir(per_cell=0)
    r = ExampleReservoir()
    r.add(np.array([0]), torch.rand(1, 3, 8, 8))
    with pytest.raises(
        ValueError, match=r"image shape of earlier batches \(3, 8, 8\), got \(3, 9, 9\)"
    ):
        r.check(torch.rand(1, 3, 9, 9))


def test_thumbnails_leave_the_inputs_alone():
    for x in (torch.rand(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.rand(2, 3, 64, 64)):
        before = x.clone()
        thumbnails(x, 32)
        assert torch.equal(x, before)
    u = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    np.testing.assert_array_equal(thumbnails(u, 32), u.permute(0, 2, 3, 1).numpy())


def test_image_count_message_uses_the_singular_for_one():
    from nbviz.confusion.reservoir import check_images

    with pytest.raises(ValueError, match=r"expected 1 image, got 2"):
        check_images(torch.rand(2, 3, 8, 8), 1)


def test_plural_doctests():
    import doctest

    import nbviz._text

    assert doctest.testmod(nbviz._text).failed == 0
