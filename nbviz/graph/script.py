"""Run a TorchScript module (`torch.jit.trace` or `torch.jit.script`) node by node in Python.

TorchScript runs its graph in C++, where no torch function is seen from Python: traced as
it is, a ScriptModule is one opaque box. Here its graph runs node by node instead: each
``aten::`` node is a call of `torch.ops.aten` (seen and recorded like any other op, with
its readable name: "linear", "_convolution"...), each ``prim::CallMethod`` of a submodule's
``forward`` a module call. A graph with a node this runner does not know (attribute
writes, function calls, isinstance checks...) is left to TorchScript, as one box.

>>> import torch
>>> net = torch.jit.trace(torch.nn.Linear(2, 3), torch.zeros(1, 2))  # doctest: +SKIP
>>> runnable(net)  # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Nodes the runner executes itself (beside every ``aten::`` operator with a schema).
_PRIMS = {
    "prim::Constant",
    "prim::GetAttr",
    "prim::CallMethod",
    "prim::CallFunction",
    "prim::ListConstruct",
    "prim::TupleConstruct",
    "prim::DictConstruct",
    "prim::ListUnpack",
    "prim::TupleUnpack",
    "prim::TupleIndex",
    "prim::NumToTensor",
    "prim::device",
    "prim::dtype",
    "prim::If",
    "prim::Loop",
    "prim::unchecked_cast",
    "prim::Uninitialized",
    "prim::RaiseException",
    "aten::__is__",
    "aten::__isnot__",
    "aten::__not__",
    "aten::Int",
    "aten::Float",
    "aten::Bool",
    "aten::ScalarImplicit",
    "aten::__getitem__",
    "aten::len",
    "aten::append",
    "aten::extend",
    "aten::__contains__",
}
_MUTATING = {"aten::append", "aten::extend"}
# Python's own meaning of the list and scalar nodes (TorchScript's lists are mutable and
# shared; a trip through torch.ops would copy them).
_PYTHON = {
    "aten::__is__": lambda a, b: a is b,
    "aten::__isnot__": lambda a, b: a is not b,
    "aten::__not__": lambda a: not a,
    "aten::Int": int,
    "aten::Float": float,
    "aten::Bool": bool,
    "aten::ScalarImplicit": lambda t: t.item(),
    "aten::__getitem__": lambda seq, i: seq[i],
    "aten::len": len,
    "aten::__contains__": lambda seq, x: x in seq,
}
# List overloads of operators that also have tensor overloads (by schema name).
_LIST_OPS = {
    "aten::add.t": lambda a, b: a + b,
    "aten::slice.t": lambda seq, start=None, end=None, step=1: seq[start:end:step],
    "aten::mul.left_t": lambda seq, n: seq * n,
    "aten::eq.int_list": lambda a, b: a == b,
}


def runnable(module: nn.Module) -> bool:
    """Whether this runner can run ``module.forward`` and every method it calls."""
    graph = _method(module, "forward")
    return graph is not None and _runnable(graph.graph, module, set())


def _runnable(graph: Any, module: Any, seen: set[tuple[int, str]]) -> bool:
    objects = {next(iter(graph.inputs())).unique(): module}  # values that are modules
    return _block_runnable(graph.nodes(), objects, seen)


def _block_runnable(nodes: Any, objects: dict[int, Any], seen: set[tuple[int, str]]) -> bool:
    for node in nodes:
        kind = node.kind()
        if kind not in _PRIMS and not (kind.startswith("aten::") and _op(node) is not None):
            return False
        if kind == "prim::CallFunction" and _function(node) is None:
            return False
        if kind == "prim::GetAttr":
            owner = objects.get(next(iter(node.inputs())).unique())
            value = getattr(owner, node.s("name"), None) if owner is not None else None
            if isinstance(value, nn.Module):
                objects[node.output().unique()] = value
        elif kind == "prim::CallMethod":
            target = objects.get(next(iter(node.inputs())).unique())
            method = node.s("name")
            if target is None:
                return False
            key = (id(target), method)
            if key not in seen:
                seen.add(key)
                found = _method(target, method)
                if found is None or not _runnable(found.graph, target, seen):
                    return False
        for block in node.blocks():
            if not _block_runnable(block.nodes(), objects, seen):
                return False
    return True


def _method(module: Any, name: str) -> Any:
    """The compiled method ``name`` of a ScriptModule (None if it has none), from its
    C++ module: a traced submodule's Python ``forward`` is a plain method calling it."""
    c = getattr(module, "_c", None)  # the C++ module: TorchScript's only handle on it
    if c is None or not c._has_method(name):  # noqa: SLF001
        return None
    return c._get_method(name)  # noqa: SLF001


def _function(node: Any) -> Any:
    """The Python function a ``prim::CallFunction`` node calls (``F.relu``...), or None."""
    name = str(next(iter(node.inputs())).type())
    if name not in _FUNCTIONS:
        _FUNCTIONS[name] = _python_function(name.removeprefix("__torch__."))
    return _FUNCTIONS[name]


_FUNCTIONS: dict[str, Any] = {}


def _python_function(qualified: str) -> Any:
    module_name, _, attr = qualified.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
        inspect.signature(fn)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return fn if callable(fn) else None


def _call_python(fn: Any, args: list) -> Any:
    """``fn`` with TorchScript's positional arguments (keyword-only ones by name)."""
    positional, keywords = [], {}
    for param, value in zip(inspect.signature(fn).parameters.values(), args, strict=False):
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            keywords[param.name] = value
        else:
            positional.append(value)
    return fn(*positional, **keywords)


def _op(node: Any) -> Any:
    """The `torch.ops` overload of an ``aten::`` node (None if there is none)."""
    try:
        schema = node.schema()
    except RuntimeError:
        return None
    if schema not in _OPS:
        _OPS[schema] = _resolve(schema)
    return _OPS[schema]


_OPS: dict[str, Any] = {}


def _resolve(schema: str) -> Any:
    name = schema.partition("(")[0].strip()
    if name in _LIST_OPS:
        return _LIST_OPS[name]
    if not name.startswith("aten::"):
        return None
    base, _, overload = name.removeprefix("aten::").partition(".")
    try:
        op = getattr(getattr(torch.ops.aten, base), overload or "default")
    except (AttributeError, RuntimeError):
        return None
    args = op._schema.arguments  # noqa: SLF001 (an operator's schema: torch has no other name)
    for a in args:
        # A write into a list argument would be lost in torch.ops' copy of the list, and
        # generic list types (List[t]) do not convert from Python at all.
        if a.alias_info is not None and a.alias_info.is_write and "[]" in str(a.type):
            return None
        if re.search(r"\bt\b", str(a.type)):
            return None
    kwarg_only = [a.name for a in args if a.kwarg_only]
    enums = [
        (i, table)
        for i, a in enumerate(args)
        for kind, table in _ENUMS.items()
        if kind in str(a.type)
    ]
    return op, len(args) - len(kwarg_only), kwarg_only, enums


# TorchScript passes dtypes, layouts and memory formats as numbers; torch.ops from Python
# wants the torch objects.
_ENUMS = {
    "ScalarType": dict(
        enumerate(
            [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16]
            + [torch.float32, torch.float64, torch.complex32, torch.complex64]
            + [torch.complex128, torch.bool, torch.qint8, torch.quint8, torch.qint32]
            + [torch.bfloat16]
        )
    ),
    "Layout": dict(enumerate([torch.strided, torch.sparse_coo])),
    "MemoryFormat": dict(
        enumerate(
            [torch.contiguous_format, torch.preserve_format, torch.channels_last]
            + [torch.channels_last_3d]
        )
    ),
}


class ScriptRunner:
    """Runs script methods in Python; module calls go through ``enter``/``leave`` (the
    tracer's records of a module call), ops through torch (and the tracer's mode)."""

    def __init__(
        self,
        enter: Callable[[nn.Module, tuple, dict], None],
        leave: Callable[[nn.Module, tuple, dict, Any], None],
    ) -> None:
        self.enter = enter
        self.leave = leave

    def forward(self, module: nn.Module) -> Callable[..., Any]:
        """A stand-in for ``module.forward`` that runs its graph here (taken before the
        stand-in replaces it)."""
        compiled = _method(module, "forward")

        def forward(*args: Any, **kwargs: Any) -> Any:
            return self.method(module, "forward", args, kwargs, compiled)

        return forward

    def method(
        self, module: Any, name: str, args: tuple, kwargs: dict, compiled: Any = None
    ) -> Any:
        """Run ``module``'s script method ``name`` (``compiled``, when given) on these
        arguments, node by node; its result."""
        method = compiled if compiled is not None else _method(module, name)
        params = method.schema.arguments[1:]
        values = list(args)
        for p in params[len(args) :]:
            if p.name in kwargs:
                values.append(kwargs[p.name])
            elif p.has_default_value():
                values.append(p.default_value)
            else:
                raise TypeError(f"{name}() missing the argument {p.name!r}")
        graph = method.graph
        env = {v.unique(): x for v, x in zip(graph.inputs(), [module, *values], strict=True)}
        self._run(graph.nodes(), env)
        outputs = [env[v.unique()] for v in graph.outputs()]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _call(self, module: Any, name: str, args: tuple) -> Any:
        if name != "forward":
            return self.method(module, name, args, {})
        self.enter(module, args, {})
        try:
            out = self.method(module, name, args, {})
        except Exception:
            self.leave(module, args, {}, None)  # (sees the exception, as an always_call hook)
            raise
        self.leave(module, args, {}, out)
        return out

    def _run(self, nodes: Any, env: dict[int, Any]) -> None:
        for node in nodes:
            kind = node.kind()
            ins = [env[v.unique()] for v in node.inputs()]
            outs = list(node.outputs())
            if kind == "prim::If":
                block = list(node.blocks())[0 if ins[0] else 1]
                self._run(block.nodes(), env)
                values = [env[v.unique()] for v in block.outputs()]
                results = values[0] if len(values) == 1 else values
            elif kind == "prim::Loop":
                results = self._loop(node, ins, env)
            elif kind == "prim::CallMethod":
                results = self._call(ins[0], node.s("name"), tuple(ins[1:]))
            elif kind == "prim::CallFunction":  # a Python function: its ops are recorded
                results = _call_python(_function(node), ins[1:])
            elif kind.startswith("prim::") or kind in _PYTHON or kind in _MUTATING:
                with torch._C.DisableTorchFunction():  # plumbing, not ops of the model
                    results = self._prim(node, kind, ins)
            else:
                results = self._aten(node, ins)
            if len(outs) == 1:
                env[outs[0].unique()] = results
            elif outs:
                for v, x in zip(outs, results, strict=True):
                    env[v.unique()] = x

    def _loop(self, node: Any, ins: list, env: dict[int, Any]) -> list:
        trips, go, carried = ins[0], ins[1], ins[2:]
        block = next(iter(node.blocks()))
        params = list(block.inputs())
        i = 0
        while go and i < trips:
            for v, x in zip(params, [i, *carried], strict=True):
                env[v.unique()] = x
            self._run(block.nodes(), env)
            go, *carried = [env[v.unique()] for v in block.outputs()]
            i += 1
        return carried if len(carried) != 1 else carried[0]

    def _prim(self, node: Any, kind: str, ins: list) -> Any:
        if kind == "prim::Constant":
            return node.output().toIValue()
        if kind == "prim::GetAttr":
            return getattr(ins[0], node.s("name"))
        if kind == "prim::ListConstruct":
            return list(ins)
        if kind == "prim::TupleConstruct":
            return tuple(ins)
        if kind == "prim::DictConstruct":
            return dict(zip(ins[::2], ins[1::2], strict=True))
        if kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            return list(ins[0])
        if kind == "prim::TupleIndex":
            return ins[0][ins[1]]
        if kind == "prim::NumToTensor":
            return torch.tensor(ins[0])
        if kind == "prim::device":
            return ins[0].device
        if kind == "prim::dtype":
            return ins[0].dtype
        if kind == "prim::unchecked_cast":
            return ins[0]
        if kind == "prim::Uninitialized":
            return None
        if kind == "prim::RaiseException":
            raise RuntimeError(ins[0] if ins else "TorchScript raised an exception")
        if kind == "aten::append":
            ins[0].append(ins[1])
            return ins[0]
        if kind == "aten::extend":
            ins[0].extend(ins[1])
            return None
        return _PYTHON[kind](*ins)

    def _aten(self, node: Any, ins: list) -> Any:
        found = _op(node)
        if not isinstance(found, tuple):  # a list overload, in Python
            with torch._C.DisableTorchFunction():
                return found(*ins)
        op, positional, kwarg_only, enums = found
        for i, table in enums:
            if isinstance(ins[i], int) and not isinstance(ins[i], bool):
                ins[i] = table.get(ins[i], ins[i])
        kwargs = dict(zip(kwarg_only, ins[positional:], strict=True))
        return op(*ins[:positional], **kwargs)
