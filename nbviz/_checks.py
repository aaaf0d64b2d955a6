"""What every entry point checks, written once: each check returns the value it accepts,
or raises an error that names what was expected and what came.

>>> int_at_least("every", 20)
20
>>> int_at_least("every", 0)
Traceback (most recent call last):
...
ValueError: every must be an int >= 1, got 0
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn


def int_at_least(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a float if it is a number of seconds > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def as_tensor(value: Any, name: str, what: str = "a torch.Tensor or numpy array") -> torch.Tensor:
    """A tensor as it is, a numpy array as a tensor sharing its memory when it can."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def model_device(model: nn.Module, default: torch.device | None = None) -> torch.device | None:
    """Where the model's parameters live (``default`` for a model without any)."""
    return next((p.device for p in model.parameters()), default)


def model_dtype(model: nn.Module, default: torch.dtype | None = None) -> torch.dtype | None:
    """The dtype of the model's floating parameters (``default`` for a model without any)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), default)


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``"; did you mean 'a', 'b'?"`` for the choices close to ``name``, or ``""``."""
    near = difflib.get_close_matches(name, list(choices), n=n)
    return f"; did you mean {', '.join(map(repr, near))}?" if near else ""


def submodule(model: nn.Module, path: Any, by_path: dict[str, nn.Module] | None = None):
    """The module at ``path`` (a string as in ``named_modules()``), or a ValueError with the
    paths that come close."""
    by_path = dict(model.named_modules()) if by_path is None else by_path
    if not isinstance(path, str) or path not in by_path:
        hint = did_you_mean(str(path), by_path)
        raise ValueError(f"layer {path!r} does not exist in this model{hint}")
    return by_path[path]
