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
    """Short name ("add", "getitem", "T") and qualified type ("Tensor.add", "F.relu")."""
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
    name = getattr(func, "__name__", "")
    written = kwargs.get("out")
    if isinstance(written, torch.Tensor):
        return written
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
