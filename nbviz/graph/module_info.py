"""What the graph says of each module: its type, repr, parameters and weight histogram."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .nested import dtype_name

REPR_LIMIT = 2000  # characters of a repr or an error message kept
_BINS = 30  # bins of a weight histogram


def modules_info(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The MODULE entries of the data contract, one per module object."""
    info = {}
    for path, m in model.named_modules():
        own = [(n, p) for n, p in m._parameters.items() if p is not None]
        info[path] = {
            "type": type(m).__name__,
            "repr": _safe_repr(m)[:REPR_LIMIT],
            "params": [
                {"name": n, "shape": list(p.shape), "numel": p.numel(), "dtype": dtype_name(p)}
                for n, p in own
            ],
            "params_own": sum(p.numel() for _, p in own),
            "params_total": sum(p.numel() for p in m.parameters()),
            "histogram": None,  # filled lazily by histograms_of
        }
    return info


def histograms_of(model: nn.Module) -> Callable[[], dict[str, Any]]:
    """A function computing every module's weight histogram later, if the model still exists."""
    ref = weakref.ref(model)

    def compute() -> dict[str, Any]:
        m = ref()
        if m is None:
            return {}
        return {
            path: _histogram([p for p in mod._parameters.values() if p is not None])
            for path, mod in m.named_modules()
        }

    return compute


def _histogram(params: list[torch.Tensor]) -> dict[str, list] | None:
    """30-bin numpy histogram of the values of ``params`` together; None without values."""
    arrays = []
    for p in params:
        if p.is_meta or _is_fake(p) or p.is_complex():
            return None
        if p.numel() == 0:
            continue
        arrays.append(p.detach().reshape(-1).float().cpu().numpy())
    if not arrays:
        return None
    lo = min(float(np.nanmin(a)) for a in arrays)
    hi = max(float(np.nanmax(a)) for a in arrays)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    # One range for all arrays: the sum of their counts is the histogram of the concatenation.
    counts = np.zeros(_BINS, dtype=np.int64)
    edges = None
    for a in arrays:
        c, edges = np.histogram(a, bins=_BINS, range=(lo, hi))
        counts += c
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


def _safe_repr(m: nn.Module) -> str:
    try:
        return repr(m)
    except Exception as exc:  # a broken extra_repr must not stop the trace
        return f"{type(m).__name__}(<repr failed: {exc}>)"
