"""Images in and out, for every widget that shows them.

In: `images_for_model` (a batch the model will run on) and `example_images` (a
batch's images kept for a gallery) turn what users pass into tensors, or say
what was expected. Out: `thumbnails` (small uint8 RGB pictures of any images),
and `display_images` / `display_masks` (images and masks at the size a widget
sends, shrunk by one integer factor so that masks stay aligned with them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import as_tensor, model_device, model_dtype
from ._text import plural

# --- in --------------------------------------------------------------------------------------------


def images_for_model(images: Any, model: nn.Module) -> torch.Tensor:
    """``images`` as a float copy on the model's device and in its dtype, or a TypeError/
    ValueError saying why not (with a hint for the rank, given the model's first conv)."""
    numpy = isinstance(images, np.ndarray)
    images = as_tensor(images, "images")
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    channels = first.in_channels if first is not None else None
    if images.ndim != 4:
        raise ValueError(
            f"images must be a batch of shape (N, C, H, W), got shape {tuple(images.shape)}"
            + _rank_hint(tuple(images.shape), channels, numpy)
        )
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got an empty batch")
    if images.is_complex() or images.dtype == torch.bool:
        raise ValueError(f"images must be real-valued, got dtype {images.dtype}")
    if channels is not None and channels != images.shape[1]:
        raise ValueError(
            f"images must have {plural(channels, 'channel')} for this model (its first conv "
            f"layer takes {channels}), got {images.shape[1]} (shape {tuple(images.shape)})"
        )
    device, dtype = model_device(model, images.device), model_dtype(model, torch.float32)
    # In the model's dtype (numpy arrays are float64 by default), and a copy: models may
    # write into their input in place (a first ReLU(inplace=True)).
    return images.detach().to(device=device, dtype=dtype, copy=True)


def _rank_hint(shape: tuple[int, ...], channels: int | None, numpy: bool) -> str:
    """How to reach (N, C, H, W) from a 2-D or 3-D ``images``, given the channels the model
    takes (``None``: unknown, no conv layer)."""
    add_batch = "images[None]"  # (C, H, W) -> (1, C, H, W)
    add_channel = "images[:, None]" if numpy else "images.unsqueeze(1)"  # (N, H, W) -> (N, 1, H, W)
    if len(shape) == 2 and channels in (None, 1):
        return " (for one single-channel image (H, W), pass images[None, None])"
    if len(shape) != 3:
        return ""
    if channels is None:
        return (
            f" (for one image (C, H, W), pass {add_batch}; "
            f"for a batch of single-channel images (N, H, W), pass {add_channel})"
        )
    if channels == 1:
        return f" (this model takes 1 channel: for images of shape (N, H, W), pass {add_channel})"
    if shape[0] == channels:
        return f" (for one image (C, H, W), pass {add_batch})"
    return (
        f"; this model takes {plural(channels, 'channel')}: pass one image of shape "
        f"({channels}, H, W) as {add_batch}, or a batch of shape (N, {channels}, H, W)"
    )


def example_images(inputs: Any, n: int) -> torch.Tensor:
    """The images of a batch of ``n`` samples, kept as examples (the confusion matrix's
    ``inputs``): a tensor, or a TypeError/ValueError naming what was expected."""
    inputs = as_tensor(inputs, "inputs", "a torch.Tensor or numpy.ndarray of images")
    if inputs.ndim not in (3, 4):
        raise ValueError(
            f"inputs must be images of shape (N, C, H, W) or (N, H, W), got shape "
            f"{tuple(inputs.shape)}"
        )
    if inputs.shape[0] != n:
        raise ValueError(
            f"inputs must hold one image per target: expected {plural(n, 'image')}, "
            f"got {inputs.shape[0]}"
        )
    if inputs.is_complex() or inputs.dtype == torch.bool:
        raise ValueError(f"inputs must be real-valued images, got dtype {inputs.dtype}")
    return inputs


# --- out -------------------------------------------------------------------------------------------


def thumbnails(images: torch.Tensor, size: int) -> np.ndarray:
    """``(M, C, H, W)`` or ``(M, H, W)`` images -> ``(M, h, w, 3)`` uint8, longest side <= size.

    Float images within [0, 1] are shown as they are; others (e.g. normalized
    inputs) are min-max scaled per image. One channel is grey, three are RGB,
    four drop alpha; other channel counts show the channel mean in grey.
    """
    x = images.detach()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    quick = _unit_images_as_they_are(x, size)
    if quick is not None:
        return quick
    c = x.shape[1]
    if c == 4:
        x = x[:, :3]
    elif c not in (1, 3):
        x = x.float().mean(dim=1, keepdim=True)
    x = _shrink(x.float(), size)
    # (No in-place ops before a fresh tensor exists: x may still be the caller's.)
    if images.dtype == torch.uint8:
        x = x + 0.5  # averages of bytes: round back to bytes
    else:
        lo, hi = torch.aminmax(x)
        if lo < 0 or hi > 1:  # e.g. normalized inputs: min-max scale each image
            lo, hi = torch.aminmax(x.flatten(1), dim=1)
            in_unit = ((lo >= 0) & (hi <= 1))[:, None, None, None]
            lo, span = lo[:, None, None, None], (hi - lo).clamp_min(1e-12)[:, None, None, None]
            x = torch.where(in_unit, x, (x - lo) / span)
        x = (x * 255).add_(0.5)  # truncation after +0.5 rounds
    x = x.to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _unit_images_as_they_are(x: torch.Tensor, size: int) -> np.ndarray | None:
    """The usual case in numpy (a few operations instead of a dozen torch calls, which
    a training loop's cold caches make ~10 us each): float images on the CPU, in [0, 1],
    grey or RGB, no larger than ``size``. Bit for bit what the general path makes;
    None for any other case."""
    if not (x.is_cpu and x.dtype in (torch.float32, torch.float64) and x.shape[1] in (1, 3)):
        return None
    if max(x.shape[-2:]) > size or x.numel() == 0:
        return None
    a = x.numpy().astype(np.float32, copy=False)
    lo, hi = float(a.min()), float(a.max())
    if not (0.0 <= lo and hi <= 1.0):  # (NaN fails too)
        return None
    out = (a * np.float32(255) + np.float32(0.5)).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.repeat(out, 3, axis=3) if out.shape[3] == 1 else out


def _shrink(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average ``x`` so its longest side is at most ``size``."""
    h, w = x.shape[-2:]
    f = -(-max(h, w) // size)  # ceil
    if f == 1:
        return x
    if f <= 4:
        # Summing f*f strided views: ~4x faster than torch's pooling kernels on
        # small CPU batches (0.19 vs 0.73 ms for 64 x 3 x 64 x 64 here).
        x = x[..., : h // f * f, : w // f * f]
        acc = sum(x[..., i::f, j::f] for i in range(f) for j in range(f))
        return acc / (f * f)
    return F.adaptive_avg_pool2d(x, (max(1, h // f), max(1, w // f)))


# --- display --------------------------------------------------------------------------------------

DISPLAY_MAX = 256  # longest side of the images a widget sends for display


def display_images(x: torch.Tensor, largest: int = DISPLAY_MAX) -> np.ndarray:
    """(N, H', W', 3) uint8, shrunk by an integer factor when larger than ``largest``."""
    return thumbnails(x.detach().cpu(), min(largest, max(x.shape[2:])))


def display_masks(masks: torch.Tensor, largest: int = DISPLAY_MAX) -> np.ndarray:
    """The masks at the display images' size (the same integer factor, nearest)."""
    h, w = masks.shape[1:]
    f = -(-max(h, w) // largest)
    return masks[:, : h // f * f : f, : w // f * f : f].to(torch.uint8).numpy()
