"""What the explained model takes: images, signals or volumes, and its other inputs.

`model_inputs` turns what users pass into an `Inputs`: the batch to explain, of the
rank the model's first convolution takes (``(N, C, L)`` for a ``Conv1d``, ``(N, C, H,
W)`` for a ``Conv2d`` or a model without convolutions, ``(N, C, D, H, W)`` for a
``Conv3d``), and the keyword inputs that go with it (``forward_kwargs``, or the rest of
a Hugging Face processor's output: ``{"pixel_values": ..., "attention_mask": ...}``).
Tensors among the keyword inputs whose first dimension is the number of images are
split and indexed with the images; the others go to every call as they are.

>>> import torch
>>> inp = model_inputs(torch.nn.Conv1d(2, 4, 3), torch.rand(5, 2, 40))
>>> inp.n, inp.spatial
(5, (40,))
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import as_tensor, did_you_mean, model_device, model_dtype
from .._images import images_for_model
from .._outputs import call_model
from .._text import plural

# The name of an image batch among a Hugging Face model's keyword inputs.
PIXELS = "pixel_values"
# (what one sample is called, its shape) by the number of spatial dimensions.
KINDS = {1: ("signal", "(N, C, L)"), 2: ("image", "(N, C, H, W)"), 3: ("volume", "(N, C, D, H, W)")}


@dataclass
class Inputs:
    """The batch to explain ``x`` ``(N, C, *spatial)`` (a float copy on the model's device,
    in its dtype) and the keyword inputs that go with it. ``key``: the keyword ``x`` is
    passed as (``None``: first, positionally)."""

    x: torch.Tensor
    key: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The number of samples."""
        return self.x.shape[0]

    @property
    def spatial(self) -> tuple[int, ...]:
        """The samples' size: ``(L,)``, ``(H, W)`` or ``(D, H, W)``."""
        return tuple(self.x.shape[2:])

    def rows(self, which: slice | torch.Tensor) -> dict[str, Any]:
        """The keyword inputs for the samples ``which`` (a slice or an index tensor)."""
        return {
            k: v[which.to(v.device) if isinstance(which, torch.Tensor) else which]
            if _per_sample(v, self.n)
            else v
            for k, v in self.kwargs.items()
        }

    def run(self, model: nn.Module, x: torch.Tensor, which: slice | torch.Tensor) -> Any:
        """``model`` on ``x`` (the samples ``which``, or versions of them) and their
        keyword inputs. ``x`` goes in as a copy: a model may write into its input."""
        kwargs = self.rows(which)
        if self.key is not None:  # a processor's dict: the images are one keyword among them
            return call_model(model, {self.key: x.clone(), **kwargs})
        return call_model(model, x.clone(), **kwargs)


def _per_sample(v: Any, n: int) -> bool:
    return isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == n


def model_inputs(model: nn.Module, images: Any, forward_kwargs: Any = None) -> Inputs:
    """``images`` (a tensor, an array, or a dict holding ``pixel_values``) and
    ``forward_kwargs`` as an `Inputs`, or a TypeError/ValueError saying what was
    expected."""
    kwargs = _check_kwargs(forward_kwargs)
    key = None
    if isinstance(images, Mapping):
        if PIXELS not in images:
            raise ValueError(
                f"images as a dict must hold the images under {PIXELS!r} (as a Hugging Face "
                f"image processor returns them), got the keys {list(images)}"
            )
        both = sorted(set(images) & set(kwargs) - {PIXELS})
        if both:
            raise ValueError(f"{', '.join(map(repr, both))} given in images and forward_kwargs")
        kwargs = {**_check_kwargs({k: v for k, v in images.items() if k != PIXELS}), **kwargs}
        images, key = images[PIXELS], PIXELS
    _check_keywords(model, [*kwargs, *([key] if key else [])])
    x = _batch(model, images)
    device = x.device
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    return Inputs(x, key, kwargs)


def _check_kwargs(forward_kwargs: Any) -> dict[str, Any]:
    if forward_kwargs is None:
        return {}
    if not isinstance(forward_kwargs, Mapping) or not all(
        isinstance(k, str) for k in forward_kwargs
    ):
        raise TypeError(
            "forward_kwargs must be a dict of keyword inputs to the model's forward "
            f"(e.g. {{'attention_mask': mask}}), got {type(forward_kwargs).__name__}"
        )
    return {
        k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
        for k, v in forward_kwargs.items()
    }


def _check_keywords(model: nn.Module, names: list[str]) -> None:
    """A keyword the model's forward does not take is refused before anything runs."""
    if not names:
        return
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin forward: nothing to check against
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n, p in params.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY]
    for name in names:
        if name not in takes:
            raise TypeError(
                f"{type(model).__name__}.forward takes no keyword {name!r} (it takes "
                f"{', '.join(takes) or 'no keywords'}){did_you_mean(name, takes, n=1)}"
            )


def first_conv(model: nn.Module) -> nn.modules.conv._ConvNd | None:
    """The model's first convolution (in module order), which says what it takes."""
    return next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)


def _batch(model: nn.Module, images: Any) -> torch.Tensor:
    conv = first_conv(model)
    dims = 2 if conv is None else len(conv.kernel_size)
    if dims == 2:  # images: the checks (and hints) every image widget gives
        return images_for_model(images, model)
    numpy = isinstance(images, np.ndarray)
    x = as_tensor(images, "images")
    kind, shape = KINDS[dims]
    channels = conv.in_channels
    takes = f"its first conv layer, a {type(conv).__name__}, takes {plural(channels, 'channel')}"
    if x.ndim != dims + 2:
        raise ValueError(
            f"images must be a batch of {kind}s of shape {shape} for this model ({takes}), "
            f"got shape {tuple(x.shape)}" + _rank_hint(tuple(x.shape), dims, channels, numpy)
        )
    if x.shape[0] == 0:
        raise ValueError(f"images must hold at least one {kind}, got an empty batch")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"images must be real-valued, got dtype {x.dtype}")
    if x.shape[1] != channels:
        raise ValueError(
            f"images must have {plural(channels, 'channel')} for this model ({takes}), got "
            f"{x.shape[1]} (shape {tuple(x.shape)})"
        )
    device, dtype = model_device(model, x.device), model_dtype(model, torch.float32)
    return x.detach().to(device=device, dtype=dtype, copy=True)


def _rank_hint(shape: tuple[int, ...], dims: int, channels: int, numpy: bool) -> str:
    """How to reach ``(N, C, *spatial)`` from one sample or a batch without channels."""
    kind, _ = KINDS[dims]
    add_channel = "images[:, None]" if numpy else "images.unsqueeze(1)"
    if len(shape) == dims + 1:
        hints = []
        if shape[0] == channels:
            hints.append(f"for one {kind} of shape (C, ...), pass images[None]")
        if channels == 1:
            hints.append(f"for a batch of single-channel {kind}s, pass {add_channel}")
        return f" ({'; '.join(hints)})" if hints else ""
    if len(shape) == dims and channels == 1:
        return f" (for one single-channel {kind}, pass images[None, None])"
    return ""
