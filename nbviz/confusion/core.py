"""Counting core of the confusion matrix: headless, torch + numpy only.

Convention (sklearn's): rows are the true class, columns the predicted class.
Counts accumulate in place into one persistent ``(K*K,)`` tensor on the data's
device, so an update never allocates a K x K matrix; data reaches the CPU only
when someone reads the counts.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .._dist import DEFAULT_TIMEOUT, all_reduce_sum
from .._text import plural

ArrayLike = Any  # torch.Tensor or np.ndarray


Labels = Any  # int64 np.ndarray (host data) or torch.Tensor (device data)
Cells = Any  # list[int] (a small host batch), int64 np.ndarray or torch.Tensor (device data)


_HALF = (torch.float16, torch.bfloat16)  # numpy cannot view these


def _host(x: ArrayLike, name: str) -> np.ndarray | None:
    """A numpy view of CPU data (no copy), or None for data on another device."""
    if isinstance(x, torch.Tensor):
        if not x.is_cpu or x.dtype in _HALF or x.is_complex():
            return None
        return (x.detach() if x.requires_grad else x).numpy()
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        return x
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_shapes(out_shape, out_kind: str, tgt_shape, tgt_kind: str, K: int, tgt_dtype) -> None:
    """Shape and dtype rules shared by host and device data ('kind': numpy's
    dtype.kind letter: b bool, i/u integer, f float, c complex)."""
    swapped = len(tgt_shape) == 2 and tgt_kind == "f" and len(out_shape) == 1 and out_kind in "iu"
    if swapped and tgt_shape[0] == out_shape[0]:
        # update(labels, logits): float scores (N, K) as targets, integer labels as outputs.
        raise ValueError(
            f"the arguments look swapped: outputs are integer labels of shape {tuple(out_shape)} "
            f"and targets are float scores of shape {tuple(tgt_shape)}; the order is "
            "update(outputs, targets), scores first: update(logits, labels)"
        )
    if tgt_kind not in "iu":
        raise ValueError(
            f"targets must be integer class indices in [0, {K}), got dtype {tgt_dtype}"
        )
    if len(tgt_shape) != 1:
        raise ValueError(f"targets must have shape (N,), got shape {tuple(tgt_shape)}")
    if len(out_shape) == 2:
        if out_shape[1] != K:
            raise ValueError(
                f"outputs of shape (N, K) must have K = {K} columns (one score per class), "
                f"got shape {tuple(out_shape)}"
            )
        if out_kind not in "iuf":
            raise ValueError(f"outputs must be real scores, got a {out_kind!r}-kind dtype")
    elif len(out_shape) == 1:
        if out_kind not in "iu":
            raise ValueError(
                "outputs of shape (N,) must be integer predicted labels, got a float or bool "
                f"dtype; pass logits or probabilities as shape (N, {K})"
            )
    else:
        raise ValueError(
            f"outputs must be scores of shape (N, {K}) or predicted labels of shape (N,), "
            f"got shape {tuple(out_shape)}"
        )
    if out_shape[0] != tgt_shape[0]:
        raise ValueError(
            "outputs and targets must hold the same number of samples, got "
            f"{plural(out_shape[0], 'output')} and {plural(tgt_shape[0], 'target')}"
        )


def _torch_kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "b"
    if t.is_complex():
        return "c"
    return "f" if t.dtype.is_floating_point else "i"


@functools.lru_cache(maxsize=16)
def _row_starts(n: int, k: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * k


def _out_of_range(values: np.ndarray, k: int) -> bool:
    """Whether any integer is outside [0, k), in one reduction: viewed as
    unsigned, negative numbers become huge, so only the maximum matters."""
    if values.dtype.kind == "i":
        values = values.view(_UNSIGNED[values.dtype.itemsize])
    return int(values.max()) >= k


_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _first_bad(values, k: int) -> int:
    values = np.asarray(values)
    return int(values[(values < 0) | (values >= k)][0])


def _nan_error(out) -> ValueError:
    rows = np.flatnonzero(np.isnan(np.asarray(out, dtype=np.float64)).any(axis=1))[:5].tolist()
    return ValueError(f"outputs contain NaN (rows {rows}); expected finite scores")


_WHOLE_MAX = 1 << 14  # scores checked whole for NaN up to this size, by their picks above


def _host_labels(out: np.ndarray, tgt: np.ndarray, K: int):
    """Validated int64 (pred, target) for host data: plain numpy, a few microseconds."""
    if _out_of_range(tgt, K):
        raise ValueError(f"targets must be class indices in [0, {K}), got {_first_bad(tgt, K)}")
    if out.ndim == 1:
        if _out_of_range(out, K):
            raise ValueError(
                f"predicted labels must be class indices in [0, {K}), got {_first_bad(out, K)}"
            )
        return out.astype(np.int64, copy=False), tgt.astype(np.int64, copy=False)
    # numpy's SIMD argmax is ~5x faster than torch's CPU argmax (24 vs 118 us at
    # 256 x 1000 here). NaN counts as the maximum, so a row holding a NaN has it
    # at its argmax: checking the N picked scores finds every NaN in O(N).
    pred = out.argmax(axis=1)
    if out.dtype.kind == "f":
        if out.size <= _WHOLE_MAX:  # small: one max (NaN propagates), fewer numpy calls
            if math.isnan(out.max()):
                raise _nan_error(out)
        else:
            # The sum of the picked scores is NaN if one is (or if +inf meets -inf:
            # then the exact test decides).
            picked = out.reshape(-1).take(pred + _row_starts(*out.shape))
            if math.isnan(picked.sum()) and np.isnan(picked).any():
                raise _nan_error(out)
    return pred, tgt.astype(np.int64, copy=False)


def _device_labels(out: torch.Tensor, tgt: torch.Tensor, K: int):
    """Validated int64 (pred, target) tensors on the data's device, with one host sync."""
    tgt = tgt.to(out.device).long()
    zero = torch.zeros((), dtype=torch.long, device=out.device)
    if out.ndim == 2:
        pred = out.argmax(dim=1)
        nan = (
            torch.isnan(out.gather(1, pred[:, None])).any() if out.dtype.is_floating_point else zero
        )
        plo = phi = zero
    else:
        pred = out.long()
        nan = zero
        plo, phi = torch.aminmax(pred)
    lo, hi, plo, phi, has_nan = torch.stack([*torch.aminmax(tgt), plo, phi, nan.long()]).tolist()
    if has_nan:
        raise _nan_error(out.float().cpu())
    if lo < 0 or hi >= K:
        raise ValueError(f"targets must be class indices in [0, {K}), got {lo if lo < 0 else hi}")
    if plo < 0 or phi >= K:
        raise ValueError(
            f"predicted labels must be class indices in [0, {K}), got {plo if plo < 0 else phi}"
        )
    return pred, tgt


def batch_cells(outputs: ArrayLike, targets: ArrayLike, num_classes: int) -> Cells | None:
    """Validate one batch and return the flat cell ``target * K + predicted`` of each
    sample, or ``None`` for an empty batch: a list for a small batch of host data, an
    int64 numpy array for other host data, an int64 tensor on the data's device otherwise.

    Raises ``ValueError``/``TypeError`` naming what was expected and what came;
    nothing is counted before every check has passed.
    """
    K = num_classes
    out, tgt = _host(outputs, "outputs"), _host(targets, "targets")
    if out is not None and tgt is not None:
        _check_shapes(out.shape, out.dtype.kind, tgt.shape, tgt.dtype.kind, K, tgt.dtype)
        if not tgt.shape[0]:
            return None
        if out.ndim == 2 and out.dtype.kind == "f" and out.size <= _SMALL:
            cells = _small_batch_cells(out, tgt, K)
            if cells is not None:
                return cells
        pred, tgt = _host_labels(out, tgt, K)  # (which words any error)
        return tgt * K + pred
    out_t = outputs if isinstance(outputs, torch.Tensor) else torch.from_numpy(outputs)
    tgt_t = targets if isinstance(targets, torch.Tensor) else torch.from_numpy(targets)
    _check_shapes(out_t.shape, _torch_kind(out_t), tgt_t.shape, _torch_kind(tgt_t), K, tgt_t.dtype)
    if tgt_t.shape[0] == 0:
        return None
    if out_t.device.type == "cpu" and tgt_t.device.type != "cpu":
        out_t = out_t.to(tgt_t.device)  # count where the data lives
    pred, tgt_t = _device_labels(out_t.detach(), tgt_t.detach(), K)
    return tgt_t * K + pred


# Scores (N x K) up to which a batch is checked and counted in one pass in Python.
_SMALL = 4096


def _small_batch_cells(out: np.ndarray, tgt: np.ndarray, K: int) -> list[int] | None:
    """Cells of a small batch of float scores, in one pass in Python; None when a row's sum
    is NaN (a NaN, or +inf beside -inf) or a target is out of range: the numpy path then
    decides, and words the error.

    Right after a training step the CPU's caches hold the model's tensors, and every numpy
    call pays 10-20 us to bring its code and data back: for a classroom batch (32 x 10
    scores) one tolist() and this loop cost about half of argmax, the range and NaN checks
    and add.at. Python's max over a row without NaN picks what argmax picks (the first of
    equal maxima).
    """
    cells = []
    for row, t in zip(out.tolist(), tgt.tolist(), strict=True):
        if math.isnan(sum(row)) or not 0 <= t < K:
            return None
        cells.append(t * K + row.index(max(row)))
    return cells


class ConfusionCounter:
    """Accumulates a K x K confusion matrix, torchmetrics-style.

    >>> c = ConfusionCounter(3)
    >>> c.update(torch.tensor([[2.0, 0.1, 0.3]]), torch.tensor([0]))
    >>> c.compute().tolist()  # the score 2.0 wins: predicted 0, true 0
    [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    """

    def __init__(self, num_classes: int):
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self._flat: torch.Tensor | None = None  # (K*K,) int64 on the data's device
        self._host_flat: np.ndarray | None = None  # numpy view of _flat when on the CPU
        self._ones: torch.Tensor | None = None
        self.samples = 0

    def update(self, outputs: ArrayLike, targets: ArrayLike) -> None:
        """Count one batch: scores ``(N, K)`` or labels ``(N,)`` against targets ``(N,)``."""
        cells = batch_cells(outputs, targets, self.num_classes)
        if cells is not None:
            self.count_cells(cells)

    def count_cells(self, cells: Cells) -> None:
        """Count the flat cells that `batch_cells` validated."""
        if isinstance(cells, list):
            if self._host_flat is None:
                self._place(torch.device("cpu"))
            flat = self._host_flat
            for c in cells:
                flat[c] += 1
            self.samples += len(cells)
        elif isinstance(cells, np.ndarray):
            if self._host_flat is None:
                self._place(torch.device("cpu"))
            # numpy's unbuffered add.at on the tensor's own memory: ~2 us for 256
            # samples, against ~7 us for torch's index_add_ (per-op overhead).
            np.add.at(self._host_flat, cells, 1)
            self.samples += cells.shape[0]
        else:
            n = cells.shape[0]
            if self._flat is None or self._flat.device != cells.device:
                self._place(cells.device)
            if self._ones is None or self._ones.device != cells.device or self._ones.shape[0] < n:
                self._ones = torch.ones(max(n, 256), dtype=torch.int64, device=cells.device)
            self._flat.index_add_(0, cells, self._ones[:n])
            self.samples += n

    def load_sparse(self, index: np.ndarray, value: np.ndarray) -> None:
        """Replace the counts by sparse ones (``flat cell -> count``), on the CPU."""
        self._flat = torch.zeros(self.num_classes**2, dtype=torch.int64)
        self._host_flat = self._flat.numpy()
        self._host_flat[np.asarray(index, np.int64)] = np.asarray(value, np.int64)
        self.samples = int(self._host_flat.sum())

    def sum_over_ranks(self, call: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Replace the counts by their sum over every rank of a torch.distributed job (every
        rank must call it; see `nbviz._dist.all_reduce_sum`)."""
        if self._flat is None:  # this rank counted nothing: it adds zeros
            nccl = dist.is_initialized() and dist.get_backend() == "nccl"
            self._place(torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu")
        all_reduce_sum(self._flat, call, timeout)
        self.samples = int(self._flat.sum())

    def _place(self, device: torch.device | str) -> None:
        """Create the counts on ``device``, or move them there (data changed device)."""
        device = torch.device(device)
        K = self.num_classes
        if self._flat is None:
            self._flat = torch.zeros(K * K, dtype=torch.int64, device=device)
        else:
            self._flat = self._flat.to(device)
        self._host_flat = self._flat.numpy() if device.type == "cpu" else None

    def compute(self) -> np.ndarray:
        """The matrix as a CPU ``int64`` array (rows = true, columns = predicted)."""
        K = self.num_classes
        if self._flat is None:
            return np.zeros((K, K), dtype=np.int64)
        return self._flat.cpu().numpy().reshape(K, K).copy()

    def sparse(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-zero cells as ``(flat_index, count)``: what the browser needs,
        bounded by the samples seen rather than by K^2."""
        if self._flat is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if self._flat.device.type == "cpu":
            flat = self._flat.numpy()  # np.flatnonzero: ~15x faster than torch.nonzero on CPU
            idx = np.flatnonzero(flat)
            return idx, flat[idx].copy()
        idx = torch.nonzero(self._flat).flatten()
        return idx.cpu().numpy(), self._flat[idx].cpu().numpy()

    def reset(self) -> None:
        """Forget every count (the matrix stays where it is, zeroed)."""
        if self._flat is not None:
            self._flat.zero_()
        self.samples = 0


def accuracy(matrix: np.ndarray) -> float:
    """Overall accuracy: the diagonal over the total (NaN when empty)."""
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def per_class_metrics(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined, as
    sklearn's ``zero_division=0``)."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
    }
