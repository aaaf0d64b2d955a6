"""The geometry of an embedding: its PCA, epoch-to-epoch alignment, and each item's
nearest neighbours in the layer's own space.

Inputs are ``(M, D)`` tensors or numpy arrays of finite numbers (`embed` drops the
others); results are numpy arrays, ready for a widget to send. All three are
deterministic: the same input gives the same output on every call.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
>>> p = pca(x)
>>> p.coords.shape, p.coords.dtype, bool(p.explained[0] >= p.explained[1])
((50, 2), dtype('float32'), True)
>>> neighbours(x, k=3).shape
(50, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_tensor, int_at_least

# The most memory one chunk of pairwise scores takes in `neighbours` (and one chunk of
# rows in `pca`): the peak beyond the inputs and results, whatever M is.
CHUNK_BYTES = 64 * 2**20
METRICS = ("cosine", "euclidean")


def _matrix(value: Any, name: str) -> torch.Tensor:
    """``value`` as a 2-D floating tensor of finite numbers (no copy where none is needed)."""
    x = as_tensor(value, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a matrix (M items, D dims), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one item and one dim, got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name} must be finite; {bad:,} rows hold NaN or inf (drop them first)")
    return x.detach()


# --- PCA -------------------------------------------------------------------------------------------


@dataclass
class PCA:
    """A PCA of ``(M, D)`` vectors: ``coords`` ``(M, dims)`` float32, the items in the
    principal axes; ``explained`` ``(dims,)`` float64, each axis's share of the total
    variance; ``components`` ``(dims, D)`` float32, the axes (unit rows); ``mean``
    ``(D,)`` float32, the centre."""

    coords: np.ndarray
    explained: np.ndarray
    components: np.ndarray
    mean: np.ndarray


def pca(vectors: Any, dims: int = 2) -> PCA:
    """The first ``dims`` (2 or 3) principal components of ``vectors`` ``(M, D)``.

    Exact, not randomised: the eigenvectors of the covariance ``(D, D)`` accumulated in
    float64 over chunks of rows (when ``D <= M``), else an SVD of the centred rows.
    Signs are fixed as scikit-learn fixes them (``svd_flip``, loadings-based): each
    component's loading of largest magnitude is positive, so coordinates equal
    ``sklearn.decomposition.PCA(dims).fit_transform(vectors)``'s.

    >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1], [6.0, 0.0]])
    >>> p = pca(x)
    >>> p.coords[:, 0].round(2).tolist(), bool(p.explained[0] > 0.99)
    ([-3.0, -1.0, 1.0, 3.0], True)
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    x = _matrix(vectors, "vectors")
    m, d = x.shape
    if d < dims:
        raise ValueError(f"a PCA to {dims} dims needs vectors of at least {dims} dims, got {d}")
    rows = max(1, CHUNK_BYTES // (8 * d))
    chunks = range(0, m, rows)
    mean = sum(x[i : i + rows].double().sum(0) for i in chunks) / m
    if d <= m:
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for i in chunks:
            c = x[i : i + rows].double() - mean
            cov += c.T @ c
        values, vecs = torch.linalg.eigh(cov)  # ascending
        total = float(cov.diagonal().sum())
        top, axes = values.flip(0)[:dims], vecs.flip(1)[:, :dims].T
    else:
        _, s, vt = torch.linalg.svd(x.double() - mean, full_matrices=False)
        total = float((s * s).sum())
        top, axes = s[:dims] ** 2, vt[:dims]
    # Each axis's largest loading positive (the first of equal magnitudes).
    big = axes.abs().argmax(1)
    signs = torch.where(axes[torch.arange(dims), big] < 0, -1.0, 1.0).to(axes)
    axes = axes * signs[:, None]
    coords = torch.cat([(x[i : i + rows].double() - mean) @ axes.T for i in chunks])
    explained = top.clamp_min(0) / total if total > 0 else torch.zeros(dims, dtype=torch.float64)
    return PCA(
        coords.float().cpu().numpy(),
        explained.cpu().numpy(),
        axes.float().cpu().numpy(),
        mean.float().cpu().numpy(),
    )


# --- Procrustes ------------------------------------------------------------------------------------


def procrustes_align(
    previous: Any,
    current: Any,
    previous_index: Any = None,
    current_index: Any = None,
    *,
    scale: bool = True,
    reflection: bool = True,
) -> np.ndarray:
    """``current`` ``(M, d)`` moved to best match ``previous`` ``(M', d)``: rotated (an
    orthogonal Procrustes solution), scaled (``scale``) and translated, fitted on the
    items both hold, so that an epoch's projection moves from the last rather than
    jumps. Every row of ``current`` is transformed; float32 ``(M, d)``.

    ``previous_index`` and ``current_index``: the item of each row (as
    `Embedded.index`), to fit on the items in common; without them the rows must match
    one to one. The fit minimises ``||s (B - b) R + a - A||`` over the common rows ``A``
    (previous) and ``B`` (current), ``a``, ``b`` their means; ``R`` is what
    ``scipy.linalg.orthogonal_procrustes`` gives.

    Reflections are allowed by default: PCA's axes have no handedness (an axis's sign is
    a convention, and the convention can flip between epochs when another loading becomes
    the largest), so a mirrored epoch is the same picture and should be shown unmirrored.
    ``reflection=False`` keeps rotations only. ``scale`` matches the spread too; the
    view scales to fit anyway, so only the shape of the cloud carries meaning.

    >>> a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> b = a @ np.array([[0.0, 1.0], [-1.0, 0.0]]) * 3 + 5  # rotated, scaled, moved
    >>> np.allclose(procrustes_align(a, b), a, atol=1e-6)
    True
    """
    a = _matrix(previous, "previous").double().cpu().numpy()
    b_all = _matrix(current, "current").double().cpu().numpy()
    if a.shape[1] != b_all.shape[1]:
        raise ValueError(
            f"previous and current must have the same dims, got {a.shape[1]} and {b_all.shape[1]}"
        )
    if (previous_index is None) != (current_index is None):
        raise ValueError("give both previous_index and current_index, or neither")
    if previous_index is None:
        if len(a) != len(b_all):
            raise ValueError(
                f"previous and current hold {len(a):,} and {len(b_all):,} rows; pass "
                "previous_index and current_index (the item of each row) to align on the "
                "items in common"
            )
        b = b_all
    else:
        ia = _index(previous_index, "previous_index", len(a))
        ib = _index(current_index, "current_index", len(b_all))
        _, pa, pb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
        if len(pa) == 0:
            raise ValueError("previous and current have no item in common to align on")
        a, b = a[pa], b_all[pb]
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(b0.T @ a0)
    if not reflection and np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1  # the nearest rotation: flip the axis of least agreement
        s[-1] *= -1
    r = u @ vt
    norm = float((b0 * b0).sum())
    k = float(s.sum()) / norm if scale and norm > 0 else 1.0
    return ((b_all - mb) @ r * k + ma).astype(np.float32)


def _index(value: Any, name: str, rows: int) -> np.ndarray:
    idx = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value)
    if idx.shape != (rows,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"{name} must be ({rows:,},) integers, the item of each row; got "
            f"{idx.dtype} of shape {idx.shape}"
        )
    if len(np.unique(idx)) != rows:
        raise ValueError(f"{name} must not repeat an item")
    return idx


# --- neighbours ------------------------------------------------------------------------------------


def neighbours(
    vectors: Any,
    k: int = 10,
    *,
    metric: str = "cosine",
    distances: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest other items in the space of ``vectors`` ``(M, D)``, by
    ``metric`` (``"cosine"`` or ``"euclidean"``): ``(M, k)`` int64 row numbers, nearest
    first, never the item itself (an exact duplicate elsewhere is a neighbour at distance
    0; ties in any order). ``distances=True`` also returns their ``(M, k)`` float32
    distances (``1 - cosine similarity``, or Euclidean).

    Exact (brute force), in chunks of rows: one matrix product and one top-k per chunk,
    each chunk's scores within `CHUNK_BYTES`, on the vectors' device. A zero vector has
    cosine distance 1 to every item. ``progress(rows_done, rows)`` is called after each
    chunk (an exception it raises stops the search).

    >>> x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    >>> neighbours(x, k=2, metric="euclidean").tolist()
    [[1, 2], [0, 2], [1, 0], [2, 1]]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = _matrix(vectors, "vectors").float()
    m = x.shape[0]
    k = int_at_least("k", k)
    if k >= m:
        raise ValueError(f"k must be less than the number of items ({m:,}), got {k}")
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    else:
        sq = (x * x).sum(1)
    rows = max(1, CHUNK_BYTES // (4 * m))
    idx = torch.empty(m, k, dtype=torch.int64, device=x.device)
    dist = torch.empty(m, k, dtype=torch.float32, device=x.device)
    for i in range(0, m, rows):
        j = min(m, i + rows)
        # Scores, larger is nearer: cosine similarity, or 2 a.b - |b|^2 (= |a|^2 - |a-b|^2).
        if metric == "cosine":
            s = x[i:j] @ x.T
        else:
            s = torch.addmm(sq[None], x[i:j], x.T, beta=-1, alpha=2)
        s[torch.arange(j - i), torch.arange(i, j)] = -torch.inf  # never the item itself
        top, idx[i:j] = s.topk(k, dim=1)
        if metric == "cosine":
            dist[i:j] = 1 - top
        else:
            dist[i:j] = (sq[i:j, None] - top).clamp_min(0).sqrt()
        if progress is not None:
            progress(j, m)
    if distances:
        return idx.cpu().numpy(), dist.cpu().numpy()
    return idx.cpu().numpy()
