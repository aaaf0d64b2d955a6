"""What the graph says of each module: its type, repr, parameters and weight histogram."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .nested import dtype_name

try:  # torch's own indentation of a child's text, for `_repr`
    from torch.nn.modules.module import _addindent
except ImportError:  # pragma: no cover - a torch without it: plain repr
    _addindent = None

REPR_LIMIT = 2000  # characters of a repr or an error message kept
_BINS = 30  # bins of a weight histogram


class ModuleRow(NamedTuple):
    """One module of a model as the tracer and the graph see it."""

    path: str
    module: nn.Module
    own: list[tuple[str, torch.Tensor]]  # the parameters it holds itself
    params_own: int
    params_total: int  # its own and its submodules', each shared parameter once


def module_table(model: nn.Module, prefix: str = "") -> list[ModuleRow]:
    """Every module of ``model`` in ``named_modules`` order, with its parameter counts.

    One walk of the tree: a module's total is its own count plus its children's, or,
    where a parameter or a module is shared (weight tying, a block used twice), the
    size of the set of parameters under it (as ``m.parameters()`` counts them, each once).
    """
    named = list(model.named_modules(prefix=prefix))
    owns = [[(n, p) for n, p in m._parameters.items() if p is not None] for _, m in named]
    children = [[c for _, c in m.named_children()] for _, m in named]
    params = [id(p) for own in owns for _, p in own]
    shared = len(set(params)) < len(params) or sum(map(len, children)) != len(named) - 1
    own_counts = [sum(p.numel() for _, p in own) for own in owns]
    totals: dict[int, int] = {}
    if not shared:  # a tree: totals add up from the leaves
        rows = zip(reversed(named), reversed(own_counts), reversed(children), strict=True)
        for (_, m), count, kids in rows:
            totals[id(m)] = count + sum(totals[id(c)] for c in kids)
    else:
        under: dict[int, dict[int, int]] = {}

        def params_under(m: nn.Module) -> dict[int, int]:
            found = under.get(id(m))
            if found is None:
                found = {id(p): p.numel() for p in m._parameters.values() if p is not None}
                for _, child in m.named_children():
                    found.update(params_under(child))
                under[id(m)] = found
            return found

        for _, m in named:
            totals[id(m)] = sum(params_under(m).values())
    return [
        ModuleRow(path, m, own, count, totals[id(m)])
        for (path, m), own, count in zip(named, owns, own_counts, strict=True)
    ]


def modules_info(
    model: nn.Module, rows: list[ModuleRow] | None = None
) -> dict[str, dict[str, Any]]:
    """The MODULE entries of the data contract, one per module object (``rows`` from
    `module_table`, when the caller has them)."""
    reprs: dict[int, str] = {}
    info = {}
    for row in rows if rows is not None else module_table(model):
        info[row.path] = {
            "type": type_name(row.module),
            "repr": _safe_repr(row.module, reprs)[:REPR_LIMIT],
            "params": [
                {"name": n, "shape": list(p.shape), "numel": p.numel(), "dtype": dtype_name(p)}
                for n, p in row.own
            ],
            "params_own": row.params_own,
            "params_total": row.params_total,
            "histogram": None,  # filled lazily by histograms_of
        }
    return info


def type_name(m: nn.Module) -> str:
    """The module's class name; for a TorchScript module, its Python class's ("Conv2d",
    not "RecursiveScriptModule" or "TracedModule")."""
    if isinstance(m, torch.jit.ScriptModule):
        name = getattr(m, "original_name", None)
        if isinstance(name, str) and name:
            return name
    return type(m).__name__


def histograms_of(
    model: nn.Module, extra: list[tuple[str, nn.Module]] = ()
) -> Callable[[], dict[str, Any]]:
    """A function computing every module's weight histogram later, if the model still
    exists (``extra``: (path, module) of modules the model does not register)."""
    ref = weakref.ref(model)
    refs = [(path, weakref.ref(m)) for path, m in extra]

    def compute() -> dict[str, Any]:
        m = ref()
        if m is None:
            return {}
        found = {
            path: _histogram([p for p in mod._parameters.values() if p is not None])
            for path, mod in m.named_modules()
        }
        for path, mref in refs:
            other = mref()
            for sub_path, mod in other.named_modules(prefix=path) if other is not None else ():
                found.setdefault(
                    sub_path, _histogram([p for p in mod._parameters.values() if p is not None])
                )
        return found

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


def _safe_repr(m: nn.Module, memo: dict[int, str] | None = None) -> str:
    try:
        return _repr(m, {} if memo is None else memo)
    except Exception as exc:  # a broken extra_repr must not stop the trace
        return f"{type(m).__name__}(<repr failed: {exc}>)"


def _repr(m: nn.Module, memo: dict[int, str]) -> str:
    """``repr(m)``, each submodule's text made once: torch's `Module.__repr__` rebuilds every
    subtree's text at every level above it (quadratic in the depth of the tree)."""
    text = memo.get(id(m))
    if text is not None:
        return text
    children = vars(m).get("_modules")  # with None entries, as torch prints them
    if type(m).__repr__ is not nn.Module.__repr__ or _addindent is None or children is None:
        text = repr(m)  # a class with its own repr (ModuleList folds repeats): as it is
    else:  # nn.Module.__repr__, with the children's texts from the memo
        extra = m.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for key, child in children.items():
            inner = _repr(child, memo) if child is not None else "None"
            # torch's _addindent(inner, 2), which leaves a one-line text (most leaves) as it is
            child_lines.append(f"({key}): " + (_addindent(inner, 2) if "\n" in inner else inner))
        lines = extra_lines + child_lines
        text = m._get_name() + "("  # noqa: SLF001 (the name torch's repr prints)
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        text += ")"
    memo[id(m)] = text
    return text
