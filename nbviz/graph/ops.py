"""Op names as the graph shows them, and which ops write into their input."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

# Calls that only read metadata: skipped before any bookkeeping (others are skipped
# later too when they return no tensor).
METADATA = {
    torch.Tensor.size,
    torch.Tensor.dim,
    torch.Tensor.numel,
    torch.Tensor.stride,
    torch.Tensor.__len__,
    torch.Tensor.is_contiguous,
    torch.Tensor.is_floating_point,
    torch.Tensor.is_complex,
    torch.Tensor.data_ptr,
    torch.Tensor.element_size,
    torch.Tensor.get_device,
}
# Calls whose aten ops never include one that has a FLOP formula (matmuls, convolutions,
# attention): elementwise math, normalisation, pooling, shapes, creation. They run outside
# the FLOP counter, saving its per-op Python dispatch; any call not named here is counted.
_NO_FLOP_NAMES = """
add add_ sub sub_ rsub mul mul_ div div_ true_divide floor_divide remainder neg abs exp
exp_ log log_ sqrt rsqrt pow pow_ sin cos tanh tanh_ sigmoid sigmoid_ relu relu_ clamp
clamp_ clip clip_ masked_fill masked_fill_ where maximum minimum max min sum mean var std
amax amin argmax argmin softmax log_softmax cumsum eq ne lt le gt ge logical_and
logical_or logical_not bitwise_and bitwise_or bitwise_not all any isnan isinf nan_to_num
view view_as reshape reshape_as permute transpose t flatten unflatten squeeze unsqueeze
contiguous expand expand_as repeat repeat_interleave split chunk unbind narrow select
index_select gather scatter scatter_ cat concat stack flip roll tril triu to type float
half double long int bool bfloat16 clone detach fill_ zero_ copy_ new_zeros new_ones
new_full new_empty new_tensor zeros ones full empty arange zeros_like ones_like
full_like empty_like rand randn randint rand_like randn_like sort topk erf erf_
__getitem__ __setitem__ __add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__
__rmul__ __imul__ __truediv__ __rtruediv__ __itruediv__ __floordiv__ __rfloordiv__
__neg__ __pow__ __rpow__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __and__ __or__
__iand__ __ior__ __invert__ __xor__ __mod__ __abs__
""".split()
_NO_FLOP_F = """
relu relu_ relu6 hardtanh hardtanh_ gelu silu mish elu leaky_relu hardswish hardsigmoid
sigmoid tanh softplus softmax log_softmax dropout dropout1d dropout2d dropout3d
batch_norm layer_norm group_norm instance_norm rms_norm max_pool1d max_pool2d max_pool3d
avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d
adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d embedding pad interpolate
normalize one_hot
""".split()
NO_FLOPS = {
    f
    for f in (
        *(getattr(torch.Tensor, n, None) for n in _NO_FLOP_NAMES),
        *(getattr(torch, n, None) for n in _NO_FLOP_NAMES if not n.startswith("__")),
        *(getattr(F, n, None) for n in _NO_FLOP_F),
    )
    if callable(f)
}
_INPLACE_DUNDERS = {
    f"__i{op}__"
    for op in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split()
}
_NAMES: dict[Any, str] = {}


def _qualified_names() -> dict[Any, str]:
    """Callable -> "F.relu" / "torch.cat" / "Tensor.view", built once (F wins over torch)."""
    if not _NAMES:
        tensor = {a: getattr(torch.Tensor, a, None) for a in dir(torch.Tensor)}
        # vars(), not getattr: torch imports some submodules lazily on attribute access.
        for prefix, namespace in (("Tensor", tensor), ("torch", vars(torch)), ("F", vars(F))):
            for attr, obj in list(namespace.items()):
                if attr.startswith("_") and not attr.startswith("__"):
                    continue
                if callable(obj) and not isinstance(obj, type):
                    with contextlib.suppress(TypeError):  # unhashable odds and ends
                        _NAMES[obj] = f"{prefix}.{attr}"
    return _NAMES


def op_names(func: Any) -> tuple[str, str]:
    """Short name ("add", "getitem", "T") and qualified type ("Tensor.add", "F.relu",
    "aten.linear" for an operator called through `torch.ops`)."""
    try:
        return _SEEN[func]
    except (KeyError, TypeError):  # (TypeError: an unhashable callable)
        pass
    names = _op_names(func)
    with contextlib.suppress(TypeError):
        if getattr(func, "__name__", None) != "__get__":  # (a property: one per property)
            _SEEN[func] = names
    return names


_SEEN: dict[Any, tuple[str, str]] = {}


def _op_names(func: Any) -> tuple[str, str]:
    if isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        packet = getattr(func, "_overloadpacket", func)
        ns = getattr(packet, "_qualified_op_name", "aten::").partition("::")[0] or "aten"
        return packet.__name__, f"{ns}.{packet.__name__}"
    raw = getattr(func, "__name__", None) or type(func).__name__
    if raw == "__get__":  # a property such as x.T or x.mT
        prop = getattr(getattr(func, "__self__", None), "__name__", "property")
        return prop, f"Tensor.{prop}"
    try:
        qualified = _qualified_names().get(func)
    except TypeError:
        qualified = None
    if qualified is None:
        module = getattr(func, "__module__", None) or ""
        qualified = f"{module}.{raw}" if module and module != "builtins" else raw
        qualified = qualified.replace("torch.nn.functional.", "F.")
    name = raw[2:-2] if raw.startswith("__") and raw.endswith("__") else raw
    return name, qualified


def inplace_target(func: Any, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor an in-place call writes to, or None for an ordinary call."""
    written = kwargs.get("out")
    if isinstance(written, torch.Tensor):
        return written
    if isinstance(func, torch._ops.OpOverload):  # the schema says what an operator writes
        arguments = func._schema.arguments  # noqa: SLF001 (an operator's schema)
        first = arguments[0] if arguments else None
        if first is not None and first.alias_info is not None and first.alias_info.is_write:
            return args[0] if args and isinstance(args[0], torch.Tensor) else None
        return None
    name = getattr(func, "__name__", "")
    inplace = (
        kwargs.get("inplace") is True
        or name in _INPLACE_DUNDERS
        or name == "__setitem__"
        or (name.endswith("_") and not name.endswith("__"))
    )
    if not inplace:
        return None
    first = args[0] if args else kwargs.get("input", kwargs.get("self"))
    return first if isinstance(first, torch.Tensor) else None
