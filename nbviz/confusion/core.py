"""Counting core of the confusion matrix: headless, torch + numpy only.

Convention (sklearn's): rows are the true class, columns the predicted class.
Counts accumulate in place into one persistent ``(K*K,)`` tensor on the data's
device, so an update never allocates a K x K matrix; data reaches the CPU only
when someone reads the counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ArrayLike = Any  # torch.Tensor or np.ndarray


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an object array")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _is_integer(t: torch.Tensor) -> bool:
    return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool


def _argmax_rows(scores: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Row-wise argmax, and whether any row holds a NaN.

    NaN counts as the maximum in both numpy's and torch's argmax, so a row with
    a NaN has one at its argmax: checking the N picked scores finds every NaN
    without another pass over the N x K scores.
    """
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64):
        # torch's CPU argmax reduction is ~5x slower than numpy's SIMD argmax
        # (118 us vs 24 us for 256 x 1000 here); both return the first maximum.
        s = scores.numpy()
        pred = np.argmax(s, axis=1)
        has_nan = bool(np.isnan(s[np.arange(len(pred)), pred]).any())
        return torch.from_numpy(pred), has_nan
    pred = scores.argmax(dim=1)
    if not scores.dtype.is_floating_point:
        return pred, False
    picked = scores.gather(1, pred[:, None])
    return pred, torch.isnan(picked).any()  # a device tensor: synced with the other checks


def predicted_labels(outputs: ArrayLike, targets: ArrayLike, num_classes: int):
    """Validate one batch and return ``(pred, target)`` as int64 tensors on the
    outputs' device, or ``None`` for an empty batch.

    Raises ``ValueError``/``TypeError`` naming what was expected and what came;
    nothing is counted before every check has passed.
    """
    K = num_classes
    out = _as_tensor(outputs, "outputs")
    tgt = _as_tensor(targets, "targets")
    if not _is_integer(tgt):
        raise ValueError(
            f"targets must be integer class indices in [0, {K}), got dtype {tgt.dtype}"
        )
    if tgt.ndim != 1:
        raise ValueError(f"targets must have shape (N,), got shape {tuple(tgt.shape)}")
    n = tgt.shape[0]
    if tgt.device.type != "cpu" and out.device.type == "cpu":
        out = out.to(tgt.device)
    if out.ndim == 2:
        if out.shape[1] != K:
            raise ValueError(
                f"outputs of shape (N, K) must have K = {K} columns (one score per class), "
                f"got shape {tuple(out.shape)}"
            )
        if out.is_complex():
            raise ValueError(f"outputs must be real scores, got dtype {out.dtype}")
    elif out.ndim == 1:
        if not _is_integer(out):
            raise ValueError(
                "outputs of shape (N,) must be integer predicted labels, got dtype "
                f"{out.dtype}; pass logits or probabilities as shape (N, {K})"
            )
    else:
        raise ValueError(
            f"outputs must be scores of shape (N, {K}) or predicted labels of shape (N,), "
            f"got shape {tuple(out.shape)}"
        )
    if out.shape[0] != n:
        raise ValueError(
            f"outputs and targets must hold the same number of samples, got {out.shape[0]} "
            f"outputs and {n} targets"
        )
    if n == 0:
        return None
    tgt = tgt.to(out.device, non_blocking=True)

    if out.device.type == "cpu":
        # Plain numpy on the host: a handful of microseconds per check.
        t = tgt.numpy()
        lo, hi = int(t.min()), int(t.max())
        if out.ndim == 2:
            pred, has_nan = _argmax_rows(out)
            plo, phi = 0, 0
        else:
            p = out.numpy()
            pred, has_nan = out, False
            plo, phi = int(p.min()), int(p.max())
    else:
        if out.ndim == 2:
            pred, nan_flag = _argmax_rows(out)
            prange = [torch.zeros((), dtype=torch.long, device=out.device)] * 2
        else:
            pred, nan_flag = out, torch.zeros((), dtype=torch.bool, device=out.device)
            prange = list(torch.aminmax(pred.long()))
        # One host sync for all checks.
        stats = torch.stack(
            [
                *torch.aminmax(tgt.long()),
                *prange,
                torch.as_tensor(nan_flag, device=out.device).long(),
            ]
        )
        lo, hi, plo, phi, has_nan = stats.tolist()
    if has_nan:
        rows = torch.isnan(out).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"outputs contain NaN (rows {rows}); expected finite scores")
    if lo < 0 or hi >= K:
        bad = lo if lo < 0 else hi
        raise ValueError(f"targets must be class indices in [0, {K}), got {bad}")
    if plo < 0 or phi >= K:
        bad = plo if plo < 0 else phi
        raise ValueError(f"predicted labels must be class indices in [0, {K}), got {bad}")
    return pred.long(), tgt.to(pred.device).long()


class ConfusionCounter:
    """Accumulates a K x K confusion matrix, torchmetrics-style.

    >>> c = ConfusionCounter(3)
    >>> c.update(torch.tensor([[2.0, 0.1, 0.3]]), torch.tensor([0]))
    >>> c.compute()[0, 0], c.compute()[0, 2]
    (0, 1)
    """

    def __init__(self, num_classes: int):
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self._flat: torch.Tensor | None = None  # (K*K,) int64 on the data's device
        self._ones: torch.Tensor | None = None
        self.samples = 0

    def update(self, outputs: ArrayLike, targets: ArrayLike):
        """Count one batch. Returns the validated ``(pred, target)`` (or None)."""
        checked = predicted_labels(outputs, targets, self.num_classes)
        if checked is None:
            return None
        pred, tgt = checked
        self._count(pred, tgt)
        return pred, tgt

    def _count(self, pred: torch.Tensor, tgt: torch.Tensor) -> None:
        K, dev, n = self.num_classes, pred.device, pred.shape[0]
        if self._flat is None:
            self._flat = torch.zeros(K * K, dtype=torch.int64, device=dev)
        elif self._flat.device != dev:
            self._flat = self._flat.to(dev)
        if self._ones is None or self._ones.device != dev or self._ones.shape[0] < n:
            self._ones = torch.ones(max(n, 256), dtype=torch.int64, device=dev)
        self._flat.index_add_(0, tgt * K + pred, self._ones[:n])
        self.samples += n

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
