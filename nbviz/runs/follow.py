"""``nbviz.follow``: the training dashboard of a run that another process records.

A background thread reads what is new in the run directory a few times a second and
pushes it to the same panels ``nbviz.watch`` shows, so the kernel stays free for other
cells while a script (or a ``torchrun`` job) trains elsewhere. The thread stops on
``stop()``, when the widget closes, and with the kernel; it holds no file open between
reads.
"""

from __future__ import annotations

import math
import os
from typing import Any

import ipywidgets

from .._checks import positive_seconds
from ..confusion.runlog import RecordedConfusion
from ..confusion.widget import ConfusionMatrix
from ..graph.core import Graph
from ..graph.widget import ModelGraph
from ..monitor.runlog import STREAM
from ..monitor.widget import dashboard_parts
from .folder import find_runs, is_run, is_tensorboard_run, open_run, run_path
from .format import RunFormatError
from .reading import ReadLoop
from .widget import FolderFollower


class Follower(ipywidgets.VBox):
    """The dashboard of a recorded run, kept up to date from its directory."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        title: str = "",
        interval: float = 0.5,
        max_rate: float = 2.0,
        layout: Any = None,
    ):
        positive_seconds("interval", interval)
        self.path = run_path(path)
        self._tensorboard = is_tensorboard_run(self.path)
        self.run = open_run(self.path)  # nbviz's records, or a TensorBoard directory
        self.recorded_confusion = RecordedConfusion(self.path)
        self.confusion: ConfusionMatrix | None = None  # made when the run has one
        self._examples_shown = 0  # the recorded examples the view shows (examples_read)
        self.graph: ModelGraph | None = None  # made when the run has recorded its graph
        self._max_rate = max_rate
        self.status = ipywidgets.Label("")
        self.status.add_class("nbviz-follow-status")
        head, self.curves, self.view = dashboard_parts(
            self.run, title, max_rate, end_of_cell_flush=False
        )
        for part in (self.curves, self.view):  # shown once the run has monitor records
            part.layout.display = "none"
        extra = {} if layout is None else {"layout": layout}
        super().__init__(children=[*head, self.status, self.curves, self.view], **extra)
        self._read()  # what is there already shows at once
        self._loop = ReadLoop(self._read, self.status, interval, "nbviz-follow")

    @property
    def following(self) -> bool:
        """Whether the background thread still reads the run."""
        return hasattr(self, "_loop") and self._loop.alive

    def refresh(self) -> None:
        """Read what is new now, in this thread (after ``stop()``, or to be sure that what
        a finished run wrote is shown before reading it from Python)."""
        if self.following:
            raise RuntimeError("refresh() reads in this thread: call stop() first")
        self._read()

    def stop(self) -> None:
        """Stop reading (the dashboard keeps what it shows); idempotent."""
        if hasattr(self, "_loop"):  # (not when the constructor raised)
            self._loop.stop()

    def close(self) -> None:
        """Stop reading and close the widgets."""
        self.stop()
        for part in (getattr(self, n, None) for n in ("view", "confusion", "graph")):
            if part is not None:
                part.close()
        super().close()

    def _read(self) -> bool:
        """Read and show what is new; False when following must end (said in the status)."""
        try:
            new = self.run.update()
            confusion_changed = self.recorded_confusion.update()
        except (RunFormatError, OSError) as exc:
            self.status.value = f"stopped following: {exc}"
            return False
        has_monitor = self.run.meta is not None
        has_confusion = self.recorded_confusion.classes is not None
        if not (has_monitor or has_confusion):
            if not self._tensorboard and is_tensorboard_run(self.path):  # event files came
                self._tensorboard = True
                self.run = self.view.source = open_run(self.path)
                return self._read()
            where = "does not exist yet" if not self.path.exists() else "has no records yet"
            if find_runs(self.path):
                where += f": it holds runs, shown with nbviz.follow({str(self.path)!r}, many=True)"
            self.status.value = f"waiting: {self.path} {where}"
            return True
        if not self.path.exists():
            self.status.value = f"stopped following: {self.path} was deleted"
            return False
        parts = [f"{self.run.steps:,} steps"] if has_monitor else []
        if has_confusion:
            rec = self.recorded_confusion
            parts.append(f"confusion matrix: epoch {len(rec.history) + (1 if rec.open else 0)}")
        self.status.value = f"following {self.path}: {', '.join(parts)}"
        if has_monitor:
            self.curves.layout.display = self.view.layout.display = None
            if new or self.view.pending:
                self.view.mark_changed()
            self._show_graph(bool(new))
        if has_confusion:
            self._show_confusion(confusion_changed)
        return True

    def _show_graph(self, changed: bool) -> None:
        """The run's layer graph (if it recorded one), coloured by the latest gradient norm
        of each layer."""
        recorded = getattr(self.run, "graph", None)  # (a TensorBoard run has none)
        if recorded is None:
            return
        if self.graph is None:
            self.graph = ModelGraph(graph=Graph.from_dict(recorded), max_rate=self._max_rate)
            at = self.children.index(self.view) + 1
            self.children = (*self.children[:at], self.graph, *self.children[at:])
            changed = True
        norms = self.run.latest.get("grad_norm")
        if changed and norms is not None:
            values = module_norms(self.run.meta["layers"], norms.tolist())
            paths = self.graph.traced.modules
            self.graph.overlay(
                {k: v for k, v in values.items() if k in paths}, label="gradient norm (latest)"
            )
        elif self.graph.pending:
            self.graph.mark_changed()

    def _show_confusion(self, changed: bool) -> None:
        rec = self.recorded_confusion
        if self.confusion is None:
            self.confusion = ConfusionMatrix(
                classes=rec.classes, max_rate=self._max_rate, end_of_cell_flush=False
            )
            self.children = (*self.children, self.confusion)
            changed = True
        if changed:
            # The examples only when a new record came: reloading the same ones would give
            # them new ids, and drop their maps.
            new = rec.examples_read != self._examples_shown
            self._examples_shown = rec.examples_read
            examples = rec.examples if new else None
            self.confusion.show_recorded(rec.history, rec.current, rec.open, examples)
        elif self.confusion.pending:
            self.confusion.mark_changed()


def module_norms(layers: list[str], norms: list[float]) -> dict[str, float]:
    """The gradient norm of every module from those of the layers (each module's parameters
    are its layers' together: the square root of their squares' sum), so a folded box of
    the graph is coloured too. A DDP-wrapped model's "module." prefix is dropped.

    >>> module_norms(["a.x", "a.y", "b"], [3.0, 4.0, 1.0])
    {'a': 5.0, 'a.x': 3.0, 'a.y': 4.0, 'b': 1.0}
    """
    squares: dict[str, float] = {}
    for layer, norm in zip(layers, norms, strict=True):
        parts = layer.removeprefix("module.").split(".")
        for i in range(1, len(parts) + 1):
            path = ".".join(parts[:i])
            squares[path] = squares.get(path, 0.0) + norm * norm
    return {path: math.sqrt(sq) for path, sq in sorted(squares.items())}


def follow(
    path: str | os.PathLike,
    *,
    many: bool | None = None,
    title: str = "",
    interval: float = 0.5,
    max_rate: float = 2.0,
    layout: Any = None,
) -> Follower | FolderFollower:
    """Show a run that ``nbviz.watch(..., logdir=path)`` records, live, from any process;
    or every run of a folder of runs, side by side.

    >>> import nbviz
    >>> view = nbviz.follow("runs/exp1")  # doctest: +SKIP
    >>> sweep = nbviz.follow("runs")  # every run under runs/  # doctest: +SKIP

    A run is a directory of nbviz's records or of TensorBoard's event files. ``many``: show
    ``path`` as a folder of runs (default: when it holds runs in subfolders and no records
    of its own; pass True for a folder whose runs have not started yet). ``interval``:
    seconds between reads (in a background thread: the kernel stays free); ``max_rate``:
    pushes to the browser per second at most. A path that does not exist yet is waited
    for. ``view.stop()`` ends the reading.
    """
    if many is None:
        many = run_path(path).is_dir() and not is_run(path) and bool(find_runs(path))
    kind = FolderFollower if many else Follower
    return kind(path, title=title, interval=interval, max_rate=max_rate, layout=layout)


__all__ = ["STREAM", "FolderFollower", "Follower", "follow"]
