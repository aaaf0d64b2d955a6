"""FLOPs of one forward, counted op by op with torch's own formulas (`torch.utils.flop_counter`)."""

from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, sdpa_flop_count, shape_wrapper

_PRIM_DEVICE = torch.ops.prim.device.default  # has no decomposition, and `decompose` fails


class FlopCounter(TorchDispatchMode):
    """A running FLOP total from torch's FLOP formulas (`torch.utils.flop_counter`).

    Leaner than `FlopCounterMode`, which tracks modules itself (hooks of its own) and
    runs Python decompositions of ops it has no formula for; here each aten op runs
    as it would and only the ops with a formula are counted. Taught the CPU kernels
    torch has no formula for: the fused RNN layers and CPU scaled-dot-product
    attention.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        aten = torch.ops.aten
        extra = {
            getattr(aten, name, None): shape_wrapper(formula)
            for name, formula in (
                ("mkldnn_rnn_layer", _rnn_layer_flop),
                ("_cudnn_rnn", _cudnn_rnn_flop),
                ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu_flop),
            )
        }
        self.formulas = {**flop_registry, **extra}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = self.formulas.get(getattr(func, "_overloadpacket", None))
        if formula is None and func is not _PRIM_DEVICE and isinstance(func, torch._ops.OpOverload):
            # Ops without a formula run as their decomposition where they have one (as
            # FlopCounterMode does): counted op by op, and much cheaper on fake tensors.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _rnn_layer_flop(input, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """One layer, one direction: a matmul with each weight matrix per step (time x batch)."""
    return 2 * math.prod(input[:-1]) * (math.prod(w_ih) + math.prod(w_hh))


def _sdpa_cpu_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Same count as torch's formula for the CUDA attention kernels."""
    return sdpa_flop_count(query, key, value)


def _cudnn_rnn_flop(input, weights, *args, out_shape=None, **kwargs) -> int:
    """All layers and directions at once: every weight matrix is used once per step."""
    return 2 * math.prod(input[:-1]) * sum(math.prod(w) for w in weights if len(w) == 2)


def flop_diff(start: int | None, end: int | None) -> int | None:
    """FLOPs between two readings of a running total (None if either is unknown)."""
    return end - start if start is not None and end is not None else None
