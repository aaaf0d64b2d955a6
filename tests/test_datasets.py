"""Tests of nbviz.datasets.shapes: the generated shape images and their masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nbviz.datasets import SHAPE_CLASSES, ShapesData, shapes

N = 120  # 20 images a class
SIZE = 64


@pytest.fixture(scope="module")
def data() -> ShapesData:
    return shapes(N, size=SIZE, seed=0)


def _per_class(data: ShapesData):
    labels = data.labels.numpy()
    for k, name in enumerate(SHAPE_CLASSES):
        yield name, np.flatnonzero(labels == k)


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _fill_ratio(mask: np.ndarray) -> float:
    """Mask area over the area of the circle around its centroid reaching its farthest pixel."""
    ys, xs = np.nonzero(mask)
    radius = np.hypot(ys - ys.mean(), xs - xs.mean()).max() + 0.5
    return len(ys) / (np.pi * radius**2)


def _non_convexity(mask: np.ndarray, pairs: int = 2000) -> float:
    """Share of random pixel pairs of the mask whose midpoint lies outside the mask."""
    ys, xs = np.nonzero(mask)
    rng = np.random.default_rng(0)
    a = rng.integers(0, len(ys), pairs)
    b = rng.integers(0, len(ys), pairs)
    my = np.floor((ys[a] + ys[b]) / 2 + 0.5).astype(int)
    mx = np.floor((xs[a] + xs[b]) / 2 + 0.5).astype(int)
    return float(1 - mask[my, mx].mean())


# --- structure -------------------------------------------------------------------------------


def test_shapes_dtypes_and_range(data):
    assert isinstance(data, ShapesData)
    images, labels, masks, classes = data  # a NamedTuple unpacks
    assert images.shape == (N, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert labels.shape == (N,) and labels.dtype == torch.int64
    assert masks.shape == (N, SIZE, SIZE) and masks.dtype == torch.bool
    assert classes == SHAPE_CLASSES
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert torch.isfinite(images).all()
    assert int(labels.min()) >= 0 and int(labels.max()) < len(SHAPE_CLASSES)


def test_classes_in_order():
    assert SHAPE_CLASSES == ("circle", "square", "triangle", "star", "cross", "ring")


@pytest.mark.parametrize("n", [1, 7, 120, 125])
def test_labels_balanced(n):
    labels = shapes(n, size=16, seed=3).labels
    counts = torch.bincount(labels, minlength=len(SHAPE_CLASSES))
    assert int(counts.sum()) == n
    assert int(counts.max() - counts.min()) <= 1


def test_labels_shuffled(data):
    # Not simply 0, 1, 2, ... in order.
    assert not torch.equal(data.labels, torch.arange(N) % len(SHAPE_CLASSES))


def test_small_image_size_works():
    d = shapes(12, size=16, seed=1)
    assert d.images.shape == (12, 3, 16, 16)
    assert d.masks.flatten(1).any(dim=1).all()


def test_numpy_integers_accepted():
    d = shapes(np.int64(3), size=np.int32(16), seed=np.int64(2))
    assert d.images.shape == (3, 3, 16, 16)


# --- determinism and random state -----------------------------------------------------------


def test_same_seed_bit_identical():
    a = shapes(40, size=32, seed=7)
    b = shapes(40, size=32, seed=7)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert torch.equal(x, y)


def test_different_seed_differs():
    a = shapes(40, size=32, seed=7)
    b = shapes(40, size=32, seed=8)
    assert not torch.equal(a.images, b.images)
    assert not torch.equal(a.masks, b.masks)


def test_global_random_state_untouched_and_unused():
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    first = shapes(10, size=16, seed=0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]
    # A different global state does not change the result.
    torch.manual_seed(999)
    np.random.seed(999)
    assert torch.equal(shapes(10, size=16, seed=0).images, first.images)


# --- masks -----------------------------------------------------------------------------------


def test_masks_non_empty_and_inside_image(data):
    masks = data.masks
    assert masks.flatten(1).sum(dim=1).min() >= 20
    # The object stays inside: nothing of it on the border rows and columns.
    assert not masks[:, 0, :].any() and not masks[:, -1, :].any()
    assert not masks[:, :, 0].any() and not masks[:, :, -1].any()
    # ... and it is a sizeable object, not a speck.
    assert masks.flatten(1).float().mean(dim=1).min() > 0.03


def test_mask_matches_the_object_in_the_image(data):
    images = data.images.numpy()
    masks = data.masks.numpy()
    for i in range(N):
        inside = masks[i]
        core = _erode(inside)  # skip the anti-aliased rim
        band = _dilate(_dilate(inside)) & ~inside  # background right around the object
        assert core.sum() > 10 and band.sum() > 10
        core_pixels = images[i][:, core]
        # The object is one flat colour plus pixel noise...
        assert core_pixels.std(axis=1).max() < 0.1, i
        # ... which stands out from the background just outside the mask.
        contrast = np.linalg.norm(core_pixels.mean(axis=1) - images[i][:, band].mean(axis=1))
        assert contrast > 0.2, (i, contrast)


def test_rings_have_a_hole_and_others_do_not(data):
    masks = data.masks.numpy()
    for name, idx in _per_class(data):
        for i in idx:
            ys, xs = np.nonzero(masks[i])
            centre = masks[i][int(ys.mean() + 0.5), int(xs.mean() + 0.5)]
            assert centre == (name != "ring"), (name, i)


def test_convex_and_non_convex_classes(data):
    masks = data.masks.numpy()
    for name, idx in _per_class(data):
        scores = [_non_convexity(masks[i]) for i in idx]
        if name in ("circle", "square", "triangle"):
            assert max(scores) < 0.02, (name, max(scores))
        elif name in ("star", "cross"):
            assert min(scores) > 0.03, (name, min(scores))
        else:  # ring: half of all midpoints fall into the hole or outside
            assert min(scores) > 0.25, (name, min(scores))


def test_fill_ratio_tells_circle_square_triangle(data):
    masks = data.masks.numpy()
    ratios = {name: [_fill_ratio(masks[i]) for i in idx] for name, idx in _per_class(data)}
    # Circle ~ 1, square 2/pi ~ 0.64, equilateral triangle 3*sqrt(3)/(4*pi) ~ 0.41.
    assert min(ratios["circle"]) > 0.85
    assert 0.52 < min(ratios["square"]) and max(ratios["square"]) < 0.75
    assert max(ratios["triangle"]) < 0.52


# --- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, 2.5, "10", None, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match=r"n must be an int >= 1, got"):
        shapes(n)


@pytest.mark.parametrize("size", [15, 0, 64.0, "64", None, False])
def test_bad_size(size):
    with pytest.raises(ValueError, match=r"size must be an int >= 16, got"):
        shapes(4, size=size)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be a non-negative int, got"):
        shapes(4, size=16, seed=seed)


def test_error_names_the_value_received():
    with pytest.raises(ValueError, match=r"got 15"):
        shapes(4, size=15)
    with pytest.raises(ValueError, match=r"got 2\.5 \(float\)"):
        shapes(2.5)


def test_docstring_examples():
    import doctest
    import importlib

    module = importlib.import_module("nbviz.datasets.shapes")
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
