"""``ModelGraph``: the expandable layer graph of a model, with a live overlay.

The whole traced graph travels to the browser once; expanding, folding,
searching, the details panel and export all happen there. Only the overlay
(one number per module, e.g. a gradient norm) is pushed again, throttled.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import torch
import traitlets

from .._widget import LiveWidget
from .core import Graph
from .trace import check_forward_keywords, trace


class ModelGraph(LiveWidget):
    """Draw ``model``'s layer graph, traced by running it once on ``args``/``kwargs``.

    >>> import nbviz, torch
    >>> from nbviz.examples import SmallCNN
    >>> g = nbviz.ModelGraph(SmallCNN(), torch.zeros(1, 3, 64, 64), depth=1)  # doctest: +SKIP
    >>> g.overlay({"features.block1": 0.3, "features.block2": 0.1}, label="grad norm")  # doctest: +SKIP

    ``depth`` is how far the view starts expanded; ``mode`` is passed to
    :func:`nbviz.trace` ("auto", "meta", "fake" or "real"). Other keyword arguments go
    to the model's forward. Pass a ready :class:`nbviz.Graph` as ``graph=``
    instead of a model to show a graph traced earlier.
    """

    _bundle = "graph"

    graph = traitlets.Dict().tag(sync=True)
    depth = traitlets.Int(1).tag(sync=True)
    overlay_data = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        *args: Any,
        depth: int = 1,
        title: str = "",
        mode: str = "auto",
        graph: Graph | None = None,
        max_rate: float | None = 10.0,
        layout: Any = None,
        **kwargs: Any,
    ):
        if graph is None:
            if model is None:
                raise TypeError(
                    "ModelGraph needs a model (and its inputs) or graph=nbviz.trace(...)"
                )
            if isinstance(model, torch.nn.Module):  # (trace says what else it expects)
                check_forward_keywords(model, kwargs, ModelGraph.__init__, trace)
            graph = trace(model, *args, mode=mode, **kwargs)
        elif model is not None:
            raise TypeError("pass either a model with its inputs or graph=, not both")
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be an nbviz.Graph, got {type(graph).__name__}")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError(f"depth must be an int >= 0, got {depth!r}")
        data = graph.to_dict()
        self._graph = graph
        self._model = weakref.ref(model) if model is not None else None
        self._module_paths: dict[int, str] | None = None  # id(module) -> path, on first need
        self._paths = set(data["modules"])
        self._pending_overlay: dict | None = None
        super().__init__(max_rate=max_rate, layout=layout, graph=data, depth=depth, title=title)

    @property
    def traced(self) -> Graph:
        """The :class:`nbviz.Graph` on display."""
        return self._graph

    def overlay(self, values: Mapping[Any, Any] | None, label: str = "") -> None:
        """Colour module boxes by one number each (``None`` clears the overlay).

        ``values`` maps module paths (``"layer1.0.conv1"``) or the modules
        themselves to numbers (Python, numpy or one-element tensors). Callable
        every training step: the view refreshes at most ``max_rate`` times a
        second and at the end of the cell.
        """
        if values is None:
            self._pending_overlay = None
            self.mark_changed()
            return
        if not isinstance(values, Mapping):
            raise TypeError(
                f"values must be a mapping of module path -> number, got {type(values).__name__}"
            )
        clean: dict[str, float | None] = {}
        unknown = []
        for key, value in values.items():
            path = self._path_of(key) if isinstance(key, torch.nn.Module) else key
            if not isinstance(path, str) or path not in self._paths:
                unknown.append(repr(key) if not isinstance(key, str) else key)
                continue
            clean[path] = _number(value, path)
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise ValueError(
                f"overlay keys must be module paths of the traced model; unknown: {shown}"
            )
        self._pending_overlay = {"label": str(label), "values": clean}
        self.mark_changed()

    def _path_of(self, module: torch.nn.Module) -> str | None:
        # Built once: overlay() runs every training step, mostly with path keys.
        if self._module_paths is None:
            model = self._model() if self._model is not None else None
            named = model.named_modules() if model is not None else ()
            self._module_paths = {id(m): name for name, m in named}
        return self._module_paths.get(id(module))

    def _push(self, final: bool) -> bool:
        self.overlay_data = self._pending_overlay
        return False


def _number(value: Any, path: str) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"overlay value for {path!r} must be a scalar, got shape {tuple(value.shape)}"
            )
        value = value.item()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"overlay value for {path!r} must be a number, got {value!r}") from None
    return number if math.isfinite(number) else None  # JSON has no NaN: shown as "no value"
