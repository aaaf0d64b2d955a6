"""Tensors inside nested inputs and outputs (tuples, lists, dicts, dataclasses): finding,
naming, describing and converting them."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn


def tensor_meta(t: torch.Tensor) -> dict[str, Any]:
    """A tensor's shape and dtype, as the graph's TensorMeta."""
    try:
        shape = list(map(int, t.shape))  # (symbolic sizes: as plain ints)
    except Exception:  # nested or symbolic shapes: no single shape to show
        shape = []
    name = _DTYPE_NAMES.get(t.dtype)
    return {"shape": shape, "dtype": name if name is not None else dtype_name(t)}


def dtype_name(t: torch.Tensor) -> str:
    """The dtype without torch's prefix: "float32"."""
    dtype = t.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


_DTYPE_NAMES: dict[torch.dtype, str] = {}


_ATOMS = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device)
# Exact types that hold no tensor: skipped by one set lookup (most arguments of an op).
_LEAVES = frozenset({*_ATOMS, torch.Size, torch.memory_format, torch.layout, slice})


def tensors_in(obj: Any) -> list[torch.Tensor]:
    """Every tensor in a nest of tuples, lists, dicts and dataclasses, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    found: list[torch.Tensor] = []
    _walk(obj, 0, found)
    return found


def _walk(o: Any, depth: int, found: list[torch.Tensor]) -> None:
    kind = type(o)
    if kind in _LEAVES:
        return
    if kind is tuple or kind is list:
        for x in o:
            if type(x) in _LEAVES:
                continue
            if isinstance(x, torch.Tensor):
                found.append(x)
            elif depth < 20:
                _walk(x, depth + 1, found)
    elif kind is dict:  # (keyword arguments: as the general case below, sooner)
        if depth > 20:
            return
        for x in o.values():
            if type(x) in _LEAVES:
                continue
            if isinstance(x, torch.Tensor):
                found.append(x)
            else:
                _walk(x, depth + 1, found)
    elif isinstance(o, torch.Tensor):
        found.append(o)
    elif depth > 20 or isinstance(o, _ATOMS):
        return
    elif isinstance(o, (tuple, list)):
        for x in o:
            _walk(x, depth + 1, found)
    elif isinstance(o, dict):
        for x in o.values():
            _walk(x, depth + 1, found)
    elif hasattr(kind, "__dataclass_fields__") and not isinstance(o, type):
        for f in dataclasses.fields(o):
            _walk(getattr(o, f.name, None), depth + 1, found)


def leaves(obj: Any, prefix: str, depth: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor in a nest: "output[0]", "output['logits']"..."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif depth > 20:
        return
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        for field in obj._fields:
            yield from leaves(getattr(obj, field), f"{prefix}.{field}", depth + 1)
    elif isinstance(obj, (tuple, list)):
        for i, x in enumerate(obj):
            yield from leaves(x, f"{prefix}[{i}]", depth + 1)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            yield from leaves(x, f"{prefix}[{k!r}]", depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from leaves(getattr(obj, f.name, None), f"{prefix}.{f.name}", depth + 1)


def signature_of(fn: Any) -> inspect.Signature:
    """``inspect.signature(fn)``, worked out once per function (a bound method's without
    its ``self``; held weakly): it costs more than recording a small model's ops."""
    func = getattr(fn, "__func__", fn)
    key = func is not fn  # bound or not
    try:
        known = _SIGNATURES.setdefault(func, {})
    except TypeError:  # not weakly referenceable, or unhashable
        return inspect.signature(fn)
    if key not in known:
        known[key] = inspect.signature(fn)
    return known[key]


_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def named_inputs(forward: Any, args: tuple, kwargs: dict) -> list[tuple[str, torch.Tensor]]:
    """Input tensors named after forward's parameters: "x", "kwargs.mask", "args[1]"."""
    schema = getattr(forward, "schema", None)  # a TorchScript method: names from its schema
    if schema is not None and not kwargs:
        names = [a.name for a in schema.arguments[1:]]
        if len(names) >= len(args):
            return [leaf for name, a in zip(names, args, strict=False) for leaf in leaves(a, name)]
    try:
        signature = signature_of(forward)
        bound = signature.bind(*args, **kwargs)
    except (TypeError, ValueError):  # forward will complain itself; name by position
        return [
            *(leaf for i, a in enumerate(args) for leaf in leaves(a, f"args[{i}]")),
            *(leaf for k, v in kwargs.items() for leaf in leaves(v, f"kwargs.{k}")),
        ]
    named = []
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            for i, v in enumerate(value):
                named += leaves(v, f"{name}[{i}]")
        elif kind is inspect.Parameter.VAR_KEYWORD:
            for k, v in value.items():
                named += leaves(v, f"{name}.{k}")
        else:
            named += leaves(value, name)
    return named


def map_tensors(obj: Any, fn: Any, leaf: type = torch.Tensor, where: str = "") -> Any:
    """``obj`` with every ``leaf`` (a tensor by default) replaced by ``fn(value)``, or by
    ``fn(value, where)`` given ``where``: the value's place, as in "args[0]['ids']"
    (containers rebuilt)."""
    if isinstance(obj, leaf):
        return fn(obj, where) if where else fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        items = zip(obj._fields, obj, strict=True)
        return type(obj)(*(map_tensors(x, fn, leaf, where and f"{where}.{n}") for n, x in items))
    if isinstance(obj, (tuple, list)):
        items = enumerate(obj)
        return type(obj)(map_tensors(x, fn, leaf, where and f"{where}[{i}]") for i, x in items)
    if isinstance(obj, dict):
        mapped = {k: map_tensors(v, fn, leaf, where and f"{where}[{k!r}]") for k, v in obj.items()}
        try:
            return type(obj)(mapped)
        except Exception:  # a dict subclass with its own constructor
            return mapped
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: map_tensors(getattr(obj, f.name), fn, leaf, where and f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
            if f.init and hasattr(obj, f.name)
        }
        try:
            return dataclasses.replace(obj, **changes)
        except Exception:  # a dataclass that can't be rebuilt from its fields: as it is
            return obj
    return obj


def model_float_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter or buffer (None: none)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def from_numpy(array: np.ndarray, where: str, float_dtype: torch.dtype | None) -> torch.Tensor:
    """A copy of ``array`` as a tensor, as ``nbviz.cam`` does: floating arrays take the
    model's floating dtype (numpy's default float64 would not meet float32 weights), integer
    and bool arrays keep theirs (token ids, masks). The device is the tracer's business, as
    for tensor inputs."""
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"input {where} is a numpy array of dtype {array.dtype}; expected a tensor or "
            "a numeric numpy array"
        )
    cast = float_dtype if array.dtype.kind == "f" else None
    return torch.tensor(array, dtype=cast)  # a copy: the model may write into its input
