"""``nbviz.watch``: the training dashboard, a bqplot row of curves above nbviz's own views.

The kernel side only records (`TrainingRecorder`) and pushes what changed, a few times
a second and at the end of every cell. Curves are bqplot figures whose data
the browser writes from the raw series it received: smoothing, the log scale
and the window of steps are applied there, so they work while the training
cell runs. Gradient flow, histograms over time, dead units and feature maps
are drawn by ``js/src/monitor.js`` from data already sent.
"""

from __future__ import annotations

import warnings
from typing import Any

import ipywidgets
import numpy as np
import traitlets
from torch import nn

from .._widget import LiveWidget, Nested
from .core import TrainingRecorder

_PALETTE = {"train": "#1f77b4", "raw": "#1f77b4", "val": "#ff7f0e", "bad": "#d62728"}


class MonitorPanels(LiveWidget):
    """The anywidget half of the dashboard (everything but the bqplot curves).

    Its ``source`` is a `TrainingRecorder` (live) or a `runlog.RecordedRun` (a run read
    from disk): anything with ``snapshot()``, ``versions`` and ``probe_images()``.
    """

    _bundle = "monitor"

    layers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    relus = traitlets.List(traitlets.Unicode()).tag(sync=True)
    steps = traitlets.Int(0).tag(sync=True)
    scalars = Nested({})  # name -> {steps, values}
    val = Nested({})
    flow = Nested({})  # grad_norm / grad_max / ratio / dead -> {rows, steps, stride}
    latest = Nested({})  # the newest per-layer values, for the bars
    max_step = traitlets.Int(-1).tag(sync=True)  # the step of latest["grad_max"] (sampled)
    histograms = Nested({})  # "layer|kind" -> {radius, rows, steps, stride}
    hist_layers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    features = Nested({})  # layer -> (N, C, h, w) uint8
    features_step = traitlets.Int(-1).tag(sync=True)
    probe_images = Nested(None)  # (N, H, W, 3) uint8 thumbnails of the probe, if images
    nonfinite = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    curves = traitlets.List().tag(sync=True)  # per scalar: ids of its bqplot models
    detached = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        source: Any,
        curve_box: ipywidgets.Box,
        title: str,
        max_rate: float,
        *,
        end_of_cell_flush: bool = True,
    ):
        self.source = source
        self._curve_box = curve_box
        self._figures: dict[str, dict[str, Any]] = {}
        self._sent: dict[str, int] = {}
        super().__init__(
            max_rate=max_rate,
            title=title,
            probe_images=source.probe_images(),
            end_of_cell_flush=end_of_cell_flush,
        )
        self._push(True)

    def _push(self, final: bool) -> bool:
        snap = self.source.snapshot()
        version = dict(self.source.versions)
        if self.probe_images is None:  # a followed run's probe arrives with its first records
            images = self.source.probe_images()
            if images is not None:
                self.probe_images = images
        self.steps = snap["steps"]
        self.layers, self.relus = snap["layers"], snap["relus"]
        for name in snap["scalars"]:
            self._figure(name)
        if version["scalars"] != self._sent.get("scalars"):
            self.scalars = {
                k: {"steps": s.astype(np.int32), "values": v.astype(np.float32)}
                for k, (s, v) in snap["scalars"].items()
            }
            self.val = {
                k: {"steps": s.astype(np.int32), "values": v.astype(np.float32)}
                for k, (s, v) in snap["val"].items()
            }
        if version["flow"] != self._sent.get("flow"):
            self.flow = {
                name: {
                    "rows": snap[name][0].astype(np.float32),
                    "steps": snap[name][1].astype(np.int32),
                    "stride": snap["strides"][name],
                }
                for name in ("grad_norm", "grad_max", "ratio", "dead")
            }
            self.latest = {k: np.asarray(v, dtype=np.float32) for k, v in snap["latest"].items()}
            self.max_step = -1 if snap["grad_max_step"] is None else snap["grad_max_step"]
        if version["hist"] != self._sent.get("hist"):
            self.hist_layers = snap["hist_layers"]
            self.histograms = {
                f"{layer}|{kind}": {
                    "radius": float(edges[-1]),
                    "rows": rows.astype(np.float32),
                    "steps": steps.astype(np.int32),
                    "stride": snap["hist_strides"][(layer, kind)],
                }
                for (layer, kind), (edges, rows, steps) in snap["histograms"].items()
            }
        if version["features"] != self._sent.get("features"):
            self.features = snap["features"]
            self.features_step = -1 if snap["features_step"] is None else snap["features_step"]
        self.nonfinite = snap["nonfinite"]
        self._sent = version
        return False

    def _figure(self, name: str) -> None:
        """A bqplot figure for one scalar: raw and smoothed training lines, validation points."""
        if name in self._figures:
            return
        import bqplot

        x = bqplot.LinearScale()
        y = bqplot.LinearScale()
        raw = bqplot.Lines(
            x=[],
            y=[],
            scales={"x": x, "y": y},
            colors=[_PALETTE["raw"]],
            opacities=[0.25],
            stroke_width=1,
        )
        smooth = bqplot.Lines(
            x=[],
            y=[],
            scales={"x": x, "y": y},
            colors=[_PALETTE["train"]],
            stroke_width=2,
            labels=["train"],
        )
        val = bqplot.Scatter(
            x=[],
            y=[],
            scales={"x": x, "y": y},
            colors=[_PALETTE["val"]],
            default_size=24,
            labels=["validation"],
        )
        # Non-finite values: crosses along the top (the browser places them), not line points.
        bad = bqplot.Scatter(
            x=[],
            y=[],
            scales={"x": x, "y": y},
            colors=[_PALETTE["bad"]],
            marker="cross",
            default_size=40,
            labels=["non-finite"],
        )
        # The browser sets both scales' ranges, the step ticks and the value format from the
        # data it draws (monitor.js); the title names the curve, so the y axis has no label.
        xaxis = bqplot.Axis(scale=x, label="step", grid_lines="none", tick_format="d")
        yaxis = bqplot.Axis(scale=y, side="left", grid_lines="solid", tick_format=".3~g")
        fig = bqplot.Figure(
            marks=[raw, smooth, val, bad],
            axes=[xaxis, yaxis],
            title=name,
            fig_margin={"top": 30, "bottom": 40, "left": 60, "right": 12},
            layout=ipywidgets.Layout(width="340px", height="230px"),
            animation_duration=0,
        )
        parts = {
            "figure": fig,
            "raw": raw,
            "smooth": smooth,
            "val": val,
            "bad": bad,
            "x": x,
            "y": y,
            "xaxis": xaxis,
            "yaxis": yaxis,
        }
        self._figures[name] = parts
        self._curve_box.children = (*self._curve_box.children, fig)
        self.curves = [
            {"name": n, **{k: f"IPY_MODEL_{w.model_id}" for k, w in p.items()}}
            for n, p in self._figures.items()
        ]


def dashboard_parts(
    source: Any, title: str, max_rate: float, *, end_of_cell_flush: bool = True
) -> tuple[list[ipywidgets.Widget], ipywidgets.HBox, MonitorPanels]:
    """The dashboard's title (a Label: text, never HTML; none for ""), its row of curves and
    its panels, drawing ``source`` (a recorder, or a run read from disk)."""
    curves = ipywidgets.HBox(layout=ipywidgets.Layout(flex_flow="row wrap"))
    curves.add_class("nbviz-monitor-curves")  # monitor.css themes the bqplot text
    view = MonitorPanels(source, curves, "", max_rate, end_of_cell_flush=end_of_cell_flush)
    head = [ipywidgets.Label(title, style={"font_weight": "bold"})] if title else []
    return head, curves, view


class Monitor(ipywidgets.VBox):
    """The dashboard returned by :func:`nbviz.watch`; also a context manager that detaches."""

    def __init__(
        self,
        recorder: TrainingRecorder,
        *,
        title: str = "",
        max_rate: float = 2.0,
        graph: Any = None,
        layout: Any = None,
    ):
        self.recorder = recorder
        head, self.curves, self.view = dashboard_parts(recorder, title, max_rate)
        self._graph = graph
        extra = {} if layout is None else {"layout": layout}  # ipywidgets' own default
        super().__init__(children=[*head, self.curves, self.view], **extra)

    @property
    def watcher(self) -> TrainingRecorder:
        """Deprecated: the recorder is ``mon.recorder``."""
        warnings.warn(
            "Monitor.watcher is now Monitor.recorder; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.recorder

    def step(self, **scalars: Any) -> None:
        """Call once per training step, after ``loss.backward()`` and before ``optimizer.step()``:
        records the named scalars (numbers or one-element tensors) and the gradients' statistics."""
        self.recorder.step(**scalars)
        self.view.mark_changed()
        if self._graph is not None and not self.view.pending:
            self._overlay()

    def log_val(self, **scalars: Any) -> None:
        """Validation scalars at the current step, drawn as points on the same axes."""
        self.recorder.log_val(**scalars)
        self.view.mark_changed()

    def log(self, **scalars: Any) -> None:
        """Training scalars at the current step, logged after ``step()`` (as a framework's
        logging hook does): points of the same curves ``step(**scalars)`` draws."""
        self.recorder.log_scalars(**scalars)
        self.view.mark_changed()

    def detach(self) -> None:
        """Remove the hooks; the dashboard keeps showing what was recorded."""
        self.recorder.detach()
        self.view.detached = True
        self.view.flush()

    def flush(self) -> None:
        """Push everything recorded to the view now (and the graph's overlay, if linked)."""
        self.view.mark_changed(force=True)
        if self._graph is not None:
            self._overlay()

    def gradient_norms(self) -> dict[str, float]:
        """The latest gradient norm of each layer, e.g. for ``ModelGraph.overlay``."""
        self.recorder.flush_pending()  # only the newest values: no copy of the histories
        latest = self.recorder.latest.get("grad_norm")
        return (
            {}
            if latest is None
            else dict(zip(self.recorder.layers, map(float, latest), strict=True))
        )

    def _overlay(self) -> None:
        values = self.gradient_norms()
        if values:
            self._graph.overlay(values, label="gradient norm")

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


def watch(
    model: nn.Module,
    probe: Any = None,
    *,
    layers: Any = None,
    every: int = 20,
    hist_every: int = 100,
    features_every: int = 100,
    on_nan: str = "warn",
    graph: Any = None,
    title: str = "",
    max_rate: float = 2.0,
    layout: Any = None,
    logdir: Any = None,
    log_every: float = 1.0,
) -> Monitor:
    """Watch ``model`` train: a dashboard of curves, gradient flow, histograms and feature maps.

    >>> import torch, nbviz
    >>> from nbviz.examples import SmallCNN
    >>> model = SmallCNN()
    >>> mon = nbviz.watch(model, probe=torch.rand(8, 3, 64, 64))  # doctest: +SKIP
    >>> # in the loop: loss.backward(); mon.step(loss=loss, acc=acc); opt.step()

    ``probe``: a few fixed inputs whose feature maps are shown (conv models).
    ``layers``: module paths for the histograms (default: four spread over depth).
    ``every`` / ``hist_every`` / ``features_every``: steps between max |g|, update ratios
    and dead units / histograms / feature maps (gradient norms and the NaN/Inf watch run
    every step). ``on_nan="raise"`` stops
    the loop at the first non-finite gradient or scalar. ``graph``: a
    :class:`nbviz.ModelGraph` of the same model, coloured by gradient norm as it trains.
    ``layout``: ipywidgets' ``Layout`` of the whole dashboard, as for the other widgets.
    ``logdir``: a run directory to record to as well, every ``log_every`` seconds (from a
    background thread), for :func:`nbviz.follow` in any process; ``detach()`` writes the
    rest. The run holds the model's graph too (``graph``'s, else traced on the probe).
    """
    if graph is not None and not hasattr(graph, "overlay"):
        raise TypeError(f"graph must be an nbviz.ModelGraph, got {type(graph).__name__}")
    recorder = TrainingRecorder(
        model,
        probe,
        layers=layers,
        every=every,
        hist_every=hist_every,
        features_every=features_every,
        on_nan=on_nan,
        logdir=logdir,
        log_every=log_every,
        graph=None if graph is None else graph.traced,
    )
    try:
        return Monitor(recorder, title=title, max_rate=max_rate, graph=graph, layout=layout)
    except BaseException:
        recorder.detach()  # no widget, no hooks left on the user's model
        raise


__all__ = ["Monitor", "MonitorPanels", "dashboard_parts", "watch"]
