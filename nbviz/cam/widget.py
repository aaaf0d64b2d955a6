"""``GradCAM``: an explorer of class activation maps over layers, classes, images and methods.

Every map the view can show is computed up front (one forward and one
backward per target class for all layers, per method) and travels once, as
uint8 at each layer's own resolution; the browser upsamples, colours and
thresholds them. Sliders and selectors never talk to the kernel.
``refresh()`` recomputes with the model's current weights (mid-training).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets
from torch import nn

from .._checks import int_at_least
from .._images import display_images, display_masks, images_for_model
from .._state import preserved
from .._text import plural
from .._widget import Array, LiveWidget
from .agreement import agreement, check_masks
from .core import METHODS, compute, resolve_layers

COLORMAPS = ("inferno", "viridis", "cividis")


class GradCAM(LiveWidget):
    """Explore where ``model`` looks in ``images``: layer by layer, class by class.

    >>> import nbviz
    >>> from nbviz.datasets import shapes
    >>> from nbviz.examples import SmallCNN
    >>> data = shapes(8)
    >>> cam = nbviz.GradCAM(SmallCNN(), data.images, labels=data.labels, masks=data.masks,
    ...                     classes=data.classes)  # doctest: +SKIP

    ``labels`` (one class index per image) adds the true class to the class
    selector; ``masks`` (N, H, W) human-annotated regions enable the outline
    toggle and the agreement chart. ``methods`` are any of
    :data:`nbviz.cam.METHODS`; ``topk`` predicted classes are explained for
    every image (plus the true one). ``layers`` as in :func:`nbviz.cam.compute`.
    """

    _bundle = "cam"

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    images = Array()  # (N, H, W, 3) uint8, for display
    labels = traitlets.List(allow_none=True, default_value=None).tag(sync=True)
    masks = Array()  # (N, H, W) uint8 0/1 at the display size, or None
    methods = traitlets.List(traitlets.Unicode()).tag(sync=True)
    maps = Array()  # every map, uint8, concatenated as maps_index says
    maps_index = traitlets.List().tag(sync=True)  # {method, layer, h, w, offset, agreement}
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
        layout: Any = None,
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
        x = images_for_model(images, model)  # every check before anything runs
        n = x.shape[0]
        self._labels = _check_labels(labels, n)
        self._masks = None if masks is None else check_masks(masks, n, tuple(x.shape[2:]))
        resolve_layers(model, layers)
        if classes is not None:
            classes = [str(c) for c in classes]
        self._model, self._images, self._layers = model, x, layers
        self._methods, self._batch_size = methods, batch_size
        self._topk = topk
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
            images=display_images(x),
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
        results = [
            compute(
                self._model,
                self._images,
                self._layers,
                targets=targets,
                method=method,
                batch_size=self._batch_size,
            )
            for method in self._methods
        ]
        self._pending = (results, self._classes_given or [str(i) for i in range(k)])
        self.mark_changed(force=True)

    @property
    def results(self) -> list:
        """The :class:`nbviz.cam.CamResult` of each method, as last computed."""
        return list(self._pending[0])

    def _targets(self) -> tuple[torch.Tensor, int]:
        """(N, T) classes to explain: the top-k predictions, then the true label if given."""
        with torch.no_grad(), preserved(self._model, training=False):
            logits = torch.cat(
                [self._model(c.clone()) for c in self._images.split(self._batch_size)]
            )
        if logits.ndim != 2:
            raise ValueError(
                f"the model must return class scores of shape (N, classes), got {tuple(logits.shape)}"
            )
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
        results, classes = self._pending
        chunks, index, offset = [], [], 0
        for res in results:
            scores = None if self._masks is None else _agreements(res, self._masks)
            for li, layer in enumerate(res.layers):
                raw = res.raw(layer, None)  # (N, T, h, w)
                q = _quantise(raw)
                chunks.append(q.reshape(-1))
                index.append(
                    {
                        "method": res.method,
                        "layer": layer,
                        "h": int(raw.shape[2]),
                        "w": int(raw.shape[3]),
                        "offset": offset,
                        "agreement": None if scores is None else scores[li],
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


def _quantise(raw: torch.Tensor) -> np.ndarray:
    """(N, T, h, w) maps -> uint8, each map scaled by its own peak (0 stays 0)."""
    peak = raw.flatten(2).amax(dim=2).clamp_min(1e-30)[:, :, None, None]
    return (raw / peak * 255).round_().clamp_(0, 255).to(torch.uint8).numpy()


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
