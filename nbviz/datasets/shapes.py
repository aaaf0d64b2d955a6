"""Procedurally drawn shape images: a small, download-free data set for demos and tests.

Every image holds one object (circle, square, triangle, star, cross or ring) at a random
position, size, rotation and colour, on a cluttered background (a colour gradient blended
with soft blotches, thin distractor strokes and pixel noise). Besides the label, each sample
carries a ground-truth mask of exactly the object's pixels, which makes the data set handy
for checking attribution methods (does a saliency map land on the object?).

Rendering is vectorised over a chunk of images with torch broadcasting over a pixel grid;
shapes are drawn from signed-distance functions, which gives anti-aliased edges for free
(pixel coverage is ``clip(0.5 - distance, 0, 1)``, distances in pixels).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SHAPE_CLASSES", "ShapesData", "shapes"]

#: Class names, in label order.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

CIRCLE, SQUARE, TRIANGLE, STAR, CROSS, RING = range(len(SHAPE_CLASSES))

# --- difficulty knobs (fractions of the image size unless said otherwise) --------------------
_RADIUS_RANGE = (0.18, 0.32)  # object's circumradius
_MIN_RADIUS_PX = 4.0  # keep objects recognisable at small image sizes
_MIN_CONTRAST = 0.50  # least RGB distance between object colour and background under it
_COLOUR_TRIES = 8  # candidate object colours per image, the first contrasting one wins
_NOISE_RANGE = (0.02, 0.06)  # std of the additive Gaussian pixel noise
_STROKES_RANGE = (3, 5)  # distractor strokes per image, inclusive
_STROKE_HALF_WIDTH = (0.35, 0.75)  # pixels
_BLOTCH_GRID = 5  # low-resolution grid upsampled into blotches
_BLOTCH_MIX_RANGE = (0.0, 1.0)  # 0: pure gradient background, 1: pure blotches
_BG_SPREAD = 0.6  # background colours: lerp(image's base colour, random colour, spread)
_STROKE_ALPHA_RANGE = (0.5, 0.9)
_CHUNK_PIXELS = 1 << 18  # pixels rendered at once (1 MB per float32 plane)


class ShapesData(NamedTuple):
    """A batch of shape images.

    Attributes:
        images: ``float32`` tensor ``(N, 3, H, W)`` with values in ``[0, 1]``.
        labels: ``int64`` tensor ``(N,)`` of indices into ``classes``.
        masks: ``bool`` tensor ``(N, H, W)``, True exactly on the object's pixels
            (anti-aliased coverage above one half).
        classes: the class names, ``SHAPE_CLASSES``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    classes: tuple[str, ...]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def shapes(n: int = 1000, size: int = 64, seed: int = 0) -> ShapesData:
    """Draw ``n`` random shape images of ``size`` x ``size`` pixels.

    Labels are balanced (class counts differ by at most one) and shuffled. The result is
    deterministic for a given ``(n, size, seed)``: the same arguments give bit-identical
    tensors, and neither torch's nor numpy's global random state is used or changed.

    Args:
        n: number of images, an int >= 1.
        size: image height and width in pixels, an int >= 16.
        seed: seed of the local random generators, a non-negative int.

    Returns:
        A :class:`ShapesData` ``(images, labels, masks, classes)``.

    Example:
        >>> from nbviz.datasets import shapes
        >>> data = shapes(n=12, size=32, seed=0)
        >>> data.images.shape, data.images.dtype
        (torch.Size([12, 3, 32, 32]), torch.float32)
        >>> data.classes[int(data.labels[0])] in data.classes
        True
        >>> bool(data.masks[0].any())
        True
    """
    n = _check_int("n", n, 1)
    size = _check_int("size", size, 16)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")

    rng = np.random.default_rng([int(seed), size, 0x5A4E])
    num_classes = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n) % num_classes)
    params = _sample_params(rng, labels, size)

    images = torch.empty((n, 3, size, size), dtype=torch.float32)
    masks = torch.empty((n, size, size), dtype=torch.bool)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sub = {k: v[start:stop] for k, v in params.items()}
        # Per-pixel noise comes from a torch generator per chunk, seeded from the seed and
        # the chunk's start (the chunk size is fixed for a given image size).
        noise_gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([int(seed), size, start]).generate_state(1)[0])
        )
        img, mask = _render_chunk(sub, size, noise_gen)
        images[start:stop] = img
        masks[start:stop] = mask
    return ShapesData(
        images=images,
        labels=torch.from_numpy(labels.astype(np.int64)),
        masks=masks,
        classes=SHAPE_CLASSES,
    )


# --- parameters -------------------------------------------------------------------------------


def _sample_params(rng: np.random.Generator, labels: np.ndarray, size: int) -> dict:
    """All random choices of every image, drawn up front as small arrays."""
    n = len(labels)
    f32 = np.float32
    p: dict[str, np.ndarray] = {"label": labels}

    # Object geometry. Every class fits inside a circle of radius `radius` around its
    # centre, and the centre keeps one pixel of margin beyond that for the anti-aliasing.
    lo, hi = _RADIUS_RANGE
    radius = np.maximum(rng.uniform(lo, hi, n) * size, _MIN_RADIUS_PX)
    radius = np.minimum(radius, size / 2 - 1.5)
    margin = radius + 1.0
    p["radius"] = radius.astype(f32)
    p["cx"] = rng.uniform(margin, size - margin).astype(f32)
    p["cy"] = rng.uniform(margin, size - margin).astype(f32)
    p["angle"] = rng.uniform(0, 2 * np.pi, n).astype(f32)
    p["ring_inner"] = rng.uniform(0.45, 0.70, n).astype(f32)  # inner / outer radius
    p["cross_width"] = rng.uniform(0.22, 0.36, n).astype(f32)  # arm half-width / radius
    p["star_m"] = rng.uniform(2.9, 3.5, n).astype(f32)  # spikiness, 10/3 is a pentagram
    p["obj_colours"] = rng.uniform(0, 1, (n, _COLOUR_TRIES, 3)).astype(f32)

    # Background: gradient between two colours, blended with low-frequency blotches.
    base = rng.uniform(0, 1, (n, 3, 1))
    g2 = _BLOTCH_GRID * _BLOTCH_GRID
    palette = base + _BG_SPREAD * (rng.uniform(0, 1, (n, 3, 2 + g2)) - base)
    palette = palette.astype(f32)
    p["bg_c0"] = palette[:, :, 0]
    p["bg_c1"] = palette[:, :, 1]
    p["bg_dir"] = rng.uniform(0, 2 * np.pi, n).astype(f32)
    p["bg_blotch"] = palette[:, :, 2:].reshape(n, 3, _BLOTCH_GRID, _BLOTCH_GRID)
    p["bg_mix"] = rng.uniform(*_BLOTCH_MIX_RANGE, n).astype(f32)
    p["noise"] = rng.uniform(*_NOISE_RANGE, n).astype(f32)

    # Distractor strokes: straight segments and circular arcs, thin and partly transparent.
    s = _STROKES_RANGE[1]
    p["n_strokes"] = rng.integers(_STROKES_RANGE[0], _STROKES_RANGE[1] + 1, n)
    p["st_arc"] = rng.uniform(0, 1, (n, s)) < 0.5
    p["st_colour"] = rng.uniform(0, 1, (n, s, 3)).astype(f32)
    p["st_alpha"] = rng.uniform(*_STROKE_ALPHA_RANGE, (n, s)).astype(f32)
    p["st_hw"] = rng.uniform(*_STROKE_HALF_WIDTH, (n, s)).astype(f32)
    p["st_x"] = rng.uniform(0, size, (n, s)).astype(f32)  # segment start / arc centre
    p["st_y"] = rng.uniform(0, size, (n, s)).astype(f32)
    p["st_len"] = (rng.uniform(0.2, 0.7, (n, s)) * size).astype(f32)  # segment length
    p["st_rad"] = (rng.uniform(0.08, 0.35, (n, s)) * size).astype(f32)  # arc radius
    p["st_dir"] = rng.uniform(0, 2 * np.pi, (n, s)).astype(f32)
    p["st_aperture"] = rng.uniform(np.pi / 6, np.pi * 0.55, (n, s)).astype(f32)  # half-angle
    return p


# --- signed distances (pixels; negative inside) ---------------------------------------------


def _sd_box(x: torch.Tensor, y: torch.Tensor, bx, by) -> torch.Tensor:
    qx = x.abs() - bx
    qy = y.abs() - by
    outside = torch.hypot(qx.clamp(min=0), qy.clamp(min=0))
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _sd_star(x: torch.Tensor, y: torch.Tensor, r, n: int, m) -> torch.Tensor:
    """Regular n-gon (m=2) or n-pointed star (2 < m < n) of circumradius r.

    After Inigo Quilez's 2D distance functions: fold the plane into one sector, then take
    the distance to a single edge.
    """
    an = math.pi / n
    acx, acy = math.cos(an), math.sin(an)
    en = math.pi / m
    if isinstance(en, torch.Tensor):
        ecx, ecy = torch.cos(en), torch.sin(en)
    else:
        ecx, ecy = math.cos(en), math.sin(en)
    x = x.abs()
    bn = torch.remainder(torch.atan2(x, y), 2 * an) - an
    length = torch.hypot(x, y)
    px = length * torch.cos(bn) - r * acx
    py = length * torch.sin(bn).abs() - r * acy
    h = torch.minimum((-(px * ecx + py * ecy)).clamp(min=0), r * acy / ecy)
    px = px + ecx * h
    py = py + ecy * h
    return torch.hypot(px, py) * torch.sign(px)


def _sd_object(label: int, x, y, r, sub: dict, idx: np.ndarray) -> torch.Tensor:
    def col(key):
        return torch.from_numpy(sub[key][idx]).view(-1, 1, 1)

    if label == CIRCLE:
        return torch.hypot(x, y) - r
    if label == SQUARE:
        half = r * (1 / math.sqrt(2))
        return _sd_box(x, y, half, half)
    if label == TRIANGLE:
        return _sd_star(x, y, r, 3, 2.0)
    if label == STAR:
        return _sd_star(x, y, r, 5, col("star_m"))
    if label == CROSS:
        w = r * col("cross_width")
        a = torch.sqrt(r * r - w * w)  # arm tips' corners lie on the circumcircle
        return torch.minimum(_sd_box(x, y, a, w), _sd_box(x, y, w, a))
    if label == RING:
        inner = r * col("ring_inner")
        return (torch.hypot(x, y) - 0.5 * (r + inner)).abs() - 0.5 * (r - inner)
    raise AssertionError(label)


# --- rendering --------------------------------------------------------------------------------


def _render_chunk(sub: dict, size: int, noise_gen: torch.Generator):
    b = len(sub["label"])

    def t(key, shape=(-1, 1, 1)):
        return torch.from_numpy(np.ascontiguousarray(sub[key])).reshape(shape)

    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    gy = coords.view(1, size, 1)
    gx = coords.view(1, 1, size)

    # Background: gradient along a random direction, blended with bicubic blotches.
    d = t("bg_dir")
    proj = ((gx - size / 2) * torch.cos(d) + (gy - size / 2) * torch.sin(d)) / size + 0.5
    proj = proj.clamp(0, 1).unsqueeze(1)  # (b, 1, H, W)
    c0 = t("bg_c0", (-1, 3, 1, 1))
    c1 = t("bg_c1", (-1, 3, 1, 1))
    img = torch.lerp(c0, c1, proj)  # (b, 3, H, W)
    # Bicubic upsampling is separable: (H, g) @ grid @ (g, W).
    up = _upsample_matrix(_BLOTCH_GRID, size)
    blotch = up @ t("bg_blotch", (-1, 3, _BLOTCH_GRID, _BLOTCH_GRID)) @ up.T
    img.lerp_(blotch.clamp_(0, 1), t("bg_mix", (-1, 1, 1, 1)))

    # Distractor strokes, under the object.
    n_strokes = sub["n_strokes"]
    alpha_all = torch.empty((b, 1, size, size), dtype=torch.float32)
    for k in range(_STROKES_RANGE[1]):
        active = n_strokes > k
        if k >= _STROKES_RANGE[0]:
            alpha_all.zero_()  # not every image has this many strokes
        for is_arc in (False, True):
            idx = np.flatnonzero(active & (sub["st_arc"][:, k] == is_arc))
            if idx.size == 0:
                continue

            def s(key, idx=idx, k=k):
                return torch.from_numpy(np.ascontiguousarray(sub[key][idx, k])).view(-1, 1, 1)

            x0, y0, ang = s("st_x"), s("st_y"), s("st_dir")
            ca, sa = torch.cos(ang), torch.sin(ang)
            # Local frame: u along the stroke direction, v across it.
            u = (gx - x0) * ca + (gy - y0) * sa
            v = (gy - y0) * ca - (gx - x0) * sa
            if is_arc:
                rad, ap = s("st_rad"), s("st_aperture")
                # Arc centred on u axis: points within the aperture measure |dist - rad|,
                # others the distance to the nearest arc end.
                va = v.abs()
                sc, cc = torch.sin(ap), torch.cos(ap)
                in_wedge = cc * va < sc * u  # angle from the u axis below the aperture
                end = torch.hypot(u - rad * cc, va - rad * sc)
                dist = torch.where(in_wedge, (torch.hypot(u, v) - rad).abs(), end)
            else:
                length = s("st_len")
                dist = torch.hypot(u - torch.clamp(u, min=torch.zeros_like(length), max=length), v)
            alpha = (s("st_hw") + 0.5 - dist).clamp_(0, 1).mul_(s("st_alpha"))
            alpha_all[idx] = alpha.unsqueeze(1)
        colour = torch.from_numpy(np.ascontiguousarray(sub["st_colour"][:, k]))
        img.lerp_(colour.view(b, 3, 1, 1), alpha_all)

    # The object: signed distance in pixels, per class.
    sd = torch.empty((b, size, size), dtype=torch.float32)
    for label in range(len(SHAPE_CLASSES)):
        idx = np.flatnonzero(sub["label"] == label)
        if idx.size == 0:
            continue
        cx = torch.from_numpy(sub["cx"][idx]).view(-1, 1, 1)
        cy = torch.from_numpy(sub["cy"][idx]).view(-1, 1, 1)
        ang = torch.from_numpy(sub["angle"][idx]).view(-1, 1, 1)
        r = torch.from_numpy(sub["radius"][idx]).view(-1, 1, 1)
        ca, sa = torch.cos(ang), torch.sin(ang)
        x = (gx - cx) * ca + (gy - cy) * sa
        y = (gy - cy) * ca - (gx - cx) * sa
        sd[idx] = _sd_object(label, x, y, r, sub, idx)
    coverage = (0.5 - sd).clamp(0, 1).unsqueeze(1)  # (b, 1, H, W)
    mask = sd < 0

    # Object colour: the first candidate far enough from the background under the object
    # (or the farthest candidate if none is).
    weight = coverage / coverage.sum(dim=(2, 3), keepdim=True).clamp(min=1e-6)
    under = (img * weight).sum(dim=(2, 3))  # (b, 3)
    cands = torch.from_numpy(sub["obj_colours"])  # (b, tries, 3)
    dist = torch.linalg.vector_norm(cands - under.unsqueeze(1), dim=2)
    ok = dist >= _MIN_CONTRAST
    score = torch.where(ok, 10.0 - torch.arange(_COLOUR_TRIES, dtype=torch.float32), dist)
    choice = score.argmax(dim=1)
    colour = cands[torch.arange(b), choice].view(b, 3, 1, 1)
    img.lerp_(colour, coverage)

    # Pixel noise, then clip into range.
    noise = torch.randn(img.shape, generator=noise_gen, dtype=torch.float32)
    img.addcmul_(noise, t("noise", (-1, 1, 1, 1))).clamp_(0, 1)
    return img, mask


@functools.lru_cache(maxsize=8)
def _upsample_matrix(grid: int, size: int) -> torch.Tensor:
    """(size, grid) matrix of 1-D bicubic interpolation weights (as F.interpolate uses)."""
    basis = torch.eye(grid, dtype=torch.float32).view(grid, 1, grid, 1).expand(grid, 1, grid, 2)
    out = F.interpolate(basis, size=(size, 2), mode="bicubic", align_corners=False)
    return out[:, 0, :, 0].T.contiguous()
