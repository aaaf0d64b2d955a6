"""What a trace sees of each torch call (`Recorder`), and what a meta pass stands in for.

Every torch function, Tensor method and operator a forward calls passes through the
`Recorder` (a `TorchFunctionMode`), which runs it and hands it to the tracer as an op
node. In a meta pass it also keeps the pass true to the real forward: meta tensors
report the model's device, tensors that have values join meta ones as meta, a read of a
value computed from the weights raises `NeedsValues`, and results are remembered (a
meta result depends on nothing but the metadata of the arguments).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .flops import direct_formula
from .nested import map_tensors, tensors_in
from .ops import METADATA, NO_FLOPS, inplace_target, op_names


class NeedsValues(RuntimeError):
    """A meta pass reached code that reads a tensor's values (``.item()``, ``if t:``...)."""


# The device a meta tensor reports in a meta pass: what the real run's tensor would say.
_METHOD_WRAPPER = type(torch.Tensor.device.__get__)
_DEVICE_PROPERTIES = {
    torch._C.TensorBase.__dict__[name]: name
    for name in ("device", "is_meta", "is_cpu", "is_cuda", "is_mps", "is_xpu", "is_mtia")
    if name in torch._C.TensorBase.__dict__
}
# Calls that read a tensor's values (a meta tensor has none: the real pass must run).
_VALUE_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.__complex__,
    torch.Tensor.numpy,
    torch.Tensor.__array__,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
    torch.Tensor.data_ptr,
    torch.Tensor.untyped_storage,
    torch.Tensor.is_nonzero,
    torch.Tensor.equal,
    torch.equal,
    torch.is_nonzero,
}
_DEVICE_MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda}


class Recorder(TorchFunctionMode):
    """Sees every torch function, Tensor method and operator; records it as an op node.

    While a handler runs, the mode is off: the functions a call makes inside
    (``F.relu`` calling ``torch.relu``) are not seen, so each node is one call
    as written in the model's code.

    On meta tensors a call's result depends on nothing but the metadata of its
    arguments, and torch's meta kernels are mostly Python (a `layer_norm` takes
    about 1 ms), so results are remembered for the rest of the pass: the second
    of twelve identical transformer blocks costs only the bookkeeping. In a meta pass
    of a model that has values, meta tensors say they are on the model's device
    (``x.device``, ``x.is_cpu``...), a device argument naming that device means meta,
    and a call that reads values raises `NeedsValues`.
    """

    def __init__(self, tracer: Any) -> None:  # trace._Tracer: record_op, record_failure, flops
        super().__init__()
        self.tracer = tracer
        self.meta_pass = tracer.mode == "meta"
        self.known: dict[Any, tuple[Any, int | None]] | None = {} if self.meta_pass else None
        self.disguise = tracer.disguise

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        run, call_args, call_kwargs = func, args, kwargs
        if self.meta_pass:
            if type(func) is _METHOD_WRAPPER:
                prop = _DEVICE_PROPERTIES.get(getattr(func, "__self__", None))
                if prop is not None and args and _is_meta(args[0]):
                    return self._reported(prop)
            if func in METADATA:
                if func is torch.Tensor.get_device:
                    if _is_meta(args[0]):
                        return self.disguise.index if self.disguise.type != "cpu" else -1
                elif func is not torch.Tensor.data_ptr:
                    return func(*args, **kwargs)
            try:
                run, call_args, call_kwargs = self._meta_call(func, args, kwargs)
            except NeedsValues as exc:
                self.tracer.record_failure(func, args, kwargs, exc)
                raise
        elif func in METADATA:
            return func(*args, **kwargs)
        tracer = self.tracer
        key = None
        if self.known is not None and run is func:
            key = _meta_key(func, call_args, call_kwargs)
        target = before = None
        if key is not None:
            spec_flops = self.known.get(key)
            if spec_flops is not None:
                spec, flops = spec_flops
                out = _from_spec(spec, func, call_args, call_kwargs)
                if flops:
                    tracer.flops.total += flops
                tracer.record_op(func, args, kwargs, out, flops)
                return out
            target = inplace_target(func, call_args, call_kwargs)
            before = _layout(target) if target is not None else None
        counter = tracer.flops
        start = counter.total
        try:
            if func in NO_FLOPS or type(func) is _METHOD_WRAPPER:
                out = run(*call_args, **call_kwargs)
            elif (formula := direct_formula(run, call_args, call_kwargs)) is not None:
                out = run(*call_args, **call_kwargs)  # (counted as the counter would)
                counter.total += formula(out)
            else:
                with counter:
                    out = run(*call_args, **call_kwargs)
        except Exception as exc:
            tracer.record_failure(func, args, kwargs, exc)
            raise
        flops = counter.total - start
        if key is not None:
            if target is not None:  # in place: again, the same target, if its layout held
                same = out is target or (out is None and op_names(func)[0] == "setitem")
                spec = _WROTE if same and _layout(target) == before else None
            else:
                spec = _fresh_spec(out, call_args, call_kwargs, func)
            if spec is not None:
                self.known[key] = (spec, flops)
        tracer.record_op(func, args, kwargs, out, flops)
        return out

    def _reported(self, prop: str) -> Any:
        home = self.disguise
        if prop == "device":
            return home
        return prop == f"is_{home.type}"

    def _is_home(self, value: Any) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.disguise.type == "cuda" and value == self.disguise.index
        if not isinstance(value, (str, torch.device)):
            return False
        try:
            device = torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            return False
        home = self.disguise
        return device.type == home.type and device.index in (None, home.index)

    def _meta_call(self, func: Any, args: tuple, kwargs: dict) -> tuple[Any, tuple, dict]:
        """The call as the meta pass makes it.

        Tensors that do not depend on the weights (the inputs, masks built from them,
        positions from `arange`) keep their values, so the code branches on them as the
        real run does; where one meets a tensor computed from the weights (meta), it
        joins it on meta. A read of a meta tensor's values raises `NeedsValues`, as does
        a write of meta results into a tensor that has values. Moving a meta tensor to
        the model's device keeps it where it is (the real run's tensor is there already).
        """
        tensors = tensors_in((args, kwargs))
        metas = [t.is_meta for t in tensors]
        if not any(metas):
            return func, args, kwargs
        if func in _VALUE_READS:
            raise NeedsValues(
                f"{op_names(func)[1]} reads the values of a tensor computed from the "
                "weights; a meta pass has shapes only"
            )
        if not all(metas):
            target = inplace_target(func, args, kwargs)
            if target is not None and not target.is_meta:
                raise NeedsValues(
                    f"{op_names(func)[1]} writes values computed from the weights into a "
                    "tensor that has values; a meta pass has shapes only"
                )
            args, kwargs = map_tensors((args, kwargs), _to_meta)
        if func in _DEVICE_MOVES and args and _is_meta(args[0]):
            if func is not torch.Tensor.to:  # .cpu() / .cuda(): to the model's device?
                wanted = "cpu" if func is torch.Tensor.cpu else (args[1:2] or ["cuda"])[0]
                if self._is_home(wanted):
                    return (lambda t, *a, **k: t), args, kwargs  # already there
            else:
                args = (args[0], *("meta" if self._is_home(a) else a for a in args[1:]))
                if self._is_home(kwargs.get("device")):
                    kwargs = {**kwargs, "device": "meta"}
        return func, args, kwargs


def _to_meta(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_meta else t.to("meta")


def _is_meta(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_meta


def _meta_key(func: Any, args: tuple, kwargs: dict) -> Any:
    """A hashable description of a call on meta tensors, or None if it has none."""
    try:
        key = (func, _describe(args), _describe(kwargs))
        hash(key)
    except TypeError:  # an argument we can't describe (an object, a callable...)
        return None
    return key


_CONSTANTS = (int, float, bool, str, type(None), type(Ellipsis), torch.dtype, torch.device)


def _describe(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        if not o.is_meta or type(o) is not torch.Tensor and type(o) is not nn.Parameter:
            raise TypeError
        return ("T", tuple(o.shape), o.stride(), o.storage_offset(), o.dtype, o.requires_grad)
    if isinstance(o, _CONSTANTS) or isinstance(o, (torch.memory_format, torch.layout)):
        return (type(o), o)
    if isinstance(o, (tuple, list)):
        return (type(o), tuple(_describe(x) for x in o))
    if isinstance(o, dict):
        return (dict, tuple((k, _describe(v)) for k, v in o.items()))
    if isinstance(o, slice):
        return (slice, _describe(o.start), _describe(o.stop), _describe(o.step))
    raise TypeError


def _fresh_spec(out: Any, args: tuple, kwargs: dict, func: Any) -> Any:
    """How to remake ``out`` from scratch, or None when it must not be remade:
    it is (or shares memory with) an argument, or the call wrote in place. A view of
    a tensor made inside the call (``linear`` on 3-D input reshapes its matmul) is
    remade as a tensor of its own: nothing outside the call can reach its base."""
    if inplace_target(func, args, kwargs) is not None:
        return None
    given = set()
    for t in tensors_in((args, kwargs)):
        given.add(id(t))
        if t._base is not None:
            given.add(id(t._base))
    many = type(out) in (tuple, list)
    specs = []
    for t in out if many else (out,):
        if type(t) is not torch.Tensor or id(t) in given or not t.is_meta:
            return None
        if t._is_view() and (id(t._base) in given or t.storage_offset() != 0):
            return None
        specs.append((tuple(t.shape), t.stride(), t.dtype))
    return (type(out), specs) if many else specs[0]


_WROTE = ("wrote in place",)  # the spec of an in-place call: its target, unchanged layout


def _layout(t: torch.Tensor) -> tuple:
    return tuple(t.shape), t.stride(), t.storage_offset(), t.dtype


def _from_spec(spec: Any, func: Any = None, args: tuple = (), kwargs: dict | None = None) -> Any:
    if spec is _WROTE:  # an in-place call returns its target (x[i] = v returns None)
        target = inplace_target(func, args, kwargs or {})
        return None if op_names(func)[0] == "setitem" else target
    if spec[0] in (tuple, list):
        return spec[0](_from_spec(s) for s in spec[1])
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")
