"""Feature maps of fixed probe inputs: what a few conv layers see, as training goes.

The probe is a small batch the user picks (a few validation images). Every so often it
runs through the model in eval mode without gradients, and the first channels of a few
conv layers, spread over depth, are kept as uint8 maps, each channel scaled to its own
range. The model is left as found (modes, hooks) and training's random numbers are not
touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import as_tensor, model_device, model_dtype
from .._dist import local_module
from .._images import thumbnails
from .._outputs import call_model
from .._state import preserved


class FeatureProbe:
    """The probe inputs, the layers looked at and the maps last recorded.

    Args:
        model: the model being trained.
        probe: a batch ``(N, ...)`` the model accepts, a dict of keyword inputs
            (``{"pixel_values": ..., "attention_mask": ...}``: ``model(**probe)``), or None
            (then nothing is recorded).
        max_layers: conv layers looked at, spread from the first to the last.
        max_channels: channels kept per layer.
    """

    def __init__(self, model: nn.Module, probe: Any, max_layers: int, max_channels: int) -> None:
        self.probe = check_probe(model, probe)
        convs = [p for p, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        self.layers = spread(convs, max_layers) if self.probe is not None else []
        self.max_channels = max_channels
        self.maps: dict[str, np.ndarray] = {}  # layer -> (N, C, h, w) uint8
        self.step: int | None = None  # the step of `maps`

    def thumbnails(self, size: int = 48) -> np.ndarray | None:
        """The probe as ``(N, h, w, 3)`` uint8 thumbnails if it holds images (itself, or a
        dict's ``pixel_values``), else None."""
        probe = self.probe.get("pixel_values") if isinstance(self.probe, dict) else self.probe
        if probe is None or probe.ndim != 4 or probe.shape[1] not in (1, 3, 4):
            return None
        return thumbnails(probe.detach().float().cpu(), size)

    def record(self, model: nn.Module, step: int) -> None:
        """Run the probe and keep each layer's maps (the caller keeps its own hooks quiet)."""
        if self.probe is None:
            return
        captured: dict[str, torch.Tensor] = {}
        by_path = dict(model.named_modules())
        handles = [
            by_path[p].register_forward_hook(
                # A copy of the kept channels: an in-place op after the conv
                # (ReLU(inplace=True)) would overwrite the output itself.
                lambda m, a, out, p=p: captured.__setitem__(
                    p, out[:, : self.max_channels].detach().clone()
                )
            )
            for p in self.layers
        ]
        forward = local_module(model)  # a DDP model's own forward would wait for the others
        try:
            with torch.no_grad(), preserved(forward, training=False):
                call_model(forward, _clone(self.probe))
        finally:
            for h in handles:
                h.remove()
        for path, out in captured.items():
            maps = out.float()
            lo = maps.amin(dim=(2, 3), keepdim=True)
            hi = maps.amax(dim=(2, 3), keepdim=True)
            scaled = (maps - lo) / (hi - lo).clamp_min(1e-12)  # each channel to its own range
            self.maps[path] = (scaled * 255).round().to(torch.uint8).cpu().numpy()
        self.step = step


def spread(items: list[str], k: int) -> list[str]:
    """Up to k items evenly spread from the first to the last.

    >>> spread(["a", "b", "c", "d", "e"], 3)
    ['a', 'c', 'e']
    """
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


def check_probe(model: nn.Module, probe: Any) -> torch.Tensor | dict[str, Any] | None:
    """The probe (a tensor, or a dict of keyword inputs) on the model's device and dtype,
    once run through the model (eval, no gradients) to check that it is accepted; a clear
    ValueError if it is not."""
    if probe is None:
        return None
    model = local_module(model)
    if isinstance(probe, Mapping):
        probe = {str(k): _placed(model, v, f"probe[{k!r}]") for k, v in probe.items()}
        call, shown = "model(**probe)", {k: _shape(v) for k, v in probe.items()}
    else:
        probe = _placed(model, probe, "probe")
        call, shown = "model(probe)", tuple(probe.shape)
    try:
        with torch.no_grad(), preserved(model, training=False):
            call_model(model, _clone(probe))
    except Exception as exc:
        raise ValueError(
            f"probe must be a batch the model accepts, like a training batch (N, ...) or a "
            f"dict of keyword inputs; {call} with {shown} raised {type(exc).__name__}: {exc}"
        ) from exc
    return probe


def _placed(model: nn.Module, value: Any, name: str) -> Any:
    """A tensor input on the model's device (floating ones in its dtype); other values
    (a flag, None) as they are."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    t = as_tensor(value, name, "a batch of inputs as a tensor")
    device, dtype = model_device(model, t.device), model_dtype(model)
    return t.detach().to(device=device, dtype=dtype if t.is_floating_point() else None)


def _clone(probe: Any) -> Any:
    """A copy to run (a forward that writes into its input leaves the probe as it was)."""
    if isinstance(probe, dict):
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in probe.items()}
    return probe.clone()


def _shape(v: Any) -> Any:
    return tuple(v.shape) if isinstance(v, torch.Tensor) else v
