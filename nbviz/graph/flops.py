"""FLOPs of one forward, counted op by op with torch's own formulas (`torch.utils.flop_counter`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import (
    conv_flop_count,
    flop_registry,
    sdpa_flop_count,
    shape_wrapper,
)

_PRIM_DEVICE = torch.ops.prim.device.default  # has no decomposition, and `decompose` fails
_SHAPE_WRAPPER = shape_wrapper(lambda: 0).__code__  # torch's "tensors to shapes" wrapper
_IMPLICIT = torch._C.DispatchKey.CompositeImplicitAutograd


class FlopCounter(TorchDispatchMode):
    """A running FLOP total from torch's FLOP formulas (`torch.utils.flop_counter`).

    Leaner than `FlopCounterMode`, which tracks modules itself (hooks of its own) and
    runs Python decompositions of ops it has no formula for; here each aten op runs
    as it would and only the ops with a formula are counted. Taught the CPU kernels
    torch has no formula for: the fused RNN layers and CPU scaled-dot-product
    attention. Whether an op has a formula or a decomposition is looked up once per
    op, and formulas get shapes directly (torch's wrapper maps a pytree per call).

    >>> with FlopCounter() as counter:
    ...     _ = torch.ones(2, 3) @ torch.ones(3, 4)
    >>> counter.total
    48
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch would wrap `__torch_dispatch__` in `torch._dynamo.disable`, whose first call
        # imports torch._dynamo (about 1 s): no graph is ever compiled under this mode.
        return False

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.formulas = _formulas()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        plan = _PLANS.get(func)
        if plan is None:
            plan = _PLANS[func] = _plan(func, self.formulas)
        if plan is _DECOMPOSE:
            # Ops without a formula run as their decomposition where they have one (as
            # FlopCounterMode does): counted op by op, and much cheaper on fake tensors.
            # One whose decomposition counts nothing (batch norm: elementwise ops) runs
            # as it is from then on: on real tensors the fused kernel is the faster.
            start = self.total
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                if self.total == start:
                    _PLANS[func] = _RUN
                return out
            plan = _PLANS[func] = _RUN
        out = func(*args, **kwargs)
        if plan is not _RUN:
            raw, formula = plan
            if raw:
                self.total += formula(*args, **kwargs, out_val=out)
            else:
                self.total += formula(*_shapes(args), **_shapes(kwargs), out_shape=_shapes(out))
        return out


@functools.cache
def _formulas() -> dict[Any, Any]:
    """The FLOP formulas: torch's, with the CPU kernels it has none for, and ``addmm``
    and ``baddbmm`` counted directly (torch's call its own wrapped ``mm``/``bmm``
    formulas, which map a pytree of shapes again on every call)."""
    aten = torch.ops.aten
    extra = {
        getattr(aten, name, None): shape_wrapper(formula)
        for name, formula in (
            ("mkldnn_rnn_layer", _rnn_layer_flop),
            ("_cudnn_rnn", _cudnn_rnn_flop),
            ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu_flop),
            ("addmm", _addmm_flop),
            ("baddbmm", _baddbmm_flop),
        )
    }
    return {**flop_registry, **extra}


_RUN = "run"  # no formula, no decomposition: run the op as it is
_DECOMPOSE = "decompose"
_PLANS: dict[Any, Any] = {}  # op -> _RUN, _DECOMPOSE or (raw, formula)


def _plan(func: Any, formulas: dict[Any, Any]) -> Any:
    formula = formulas.get(getattr(func, "_overloadpacket", None))
    if formula is not None:
        inner = getattr(formula, "__wrapped__", None)
        if inner is not None and getattr(formula, "__code__", None) is _SHAPE_WRAPPER:
            return (False, inner)
        return (True, formula)
    if func is _PRIM_DEVICE or not isinstance(func, torch._ops.OpOverload):
        return _RUN
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key  # noqa: SLF001 (as torch's decompose)
    if _IMPLICIT in func.py_kernels or has_kernel(func.name(), _IMPLICIT):
        return _DECOMPOSE
    return _RUN


def _shapes(o: Any) -> Any:
    """``o`` with every tensor replaced by its shape (in tuples, lists and dicts too)."""
    if isinstance(o, torch.Tensor):
        return o.shape
    kind = type(o)
    if kind is tuple or kind is list:
        return kind([x if type(x) in _SCALARS else _shapes(x) for x in o])
    if kind is dict:
        return {k: _shapes(v) for k, v in o.items()}
    return o


_SCALARS = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device})


# --- FLOPs without the counter -------------------------------------------------------------------

_CONVS = {torch.conv1d, torch.conv2d, torch.conv3d}  # F.conv1d... are the same functions
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def direct_formula(func: Any, args: tuple, kwargs: dict) -> Callable[[Any], int] | None:
    """For a call the counter would see as exactly one op with a formula (a batched
    convolution: aten.convolution; a linear layer: addmm, mm or bmm on its input's rows),
    on plain strided tensors: its FLOPs as a function of its output, by the same formula,
    without running it under the counter (whose dispatch costs tens of µs a call).
    None: any other call, to be counted by `FlopCounter`."""
    if func in _CONVS:
        x = args[0] if args else kwargs.get("input")
        w = args[1] if len(args) > 1 else kwargs.get("weight")
        if _plain(x) and _plain(w) and x.dim() == w.dim() >= 3:  # batched: as aten sees it
            x_shape, w_shape = x.shape, w.shape
            return lambda out: conv_flop_count(x_shape, w_shape, out.shape)
    elif func is F.linear:
        x = args[0] if args else kwargs.get("input")
        w = args[1] if len(args) > 1 else kwargs.get("weight")
        if _plain(x) and _plain(w) and x.dim() >= 2 and w.dim() == 2:
            # addmm / mm on (rows, in) x (in, out), or bmm on batches of rows: 2 FLOPs
            # a multiply-add, the bias not counted (as torch's formulas).
            flops = 2 * math.prod(x.shape[:-1]) * w.shape[1] * w.shape[0]
            return lambda out: flops
    return None


def _plain(t: Any) -> bool:
    return type(t) in _PLAIN and t.layout == torch.strided and not t.is_nested


def _addmm_flop(self_shape, a_shape, b_shape, out_shape=None, **kwargs) -> int:
    """As torch's: the matmul's, 2 FLOPs a multiply-add (the added bias is not counted)."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _baddbmm_flop(self_shape, a_shape, b_shape, out_shape=None, **kwargs) -> int:
    """As torch's: the batched matmul's."""
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]


def _rnn_layer_flop(input, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """One layer, one direction: a matmul with each weight matrix per step (time x batch)."""
    return 2 * math.prod(input[:-1]) * (math.prod(w_ih) + math.prod(w_hh))


def _sdpa_cpu_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Same count as torch's formula for the CUDA attention kernels."""
    return sdpa_flop_count(query, key, value)


def _cudnn_rnn_flop(input, weights, *args, out_shape=None, **kwargs) -> int:
    """All layers and directions at once: every weight matrix is used once per step."""
    return 2 * math.prod(input[:-1]) * sum(math.prod(w) for w in weights if len(w) == 2)
