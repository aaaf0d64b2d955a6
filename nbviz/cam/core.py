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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import int_at_least, submodule
from .._outputs import HOW, Output, describe, pick_scores
from .._state import preserved
from .capture import Capture
from .inputs import model_inputs
from .layout import CUSTOM, TOKENS
from .rollout import AttentionRecorder, read, step

INPUT = "input"  # the one "layer" of the input-gradient methods


def _over_space(t: torch.Tensor, fn: str) -> torch.Tensor:
    """``t`` (N, C, *spatial) reduced over its spatial dimensions, kept as size 1."""
    return getattr(t, fn)(dim=tuple(range(2, t.ndim)), keepdim=True)


def _gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.: channel weights are the spatially averaged gradients."""
    return F.relu((_over_space(g, "mean") * a).sum(dim=1))


def _gradcam_pp(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Chattopadhay et al., with the exponential-score closed form."""
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + _over_space(a, "sum") * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0)
    return F.relu((_over_space(alpha * F.relu(g), "sum") * a).sum(dim=1))


def _layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Jiang et al.: every position weighted by its own positive gradient."""
    return F.relu((F.relu(g) * a).sum(dim=1))


# The layer methods: (N, *size) maps from a layer's activations and gradients (N, C, *size).
# A new one is a function here and an entry below (and its name in the README's list).
CAM_WEIGHTINGS = {"gradcam": _gradcam, "gradcam++": _gradcam_pp, "layercam": _layercam}
CAM_METHODS = tuple(CAM_WEIGHTINGS)


@dataclass(frozen=True)
class InputGradients:
    """An input-gradient method: how many versions of each input go through the model
    (from ``samples`` and ``steps``), how a chunk of versions is made from the inputs,
    whether the gradients' magnitudes are averaged, and how the mean gradient
    ``(N, T, C, *size)`` becomes maps ``(N, T, *size)``."""

    versions: Callable[[int, int], int]
    versions_of: Callable[..., torch.Tensor]  # (x, image_of, version, per, noise, spans)
    magnitude: bool
    to_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, mean gradient)


def _per_row(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One value per row of ``x``, shaped to broadcast over the rest of it."""
    return v.view(-1, *(1,) * (x.ndim - 1))


def _as_they_are(x, image_of, version, per, noise, spans) -> torch.Tensor:
    return x[image_of.to(x.device)]


def _noisy(x, image_of, version, per, noise, spans) -> torch.Tensor:
    """Smilkov et al.: noise of ``noise`` times each input's value span."""
    where = image_of.to(x.device)
    return x[where] + noise * _per_row(spans[where], x) * _noise(image_of, version, per, x)


def _scaled_from_black(x, image_of, version, per, noise, spans) -> torch.Tensor:
    """Sundararajan et al.: the path from black (zeros) to the input, midpoint rule."""
    alphas = (version.to(x.dtype) + 0.5) / per
    return x[image_of.to(x.device)] * _per_row(alphas.to(x.device), x)


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
# Methods that read attention weights instead of gradients (vision transformers).
ATTENTION_METHODS = ("rollout",)
METHODS = CAM_METHODS + INPUT_METHODS + ATTENTION_METHODS


def _cam(method: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return CAM_WEIGHTINGS[method](a, g)


@dataclass
class CamResult:
    """Maps of one method for some layers, inputs and target classes.

    ``targets`` is ``(N, T)``: the classes explained for each input (column 0
    is the first target, e.g. the top prediction). ``probs`` is ``(N, K)``, the
    model's softmax over its K classes. ``image_size`` is the inputs' size: ``(H, W)``
    for images, ``(L,)`` for signals, ``(D, H, W)`` for volumes. ``no_gradient``: the
    layers whose gradient was zero for every input and target (the scores do not depend
    on them: a side branch, or a transformer block after which only the class token is
    read), so their maps are empty.
    """

    method: str
    layers: list[str]
    targets: torch.Tensor
    probs: torch.Tensor
    image_size: tuple[int, ...]
    _raw: dict[str, torch.Tensor] = field(repr=False)  # layer -> (N, T, *size) float32, CPU
    no_gradient: tuple[str, ...] = ()

    def _key(self, layer: str | int) -> str:
        if isinstance(layer, int) and not isinstance(layer, bool):
            return self.layers[layer]
        if layer not in self._raw:
            raise ValueError(f"layer must be one of {self.layers} or an index, got {layer!r}")
        return layer

    def raw(self, layer: str | int, target: int | None = 0) -> torch.Tensor:
        """``(N, *size)`` maps at the layer's own resolution (``(N, h, w)`` for images), for
        target column ``target`` (``None``: every target, ``(N, T, *size)``)."""
        maps = self._raw[self._key(layer)]
        return maps if target is None else maps[:, target]

    def maps(self, layer: str | int, target: int = 0) -> torch.Tensor:
        """``(N, *image_size)`` maps upsampled (linear, bilinear or trilinear) to the inputs'
        size, each scaled to [0, 1]."""
        return normalize(upsample(self.raw(layer, target), self.image_size))


_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``(N, *s)`` maps to ``(N, *size)``: linear, bilinear or trilinear with half-pixel
    centres (``align_corners=False``), what the browser does too."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps.clone()
    mode = _INTERPOLATION[len(size)]
    return F.interpolate(maps[:, None], size=tuple(size), mode=mode, align_corners=False)[:, 0]


def normalize(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its maximum (maps are >= 0); an all-zero map stays zero."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-30)
    return (maps / peak.view(-1, *(1,) * (maps.ndim - 1))).clamp_(0, 1)


def quantise(raw: torch.Tensor) -> np.ndarray:
    """(N, T, *size) maps -> uint8, each map scaled by its own peak (0 stays 0)."""
    peak = raw.flatten(2).amax(dim=2).clamp_min(1e-30)
    peak = peak.view(*peak.shape, *(1,) * (raw.ndim - 2))
    return (raw / peak * 255).round_().clamp_(0, 255).to(torch.uint8).numpy()


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
    output: Output = None,
    forward_kwargs: dict[str, Any] | None = None,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> CamResult:
    """Maps of ``method`` for ``images`` at every layer in ``layers``.

    ``images``: ``(N, C, H, W)`` images; ``(N, C, L)`` signals for a model whose first
    conv is a ``Conv1d``, ``(N, C, D, H, W)`` volumes or clips for a ``Conv3d``; or a dict
    with ``pixel_values`` (a Hugging Face processor's output; its other entries are
    keyword inputs). ``forward_kwargs``: more keyword inputs for the model's forward
    (``{"attention_mask": mask}``); tensors whose first dimension is N are split with
    the images. ``output``: which part of what the model returns holds the class scores
    when that is ambiguous (a key or attribute, an index, or a callable); a tensor, a
    ``logits`` entry or attribute (Hugging Face), or a lone tensor are found unasked.

    ``layers=None`` takes every conv layer and every block (module with children)
    whose output is a spatial map, shallow to deep, each distinct activation once; for a
    transformer (a block outputs patch tokens), the blocks' outputs in order. Maps
    lie on each layer's own grid: ``(N, C, h, w)`` maps, channels-last ``(N, h, w, C)``
    maps (Swin), and ViT tokens ``(N, extras + h*w, C)`` (the grid found from the image
    size and the patch embedding); ``reshape``, a callable from a layer's output tensor
    to ``(N, C, h, w)``, reads any other layout (it gets the activations and their
    gradients alike). ``targets``: ``None`` (the predicted class), an int, one int per
    image, or ``"topk:3"``.

    Methods: ``"gradcam"``, ``"gradcam++"``, ``"layercam"`` (per layer),
    ``"saliency"``, ``"smoothgrad"``, ``"integrated_gradients"`` (gradients at the
    input, one layer named ``"input"``), and ``"rollout"`` (attention rollout through
    each transformer block; the same map for every target). SmoothGrad averages
    ``samples`` noisy copies (noise ``noise`` x the input's value range); integrated
    gradients go from a black (zero) input in ``steps`` steps. Every method runs at most
    ``batch_size`` inputs per forward (layer methods: one forward and one backward per
    target for each batch of images).

    The model runs in eval mode with its parameters' ``requires_grad`` off; both
    are put back, hooks are removed, and no ``.grad`` is written, also on error. A layer's
    activation is explained as the layer produced it, even when a later in-place
    operation overwrites it, and it gets a gradient even when the layers before it run
    under ``torch.no_grad()`` (a frozen backbone).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    for name, value in (("batch_size", batch_size), ("samples", samples), ("steps", steps)):
        int_at_least(name, value)
    if reshape is not None and not callable(reshape):
        raise TypeError(
            "reshape must be a callable from a layer's output to (N, C, h, w), got "
            f"{type(reshape).__name__}"
        )
    if reshape is not None and method not in CAM_METHODS:
        raise ValueError(
            f"reshape= is for the layer methods ({', '.join(CAM_METHODS)}), not {method!r}"
        )
    inputs = model_inputs(model, images, forward_kwargs)
    chosen = None if method in INPUT_METHODS else resolve_layers(model, layers)
    with preserved(model, training=False, requires_grad=False), torch.enable_grad():
        if method in INPUT_METHODS:
            return _input_maps(
                model, inputs, targets, method, batch_size, samples, noise, steps, output
            )
        # One forward (and, for the layer methods, one backward per target column) for
        # each batch of images.
        run = _rollout_maps if method in ATTENTION_METHODS else _layer_maps
        chunks = _chunks(inputs.n, batch_size)
        per_chunk = _split_targets(targets, inputs.n, batch_size)
        parts = [
            run(model, inputs, rows, chosen, t, method, output, reshape)
            for rows, t in zip(chunks, per_chunk, strict=True)
        ]
        return _concat(parts)


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


def class_scores(out: Any, output: Output, n: int) -> torch.Tensor:
    """The ``(n, classes)`` scores in what the model returned, or a ValueError saying what
    it returned and how to choose."""
    scores = pick_scores(out, output)
    if scores.ndim != 2 or scores.shape[0] != n:
        picked = "" if isinstance(out, torch.Tensor) else f" (taken from {describe(out)}; {HOW})"
        raise ValueError(
            f"the model must return class scores of shape (N, classes) with N = {n}, got "
            f"{tuple(scores.shape)}{picked}"
        )
    return scores


def _chunks(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


# --- layer methods -------------------------------------------------------------------------------


def _layer_maps(model, inputs, rows, chosen, targets, method, output, reshape) -> CamResult:
    x = inputs.x[rows]
    n = x.shape[0]
    with Capture(model, chosen, inputs.spatial, reshape=reshape) as capture:
        scores = class_scores(inputs.run(model, x, rows), output, n)
    found = capture.activations()
    grids = {path: _grid(path, lay, a.detach(), n, inputs.spatial) for path, a, lay in found}
    target = _resolve_targets(targets, scores)
    if not scores.requires_grad:
        raise ValueError(
            "the class scores do not depend on any explained layer through autograd: the "
            "model computes them under torch.no_grad() (or from detached tensors) after "
            f"{found[-1][0]!r}"
        )
    acts = list({id(a): a for _, a, _ in found}.values())  # a block and its child: one tensor
    raw: dict[str, list[torch.Tensor]] = {p: [] for p, _, _ in found}
    reached: set[str] = set()
    for t in range(target.shape[1]):
        score = scores.gather(1, target[:, t : t + 1]).sum()
        # allow_unused: a hooked layer whose output the score does not use (a side branch)
        # gets zero gradients, so a zero map, instead of an error from autograd.
        grads = torch.autograd.grad(
            score, acts, retain_graph=t < target.shape[1] - 1, allow_unused=True
        )
        by_id = {id(a): g for a, g in zip(acts, grads, strict=True)}
        for path, a, lay in found:
            g = by_id[id(a)]
            g = _grid(
                path,
                lay,
                torch.zeros_like(a) if g is None else g,
                n,
                inputs.spatial,
                like=grids[path],
            )
            if path not in reached and bool(g.any()):  # (on the grid: not the class token)
                reached.add(path)
            raw[path].append(_cam(method, grids[path], g).float().cpu())
        del grads, by_id
    probs = scores.detach().float().softmax(dim=1).cpu()
    return CamResult(
        method=method,
        layers=list(raw),
        targets=target.cpu(),
        probs=probs,
        image_size=inputs.spatial,
        _raw={p: torch.stack(v, dim=1) for p, v in raw.items()},
        no_gradient=tuple(p for p in raw if p not in reached),
    )


def _grid(path, lay, t, n, spatial, like=None) -> torch.Tensor:
    """``t`` (a layer's activations or gradients) as ``(N, C, *size)``; for ``reshape=``,
    checked: a tensor of the inputs' rank, N first (and the activations' shape, for the
    gradients)."""
    out = lay.grid(t)
    if lay.kind != CUSTOM:
        return out
    k = len(spatial)
    dims = {1: "(N, C, l)", 2: "(N, C, h, w)", 3: "(N, C, d, h, w)"}[k]
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if (
        not isinstance(out, torch.Tensor)
        or out.ndim != k + 2
        or out.shape[0] != n
        or (like is not None and out.shape != like.shape)
    ):
        raise ValueError(
            f"reshape must turn layer {path!r}'s output {tuple(t.shape)} into {dims} with "
            f"N = {n}{'' if like is None else f' (as for its activations, {tuple(like.shape)})'}"
            f", got {got}"
        )
    return out


# --- attention rollout ---------------------------------------------------------------------------


def _rollout_maps(model, inputs, rows, chosen, targets, method, output, reshape) -> CamResult:
    x = inputs.x[rows]
    n = x.shape[0]
    recorder = AttentionRecorder(n)
    capture = Capture(model, chosen, inputs.spatial, gradients=False, clock=recorder.__len__)
    # With gradients on and an input that needs them, as the layer methods run: PyTorch's
    # fused inference paths (nn.TransformerEncoderLayer, nn.MultiheadAttention in eval
    # mode without gradients) would hide the attention weights. No backward runs.
    with capture, recorder:
        scores = class_scores(inputs.run(model, x.detach().requires_grad_(), rows), output, n)
    scores = scores.detach()
    found = capture.activations()
    blocks = [(p, lay) for p, _, lay in found if lay.kind == TOKENS]
    if chosen is not None and len(blocks) < len(found):
        path, a, _ = next(f for f in found if f[2].kind != TOKENS)
        raise ValueError(
            f"attention rollout explains the token outputs (N, T, C) of a vision transformer's "
            f"blocks; layer {path!r} outputs {tuple(a.shape)}"
        )
    if not blocks:
        raise ValueError(
            "attention rollout needs a vision transformer: no block of this model outputs "
            "patch tokens (N, extras + h*w, C)"
        )
    tokens = {a.shape[1] for _, a, lay in found if lay.kind == TOKENS}
    if len(tokens) > 1:
        raise ValueError(
            f"attention rollout needs one token count in all layers, got {sorted(tokens)}"
        )
    (t_count,) = tokens
    rollout = (
        torch.eye(t_count)
        .expand(n, t_count, t_count)
        .to(recorder.weights[0].device if recorder.weights else "cpu")
    )
    used, i, raw = 0, 0, {}
    for path, lay in sorted(blocks, key=lambda b: capture.seen[b[0]].mark):
        for w in recorder.weights[i : capture.seen[path].mark]:
            if w.shape[-1] == t_count:
                rollout, used = step(rollout, w), used + 1
        i = max(i, capture.seen[path].mark)
        raw[path] = read(rollout, lay.extras, lay.size)
    if not used:
        raise ValueError(
            f"attention rollout found no attention weights over the {t_count} tokens: it reads "
            "softmax(q k^T) (N, heads, T, T), F.scaled_dot_product_attention and "
            "nn.MultiheadAttention inside the model's forward, and this model computes its "
            "attention some other way"
        )
    target = _resolve_targets(targets, scores)
    T = target.shape[1]
    return CamResult(
        method=method,
        layers=list(raw),
        targets=target.cpu(),
        probs=scores.float().softmax(dim=1).cpu(),
        image_size=inputs.spatial,
        _raw={
            p: m.float().cpu()[:, None].expand(-1, T, *m.shape[1:]).clone() for p, m in raw.items()
        },
    )


def _split_targets(targets: Any, n: int, batch_size: int) -> list[Any]:
    """The targets of each batch of images: shared ones as they are, per-image ones split."""
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
        no_gradient=tuple(k for k in first.layers if all(k in p.no_gradient for p in parts)),
    )


# --- input methods -------------------------------------------------------------------------------


def _input_maps(model, inputs, targets, method, batch_size, samples, noise, steps, output):
    x, n = inputs.x, inputs.n
    with torch.no_grad():
        logits = torch.cat(
            [
                class_scores(inputs.run(model, x[s], s), output, len(x[s]))
                for s in _chunks(n, batch_size)
            ]
        )
    target = _resolve_targets(targets, logits)
    T = target.shape[1]
    how = INPUT_GRADIENTS[method]
    per = how.versions(samples, steps)
    # Rows (input, version) go through the model batch_size at a time, inputs mixed: the
    # versions are made as their chunk comes, so memory is bounded whatever N is. In
    # eval mode each row's gradient depends on that row alone.
    total = torch.zeros(n, T, *x.shape[1:], dtype=x.dtype, device=x.device)
    spans = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).clamp_min(1e-12)
    for start in range(0, n * per, batch_size):
        rows = torch.arange(start, min(start + batch_size, n * per))
        image_of, version = rows // per, rows % per
        chunk = how.versions_of(x, image_of, version, per, noise, spans)
        chunk = chunk.detach().requires_grad_()
        out = class_scores(inputs.run(model, chunk, image_of), output, len(rows))
        if not out.requires_grad:
            raise ValueError(
                f"{method} needs the gradient of the class scores at the input, but they do "
                "not depend on it through autograd: the model runs part of its forward under "
                "torch.no_grad() (a frozen backbone?); explain a layer after that part with "
                "a layer method (gradcam, gradcam++, layercam)"
            )
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
        image_size=inputs.spatial,
        _raw={INPUT: maps.float().cpu()},
    )


def _noise(image_of: torch.Tensor, version: torch.Tensor, per: int, x: torch.Tensor):
    """Standard normal noise per (input, version), the same on every call and chunking."""
    out = []
    for i, v in zip(image_of.tolist(), version.tolist(), strict=True):
        g = torch.Generator().manual_seed(i * per + v)
        out.append(torch.randn(x.shape[1:], generator=g))
    return torch.stack(out).to(device=x.device, dtype=x.dtype)
