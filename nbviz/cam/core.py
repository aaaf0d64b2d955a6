"""Class activation maps for every layer from one forward and one backward per target.

`compute` hooks the chosen layers, runs the model once, and asks autograd for
the gradient of the explained score with respect to every hooked activation at
once (`torch.autograd.grad` with a list of inputs): one backward per target
class, whatever the number of layers. Parameter gradients are never computed
(``requires_grad`` is switched off for the call and put back), so the
backward is also cheaper than a training step's.

>>> import torch, nbviz
>>> from nbviz.examples import SmallCNN
>>> model = SmallCNN(num_classes=6)
>>> res = nbviz.cam.compute(model, torch.rand(2, 3, 64, 64))
>>> res.layers[:3]
['features.block1.conv', 'features.block1', 'features.block2.conv']
>>> res.raw("features.block2").shape, res.maps("features.block2").shape
(torch.Size([2, 16, 16]), torch.Size([2, 64, 64]))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import int_at_least, submodule
from .._images import images_for_model
from .._state import preserved

INPUT = "input"  # the one "layer" of the input-gradient methods


def _gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.: channel weights are the spatially averaged gradients."""
    weights = g.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * a).sum(dim=1))


def _gradcam_pp(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Chattopadhay et al., with the exponential-score closed form."""
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0)
    weights = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * a).sum(dim=1))


def _layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Jiang et al.: every position weighted by its own positive gradient."""
    return F.relu((F.relu(g) * a).sum(dim=1))


# The layer methods: (N, h, w) maps from a layer's activations and gradients (N, C, h, w).
# A new one is a function here and an entry below (and its name in the README's list).
CAM_WEIGHTINGS = {"gradcam": _gradcam, "gradcam++": _gradcam_pp, "layercam": _layercam}
CAM_METHODS = tuple(CAM_WEIGHTINGS)


@dataclass(frozen=True)
class InputGradients:
    """An input-gradient method: how many versions of each image go through the model
    (from ``samples`` and ``steps``), how a chunk of versions is made from the images,
    whether the gradients' magnitudes are averaged, and how the mean gradient
    ``(N, T, C, H, W)`` becomes maps ``(N, T, H, W)``."""

    versions: Callable[[int, int], int]
    versions_of: Callable[..., torch.Tensor]  # (x, image_of, version, per, noise, spans)
    magnitude: bool
    to_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, mean gradient)


def _as_they_are(x, image_of, version, per, noise, spans) -> torch.Tensor:
    return x[image_of.to(x.device)]


def _noisy(x, image_of, version, per, noise, spans) -> torch.Tensor:
    """Smilkov et al.: noise of ``noise`` times each image's value span."""
    where = image_of.to(x.device)
    return x[where] + noise * spans[where, None, None, None] * _noise(image_of, version, per, x)


def _scaled_from_black(x, image_of, version, per, noise, spans) -> torch.Tensor:
    """Sundararajan et al.: the path from black to the image, midpoint rule."""
    alphas = (version.to(x.dtype) + 0.5) / per
    return x[image_of.to(x.device)] * alphas.to(x.device)[:, None, None, None]


def _largest_channel(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    return mean.abs().amax(dim=2)


def _times_input(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(x - black) * mean gradient, summed over channels."""
    return F.relu((x[:, None] * mean).sum(dim=2))


# The input methods by name: a new one is an entry here (and its name in the README).
INPUT_GRADIENTS = {
    "saliency": InputGradients(lambda samples, steps: 1, _as_they_are, False, _largest_channel),
    "smoothgrad": InputGradients(lambda samples, steps: samples, _noisy, True, _largest_channel),
    "integrated_gradients": InputGradients(
        lambda samples, steps: steps, _scaled_from_black, False, _times_input
    ),
}
INPUT_METHODS = tuple(INPUT_GRADIENTS)
METHODS = CAM_METHODS + INPUT_METHODS


def _cam(method: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return CAM_WEIGHTINGS[method](a, g)


@dataclass
class CamResult:
    """Maps of one method for some layers, images and target classes.

    ``targets`` is ``(N, T)``: the classes explained for each image (column 0
    is the first target, e.g. the top prediction). ``probs`` is ``(N, K)``, the
    model's softmax over its K classes.
    """

    method: str
    layers: list[str]
    targets: torch.Tensor
    probs: torch.Tensor
    image_size: tuple[int, int]
    _raw: dict[str, torch.Tensor] = field(repr=False)  # layer -> (N, T, h, w) float32, CPU

    def _key(self, layer: str | int) -> str:
        if isinstance(layer, int) and not isinstance(layer, bool):
            return self.layers[layer]
        if layer not in self._raw:
            raise ValueError(f"layer must be one of {self.layers} or an index, got {layer!r}")
        return layer

    def raw(self, layer: str | int, target: int | None = 0) -> torch.Tensor:
        """``(N, h, w)`` maps at the layer's own resolution, for target column ``target``
        (``None``: every target, ``(N, T, h, w)``)."""
        maps = self._raw[self._key(layer)]
        return maps if target is None else maps[:, target]

    def maps(self, layer: str | int, target: int = 0) -> torch.Tensor:
        """``(N, H, W)`` maps upsampled (bilinear) to the image size, each scaled to [0, 1]."""
        return normalize(upsample(self.raw(layer, target), self.image_size))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, half-pixel centres (``align_corners=False``): what the browser does too."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.clone()
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def normalize(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its maximum (maps are >= 0); an all-zero map stays zero."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-30)[:, None, None]
    return (maps / peak).clamp_(0, 1)


def compute(
    model: nn.Module,
    images: Any,
    layers: Sequence[str | nn.Module] | None = None,
    targets: Any = None,
    method: str = "gradcam",
    *,
    batch_size: int = 32,
    samples: int = 24,
    noise: float = 0.15,
    steps: int = 32,
) -> CamResult:
    """Maps of ``method`` for ``images`` (N, C, H, W) at every layer in ``layers``.

    ``layers=None`` takes every conv layer and every block (module with children)
    whose output is a spatial feature map (N, C, h, w), shallow to deep, each
    distinct activation once. ``targets``: ``None`` (the predicted class), an
    int, one int per image, or ``"topk:3"``. Methods: ``"gradcam"``,
    ``"gradcam++"``, ``"layercam"`` (per layer) and ``"saliency"``,
    ``"smoothgrad"``, ``"integrated_gradients"`` (gradients at the input, one
    layer named ``"input"``). SmoothGrad averages ``samples`` noisy copies
    (noise ``noise`` x the image's value range); integrated gradients go from a
    black image in ``steps`` steps. Every method runs at most ``batch_size``
    inputs per forward (layer methods: one forward and one backward per target
    for each batch of images).

    The model runs in eval mode with its parameters' ``requires_grad`` off; both
    are put back, hooks are removed, and no ``.grad`` is written, also on error.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    for name, value in (("batch_size", batch_size), ("samples", samples), ("steps", steps)):
        int_at_least(name, value)
    x = images_for_model(images, model)
    chosen = None if method in INPUT_METHODS else resolve_layers(model, layers)
    with preserved(model, training=False, requires_grad=False), torch.enable_grad():
        if method in CAM_METHODS:
            # One forward and one backward per target column for each batch of images.
            chunks, per_chunk = x.split(batch_size), _split_targets(targets, x, batch_size)
            parts = [
                _layer_maps(model, chunk, chosen, t, method)
                for chunk, t in zip(chunks, per_chunk, strict=True)
            ]
            return _concat(parts)
        return _input_maps(model, x, targets, method, batch_size, samples, noise, steps)


# --- validation ----------------------------------------------------------------------------------


def resolve_layers(model: nn.Module, layers: Any) -> dict[nn.Module, str] | None:
    """Requested layers as {module: path} (None: choose automatically), or a ValueError."""
    if layers is None:
        return None
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    paths = {m: p for p, m in model.named_modules()}
    by_path = {p: m for m, p in paths.items()}
    chosen: dict[nn.Module, str] = {}
    for layer in layers:
        if isinstance(layer, nn.Module):
            if layer not in paths:
                raise ValueError(f"layer {type(layer).__name__} is not a submodule of this model")
            chosen[layer] = paths[layer]
        elif isinstance(layer, str):
            chosen[submodule(model, layer, by_path)] = layer
        else:
            raise ValueError(f"layers must be module paths or modules, got {type(layer).__name__}")
    if not chosen:
        raise ValueError("layers must name at least one layer, got an empty list")
    return chosen


def _resolve_targets(targets: Any, logits: torch.Tensor) -> torch.Tensor:
    """(N, T) long tensor of the classes to explain."""
    n, k = logits.shape
    if targets is None:
        return logits.argmax(dim=1, keepdim=True)
    if isinstance(targets, str):
        match = re.fullmatch(r"topk:(\d+)", targets)
        if not match or not 1 <= int(match.group(1)) <= k:
            raise ValueError(f"targets as text must be 'topk:<1..{k}>', got {targets!r}")
        return logits.topk(int(match.group(1)), dim=1).indices
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"targets must be class indices (ints), got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(n)
    if t.ndim == 1:
        t = t[:, None]
    # (N, 0) targets are refused here, with a message, before any forward.
    if t.ndim != 2 or t.shape[0] != n or t.shape[1] == 0:
        raise ValueError(
            f"targets must be an int, one int per image ({n}) or (N, T) ints, got shape "
            f"{tuple(t.shape)}"
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        raise ValueError(f"targets must be classes in [0, {k - 1}], got {t.unique().tolist()}")
    return t.to(device=logits.device, dtype=torch.long)


def _logits(output: Any) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model must return class scores of shape (N, classes), got {got}")
    return output


# --- layer methods -------------------------------------------------------------------------------


class _Capture:
    """Forward hooks that keep the outputs of the layers to explain (removed on exit)."""

    def __init__(self, model: nn.Module, chosen: dict[nn.Module, str] | None) -> None:
        self.explicit = chosen is not None
        if chosen is None:  # conv layers and blocks, checked for spatial outputs as they run
            chosen = {
                m: p
                for p, m in model.named_modules()
                if p and (isinstance(m, nn.modules.conv._ConvNd) or next(m.children(), None))
            }
        self.chosen = chosen
        self.outputs: list[tuple[str, torch.Tensor, int]] = []  # path, output, its version
        self.calls: dict[str, int] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        for m, path in self.chosen.items():
            self.handles.append(m.register_forward_hook(self._hook(path)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.calls[path] = self.calls.get(path, 0) + 1
            spatial = isinstance(output, torch.Tensor) and output.ndim == 4
            if self.explicit and not spatial:
                got = (
                    tuple(output.shape)
                    if isinstance(output, torch.Tensor)
                    else type(output).__name__
                )
                raise ValueError(
                    f"layer {path!r} must output a spatial feature map (N, C, h, w), got {got}"
                )
            if spatial and output.requires_grad:
                self.outputs.append((path, output, output._version))

        return hook

    def activations(self) -> list[tuple[str, torch.Tensor]]:
        """(path, activation) shallow to deep: each tensor once (a block that returns its
        last child's output is the same map), layers run once, not overwritten in place."""
        found, seen = [], set()
        for path, out, version in self.outputs:
            problem = None
            if self.calls[path] > 1:
                problem = f"runs {self.calls[path]} times in one forward pass"
            elif out._version != version:
                problem = (
                    "is overwritten in place later in the forward (e.g. by ReLU(inplace=True))"
                )
            if problem:
                if self.explicit:
                    raise ValueError(
                        f"layer {path!r} {problem}: its map is undefined; choose the module after it"
                    )
                continue
            # Shared tensors are deduplicated only for the automatic choice: every explicitly
            # requested layer (e.g. a block and its last child) gets its maps.
            if self.explicit or id(out) not in seen:
                seen.add(id(out))
                found.append((path, out))
        if not found:
            raise ValueError("the model has no layer with a spatial output (N, C, h, w) to explain")
        return found


def _layer_maps(model, x, chosen, targets, method) -> CamResult:
    # x is our own tensor; needing grad, it makes the activations need grad. The model
    # gets a copy: a first ReLU(inplace=True) may not write into a leaf.
    leaf = x.requires_grad_()
    with _Capture(model, chosen) as capture:
        logits = _logits(model(leaf.clone()))
    found = capture.activations()
    target = _resolve_targets(targets, logits)
    names = [p for p, _ in found]
    acts = [a for _, a in found]
    raw: dict[str, list[torch.Tensor]] = {p: [] for p in names}
    for t in range(target.shape[1]):
        score = logits.gather(1, target[:, t : t + 1]).sum()
        # allow_unused: a hooked layer whose output the score does not use (a side branch)
        # gets zero gradients, so a zero map, instead of an error from autograd.
        grads = torch.autograd.grad(
            score, acts, retain_graph=t < target.shape[1] - 1, allow_unused=True
        )
        for name, a, g in zip(names, acts, grads, strict=True):
            g = torch.zeros_like(a) if g is None else g
            raw[name].append(_cam(method, a.detach(), g).float().cpu())
        del grads
    probs = logits.detach().float().softmax(dim=1).cpu()
    return CamResult(
        method=method,
        layers=names,
        targets=target.cpu(),
        probs=probs,
        image_size=(x.shape[2], x.shape[3]),
        _raw={p: torch.stack(v, dim=1) for p, v in raw.items()},
    )


def _split_targets(targets: Any, x: torch.Tensor, batch_size: int) -> list[Any]:
    """The targets of each batch of images: shared ones as they are, per-image ones split."""
    n = x.shape[0]
    if targets is None or isinstance(targets, str) or n <= batch_size:
        return [targets] * -(-n // batch_size)
    t = torch.as_tensor(targets)
    if t.ndim == 0:
        return [targets] * -(-n // batch_size)
    if t.shape[0] != n:  # let _resolve_targets say what is wrong, with the whole batch's size
        _resolve_targets(targets, torch.zeros(n, 1))
    return list(t.split(batch_size))


def _concat(parts: list[CamResult]) -> CamResult:
    """One result from the results of consecutive batches of images."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    widths = {p.targets.shape[1] for p in parts}
    if len(widths) != 1:
        raise ValueError("targets must give every image the same number of classes")
    return CamResult(
        method=first.method,
        layers=first.layers,
        targets=torch.cat([p.targets for p in parts]),
        probs=torch.cat([p.probs for p in parts]),
        image_size=first.image_size,
        _raw={k: torch.cat([p.raw(k, None) for p in parts]) for k in first.layers},
    )


# --- input methods -------------------------------------------------------------------------------


def _input_maps(model, x, targets, method, batch_size, samples, noise, steps) -> CamResult:
    with torch.no_grad():
        logits = torch.cat([_logits(model(c.clone())) for c in x.split(batch_size)])
    target = _resolve_targets(targets, logits)
    n, T = target.shape
    how = INPUT_GRADIENTS[method]
    per = how.versions(samples, steps)
    # Rows (image, version) go through the model batch_size at a time, images mixed: the
    # versions are made as their chunk comes, so memory is bounded whatever N is. In
    # eval mode each row's gradient depends on that row alone.
    total = torch.zeros(n, T, *x.shape[1:], dtype=x.dtype, device=x.device)
    spans = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).clamp_min(1e-12)
    for start in range(0, n * per, batch_size):
        rows = torch.arange(start, min(start + batch_size, n * per))
        image_of, version = rows // per, rows % per
        chunk = how.versions_of(x, image_of, version, per, noise, spans)
        chunk = chunk.detach().requires_grad_()
        out = model(chunk.clone())  # a copy the model may write into in place
        where = image_of.to(x.device)
        for t in range(T):
            score = out.gather(1, target[where, t : t + 1]).sum()
            (grad,) = torch.autograd.grad(score, [chunk], retain_graph=t < T - 1)
            total[:, t].index_add_(0, where, grad.abs() if how.magnitude else grad)
        del out
    maps = how.to_map(x, total / per)
    return CamResult(
        method=method,
        layers=[INPUT],
        targets=target.cpu(),
        probs=logits.float().softmax(dim=1).cpu(),
        image_size=(x.shape[2], x.shape[3]),
        _raw={INPUT: maps.float().cpu()},
    )


def _noise(image_of: torch.Tensor, version: torch.Tensor, per: int, x: torch.Tensor):
    """Standard normal noise per (image, version), the same on every call and chunking."""
    out = []
    for i, v in zip(image_of.tolist(), version.tolist(), strict=True):
        g = torch.Generator().manual_seed(i * per + v)
        out.append(torch.randn(x.shape[1:], generator=g))
    return torch.stack(out).to(device=x.device, dtype=x.dtype)
