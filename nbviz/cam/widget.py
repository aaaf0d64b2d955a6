"""``GradCAM``: an explorer of class activation maps over layers, classes, images and methods.

Every map the view can show is computed up front (one forward and one
backward per target class for all layers, per method) and travels once, as
uint8 at each layer's own resolution; the browser upsamples, colours and
thresholds them. Sliders and selectors never talk to the kernel.
``refresh()`` recomputes with the model's current weights (mid-training).
With ``faithfulness=True`` the chart also scores every map against the model itself:
deletion and insertion AUCs (`nbviz.cam.faithfulness`) and its similarity to the map of a
randomised copy of the model (the last step of `nbviz.cam.randomization_check`'s cascade).

Images are shown with their maps over them; signals (a ``Conv1d`` model's ``(N, C,
L)`` inputs) as curves with their maps as a coloured band below and a tint behind;
volumes and clips (a ``Conv3d`` model's ``(N, C, D, H, W)``) slice by slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets
from torch import nn

from .._checks import int_at_least
from .._images import DISPLAY_MAX, display_images, display_masks
from .._state import preserved
from .._text import plural
from .._widget import Array, LiveWidget
from .agreement import agreement, check_masks
from .core import (
    CAM_METHODS,
    INPUT_METHODS,
    METHODS,
    CamResult,
    class_scores,
    compute,
    quantise,
    resolve_layers,
)
from .faithfulness import SCORE, check_model
from .faithfulness import faithfulness as measure_faithfulness
from .inputs import KINDS, model_inputs
from .sanity import cascade_steps, copy_of, randomise, spearman_rank

COLORMAPS = ("inferno", "viridis", "cividis")
SIGNAL_MAX = 2048  # samples of a signal sent for display (longer ones are averaged down)
SIGNAL_CHANNELS = 8  # curves drawn per signal; more channels are drawn as their mean
# faithfulness=True: deletion / insertion curves of STEPS steps (the core's default is 20;
# ten keep the explorer's many curves affordable), on the core's default baseline (a blur),
# and the randomised copy drawn from SEED (randomization_check's default seed).
FAITHFULNESS_STEPS = 10
RANDOM_SEED = 0
# The numbers each image gets per map, in this order (null where not computed).
SCORES = ("pointing", "energy", "iou", "deletion", "insertion", "randomised")


class GradCAM(LiveWidget):
    """Explore where ``model`` looks in ``images``: layer by layer, class by class.

    >>> import nbviz
    >>> from nbviz.datasets import shapes
    >>> from nbviz.examples import SmallCNN
    >>> data = shapes(8)
    >>> cam = nbviz.GradCAM(SmallCNN(), data.images, labels=data.labels, masks=data.masks,
    ...                     classes=data.classes)  # doctest: +SKIP
    >>> scored = nbviz.GradCAM(SmallCNN(), data.images, faithfulness=True)  # doctest: +SKIP

    ``labels`` (one class index per image) adds the true class to the class
    selector; ``masks`` (N, H, W) human-annotated regions enable the outline
    toggle and the agreement chart. ``methods`` are any of
    :data:`nbviz.cam.METHODS`; ``topk`` predicted classes are explained for
    every image (plus the true one). ``layers``, ``output`` (which part of the model's
    output holds the class scores), ``forward_kwargs`` (more keyword inputs) and
    ``reshape`` as in :func:`nbviz.cam.compute`; ``images`` may be signals ``(N, C, L)``
    for a ``Conv1d`` model or volumes ``(N, C, D, H, W)`` for a ``Conv3d`` model, or a
    Hugging Face processor's dict with ``pixel_values``. Masks (and the agreement chart)
    are for images only.

    ``faithfulness=True`` (images only) adds three measures to the chart, for every
    method, layer, image and class column: the **deletion AUC** and **insertion AUC** of
    :func:`nbviz.cam.faithfulness` (RISE's softmax probability of the explained class as
    the map's top pixels are replaced by, or revealed on, its default baseline, a blur;
    10 steps; lower deletion and higher insertion are better), and the **similarity to a
    randomised model**: the Spearman rank correlation between the map and the map of the
    same method, layer and class on a copy of the model whose every parametrised module is
    re-initialised (the last step of :func:`nbviz.cam.randomization_check`'s cascade, seed
    0; near 0 means the map depends on what the model learned). A constant (empty) map
    ranks no pixel above another: it gets none of the three (null), and the similarity is
    null too where the copy's map is constant. It costs ``T * N * (2 + 18 * R)`` more
    forwards (R maps an image over all methods and layers, T class columns), a deep copy
    of the model for a while, and one map computation per method on the copy, at every
    ``refresh()``; the model itself is left as it was (weights, buffers, modes,
    ``requires_grad``, ``.grad``, the global RNG).
    """

    _bundle = "cam"

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    kind = traitlets.Unicode("image").tag(sync=True)  # "image", "signal" or "volume"
    images = Array()  # (N, H, W, 3) uint8 (volumes: (N, D, H, W, 3)), for display; signals: None
    signals = Array()  # (N, C', L') float32 signals for display (kind "signal"), else None
    labels = traitlets.List(allow_none=True, default_value=None).tag(sync=True)
    masks = Array()  # (N, H, W) uint8 0/1 at the display size, or None
    methods = traitlets.List(traitlets.Unicode()).tag(sync=True)
    maps = Array()  # every map, uint8, concatenated as maps_index says
    # {method, layer, d, h, w, offset, agreement, no_gradient}: maps are (N, T, d, h, w);
    # agreement: None, or [target][image] -> the SCORES, each a number or None
    maps_index = traitlets.List().tag(sync=True)
    # With faithfulness=True: {"baseline", "steps", "score", "seed"}, how the faithfulness
    # numbers were computed (the chart says so); None otherwise.
    faithfulness_settings = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    targets = Array()  # (N, T) int: the classes explained per image
    probs = Array()  # (N, T) float: their probabilities
    topk = traitlets.Int(3).tag(sync=True)
    # Initial view; afterwards the view state lives in the browser.
    method = traitlets.Unicode("gradcam").tag(sync=True)
    opacity = traitlets.Float(0.5).tag(sync=True)
    colormap = traitlets.Unicode("inferno").tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        images: Any,
        *,  # the rest by name: eight positional arguments were easy to misorder
        labels: Any = None,
        masks: Any = None,
        classes: Sequence[str] | None = None,
        layers: Sequence[str | nn.Module] | None = None,
        methods: Sequence[str] = ("gradcam", "gradcam++", "layercam", "saliency"),
        topk: int = 3,
        title: str = "",
        opacity: float = 0.5,
        colormap: str = "inferno",
        batch_size: int = 32,
        output: Any = None,
        forward_kwargs: dict[str, Any] | None = None,
        reshape: Any = None,
        layout: Any = None,
        faithfulness: bool = False,
    ):
        methods = [methods] if isinstance(methods, str) else list(methods)
        if not methods or any(m not in METHODS for m in methods):
            raise ValueError(
                f"methods must be a non-empty list of {', '.join(map(repr, METHODS))}, got {methods!r}"
            )
        if colormap not in COLORMAPS:
            raise ValueError(f"colormap must be one of {COLORMAPS}, got {colormap!r}")
        if not isinstance(opacity, (int, float)) or not 0 <= opacity <= 1:
            raise ValueError(f"opacity must be a number in [0, 1], got {opacity!r}")
        int_at_least("topk", topk)
        int_at_least("batch_size", batch_size)
        if reshape is not None and not callable(reshape):
            raise TypeError(f"reshape must be a callable, got {type(reshape).__name__}")
        if not isinstance(faithfulness, (bool, np.bool_)):
            raise TypeError(f"faithfulness must be True or False, got {faithfulness!r}")
        inputs = model_inputs(model, images, forward_kwargs)  # every check before anything runs
        x, n = inputs.x, inputs.n
        kind = KINDS[x.ndim - 2][0]
        if faithfulness:
            if kind != "image":
                raise ValueError(
                    f"faithfulness=True perturbs images (N, C, H, W); these inputs are {kind}s "
                    f"of shape {tuple(x.shape)}: leave faithfulness out"
                )
            check_model(model)  # parameters holding values: the copy is re-initialised
        self._labels = _check_labels(labels, n)
        if masks is not None and kind != "image":
            raise ValueError(
                f"masks are for images (N, H, W); these inputs are {kind}s of shape "
                f"{tuple(x.shape)}: leave masks out"
            )
        self._masks = None if masks is None else check_masks(masks, n, tuple(x.shape[2:]))
        resolve_layers(model, layers)
        if classes is not None:
            classes = [str(c) for c in classes]
        self._model, self._inputs, self._layers = model, inputs, layers
        self._methods, self._batch_size = methods, batch_size
        self._topk, self._output, self._reshape = topk, output, reshape
        self._faithfulness = bool(faithfulness)
        super().__init__(
            max_rate=None,
            layout=layout,
            title=title,
            methods=methods,
            topk=topk,
            method=methods[0],
            opacity=float(opacity),
            colormap=colormap,
            labels=None if self._labels is None else self._labels.tolist(),
            kind=kind,
            images=DISPLAY[kind](x),
            signals=_display_signals(x) if kind == "signal" else None,
            masks=None if self._masks is None else display_masks(self._masks),
        )
        self._classes_given = classes
        self.refresh()

    def refresh(self) -> None:
        """Recompute every map with the model's current weights and send them."""
        targets, k = self._targets()
        if self._classes_given is not None and len(self._classes_given) != k:
            raise ValueError(
                f"classes must name the model's {plural(k, 'class', 'classes')}, "
                f"got {plural(len(self._classes_given), 'name')}"
            )
        inputs = self._inputs
        images = inputs.x if inputs.key is None else {inputs.key: inputs.x}
        results = [
            self._compute(self._model, images, self._layers, targets, method)
            for method in self._methods
        ]
        faithful, settings = (
            self._faithful(images, targets, results) if self._faithfulness else (None, None)
        )
        self._pending = (results, self._classes_given or [str(i) for i in range(k)], faithful)
        self._settings = settings
        self.mark_changed(force=True)

    def _compute(self, model: nn.Module, images: Any, layers: Any, targets, method: str):
        return compute(
            model,
            images,
            layers,
            targets=targets,
            method=method,
            batch_size=self._batch_size,
            output=self._output,
            forward_kwargs=self._inputs.kwargs,
            reshape=self._reshape if method in CAM_METHODS else None,
        )

    def _faithful(
        self, images: Any, targets: torch.Tensor, results: list[CamResult]
    ) -> tuple[np.ndarray, dict]:
        """``(R, T, N, 3)`` [deletion AUC, insertion AUC, randomised similarity] for each
        (method, layer) row in ``results``' order, target column and image (NaN for a
        constant map); and the settings they were computed with."""
        n_targets = targets.shape[1]
        rows = sum(len(r.layers) for r in results)
        out = np.full((rows, n_targets, self._inputs.n, 3), np.nan)
        baseline = ""
        for t in range(n_targets):
            f = measure_faithfulness(
                self._model,
                images,
                results,
                target=t,
                steps=FAITHFULNESS_STEPS,
                batch_size=self._batch_size,
                output=self._output,
                forward_kwargs=self._inputs.kwargs,
            )
            out[:, t, :, 0], out[:, t, :, 1], baseline = f.deletion_auc, f.insertion_auc, f.baseline
        # A constant map (an empty one: no evidence, or no gradient) ranks no pixel above
        # another: the core deletes it in row-major order, which says nothing of the map.
        flat = [r.raw(layer, None).flatten(2) for r in results for layer in r.layers]
        constant = torch.stack([(m.amax(2) == m.amin(2)).T for m in flat]).numpy()  # (R, T, N)
        out[constant, :2] = np.nan
        out[..., 2] = self._randomised_similarity(images, targets, results)
        settings = {"baseline": baseline, "steps": FAITHFULNESS_STEPS, "score": SCORE,
                    "seed": RANDOM_SEED}  # fmt: skip
        return out, settings

    def _randomised_similarity(
        self, images: Any, targets: torch.Tensor, results: list[CamResult]
    ) -> np.ndarray:
        """``(R, T, N)`` Spearman rank correlations between each map and the same method's,
        layer's and class's map on a copy of the model with every parametrised module
        re-initialised: the last step of `randomization_check`'s default cascade (its
        steps, seeds and re-initialisation; the caller's RNG and model untouched)."""
        why = "faithfulness=True compares the maps with a randomised copy of the model"
        randomised = copy_of(self._model, why)
        steps = cascade_steps(randomised, images, None, self._inputs.kwargs)
        for _ in randomise(randomised, steps, RANDOM_SEED):  # as randomization_check, to its end
            pass
        # One call per method at the same layers (by name: the copy's own modules).
        others = [
            self._compute(randomised, images,
                          None if r.method in INPUT_METHODS else r.layers, targets, r.method)
            for r in results
        ]  # fmt: skip
        del randomised
        out = []
        for r, o in zip(results, others, strict=True):
            for layer in r.layers:
                out.append(
                    torch.stack(
                        [
                            spearman_rank(r.maps(layer, t), o.maps(layer, t))
                            for t in range(targets.shape[1])
                        ]
                    ).numpy()
                )
        return np.stack(out)

    @property
    def results(self) -> list:
        """The :class:`nbviz.cam.CamResult` of each method, as last computed."""
        return list(self._pending[0])

    def _targets(self) -> tuple[torch.Tensor, int]:
        """(N, T) classes to explain: the top-k predictions, then the true label if given."""
        inputs, bs = self._inputs, self._batch_size
        parts = []
        with torch.no_grad(), preserved(self._model, training=False):
            for i in range(0, inputs.n, bs):
                rows = slice(i, i + bs)
                out = inputs.run(self._model, inputs.x[rows], rows)
                parts.append(class_scores(out, self._output, len(inputs.x[rows])))
        logits = torch.cat(parts)
        k = logits.shape[1]
        targets = logits.topk(min(self._topk, k), dim=1).indices.cpu()
        if self._labels is not None:
            if int(self._labels.max()) >= k:
                raise ValueError(
                    f"labels must be classes in [0, {k - 1}], got {int(self._labels.max())}"
                )
            targets = torch.cat([targets, torch.as_tensor(self._labels)[:, None]], dim=1)
        return targets, k

    def _push(self, final: bool) -> bool:
        results, classes, faithful = self._pending
        chunks, index, offset, row = [], [], 0, 0
        for res in results:
            scores = None if self._masks is None else _agreements(res, self._masks)
            for li, layer in enumerate(res.layers):
                agreed = _scores(
                    None if scores is None else scores[li],
                    None if faithful is None else faithful[row],
                )
                row += 1
                raw = res.raw(layer, None)  # (N, T, *size)
                q = quantise(raw)
                chunks.append(q.reshape(-1))
                d, h, w = (1,) * (5 - raw.ndim) + tuple(raw.shape[2:])
                index.append(
                    {
                        "method": res.method,
                        "layer": layer,
                        "d": d,
                        "h": h,
                        "w": w,
                        "offset": offset,
                        "agreement": agreed,
                        "no_gradient": layer in res.no_gradient,
                    }
                )
                offset += q.size
        first = results[0]
        probs = first.probs.gather(1, first.targets).numpy().astype(np.float32)
        self.classes = classes
        self.targets = first.targets.numpy().astype(np.int32)
        self.probs = probs
        self.maps = np.concatenate(chunks)
        self.maps_index = index
        self.faithfulness_settings = self._settings
        return False


def _check_labels(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if t.ndim != 1 or t.shape[0] != n or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(
            f"labels must be one class index per image ({n} ints), got shape {tuple(t.shape)} "
            f"of {t.dtype}"
        )
    if n and int(t.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(t.min())}")
    return t.cpu().numpy().astype(np.int64)


def _display_signals(x: torch.Tensor) -> np.ndarray:
    """(N, C, L) signals -> (N, C', L') float32 for drawing: at most `SIGNAL_CHANNELS`
    curves (more channels: their mean) and `SIGNAL_MAX` samples (longer: averaged by an
    integer factor)."""
    x = x.detach().float().cpu()
    if x.shape[1] > SIGNAL_CHANNELS:
        x = x.mean(dim=1, keepdim=True)
    f = -(-x.shape[2] // SIGNAL_MAX)
    if f > 1:
        x = torch.nn.functional.avg_pool1d(x, f, f)
    return x.numpy()


def _display_volumes(x: torch.Tensor) -> np.ndarray:
    """(N, C, D, H, W) volumes -> (N, D, H', W', 3) uint8 slices, each volume scaled as a
    whole (one contrast for all its slices) when its values leave [0, 1]."""
    x = x.detach().float().cpu()
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1, 1, 1)
    outside = ((lo < 0) | (hi > 1)).float()
    x = outside * (x - lo) / (hi - lo).clamp_min(1e-12) + (1 - outside) * x
    n, c, d, h, w = x.shape
    slices = x.transpose(1, 2).reshape(n * d, c, h, w)
    shown = display_images(slices, DISPLAY_MAX)
    return shown.reshape(n, d, *shown.shape[1:])


def _scores(agreed: list | None, faithful: np.ndarray | None) -> list | None:
    """[target][image] -> the SCORES: the mask agreement's three (``agreed``, from
    `_agreements`) then the faithfulness measures' three (``faithful``, (T, N, 3)),
    rounded for JSON, None where not computed (or NaN); None when neither was."""
    if agreed is None and faithful is None:
        return None
    if agreed is not None:
        t, n = len(agreed), len(agreed[0]) if agreed else 0
    else:
        t, n = faithful.shape[:2]
    none = [None, None, None]
    return [
        [
            (none if agreed is None else agreed[j][i])
            + (none if faithful is None else [_rounded(v) for v in faithful[j, i]])
            for i in range(n)
        ]
        for j in range(t)
    ]


def _rounded(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None


def _agreements(res, masks: torch.Tensor) -> list[list]:
    """For each layer: [target][image] -> [pointing, energy, iou], rounded for JSON."""
    per_target = [agreement(res, masks, target=t) for t in range(res.targets.shape[1])]
    out = []
    for li in range(len(res.layers)):
        out.append(
            [
                [
                    [
                        float(a.pointing[li, i]),
                        round(float(a.energy[li, i]), 4),
                        round(float(a.iou[li, i]), 4),
                    ]
                    for i in range(res.targets.shape[0])
                ]
                for a in per_target
            ]
        )
    return out


# What the browser shows of the inputs, by kind: images, slices of volumes, nothing for
# signals (they travel as `signals`).
DISPLAY = {"image": display_images, "volume": _display_volumes, "signal": lambda x: None}
