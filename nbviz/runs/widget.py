"""Many runs side by side: ``nbviz.follow`` on a folder of runs.

`RunsOverview` is the anywidget half: the list of runs (picked and filtered by name in
the browser) and one chart per scalar with the picked runs' curves overlaid
(``js/src/runs.js``). Curves travel decimated (`folder.decimate`), so hundreds of runs
of any length cost the browser a few hundred points each. `FolderFollower` reads the
folder in a background thread, as `follow.Follower` reads one run, and opens a run's
whole dashboard (gradient flow, histograms, confusion matrix) below the overview when
the browser asks for it: the kernel is free to answer while runs are followed.
"""

from __future__ import annotations

import os
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from .._checks import positive_seconds
from .._text import plural
from .._widget import Array, LiveWidget
from .folder import FolderRun, RunFolder, decimate, run_path
from .reading import ReadLoop

POINTS = 400  # points per curve sent to the browser, at most
AUTO_PICK = 6  # runs picked by themselves while fewer are (one per distinct colour, runs.js)


class RunsOverview(LiveWidget):
    """The runs of a folder: their list and their curves, overlaid (see the module)."""

    _bundle = "runs"

    runs = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{name, kind, steps, note}]
    # Every curve back to back, in two arrays (one message part each, however many runs):
    # curve_index rows are [run, "train:<name>" or "val:<name>", start, length].
    curve_steps = Array()
    curve_values = Array()
    curve_index = traitlets.List().tag(sync=True)
    scalars = traitlets.List(traitlets.Unicode()).tag(sync=True)  # chart names, first seen first
    picked = traitlets.List(traitlets.Unicode()).tag(sync=True)  # the browser picks too
    opened = traitlets.List(traitlets.Unicode()).tag(sync=True)  # whole dashboards asked for

    def __init__(self, folder: RunFolder, title: str, max_rate: float) -> None:
        self._folder = folder
        self._sent: dict[str, int] = {}  # run -> FolderRun.version sent
        self._curves: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self._auto_picked: set[str] = set()  # runs picked once by themselves: never again
        super().__init__(max_rate=max_rate, title=title, end_of_cell_flush=False)

    @property
    def series(self) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """``run -> "train:<name>" / "val:<name>" -> {steps, values}``: the curves as last
        sent (decimated)."""
        return self._curves

    def _push(self, final: bool) -> bool:
        with self._folder.lock:
            runs = dict(self._folder.runs)
        for name in set(self._curves) - set(runs):
            del self._curves[name]
            self._sent.pop(name, None)
        scalars = list(self.scalars)
        for name, run in runs.items():
            if self._sent.get(name) == run.version:
                continue
            self._sent[name] = run.version
            self._curves[name] = _curves(run)
            for key in self._curves[name]:
                chart = key.split(":", 1)[1]
                if chart not in scalars:
                    scalars.append(chart)
        self.runs = [_row(name, run) for name, run in runs.items()]
        index, at = [], 0
        for name, curves in self._curves.items():
            for key, c in curves.items():
                index.append([name, key, at, len(c["steps"])])
                at += len(c["steps"])
        every = [c for curves in self._curves.values() for c in curves.values()]
        self.curve_steps = np.concatenate([c["steps"] for c in every] or [np.zeros(0, np.int32)])
        self.curve_values = np.concatenate(
            [c["values"] for c in every] or [np.zeros(0, np.float32)]
        )
        self.curve_index = index
        self.scalars = scalars
        picked = [p for p in self.picked if p in runs]
        for name in runs:
            if len(picked) >= AUTO_PICK:
                break
            if name not in self._auto_picked and name not in picked:
                self._auto_picked.add(name)
                picked.append(name)
        self.picked = picked
        return False


def _curves(run: FolderRun) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for series, points in (("train", run.scalars), ("val", run.val)):
        for name, (steps, values) in points.items():
            s, v = decimate(steps, values, POINTS)
            out[f"{series}:{name}"] = {
                "steps": s.astype(np.int32),
                "values": v.astype(np.float32),
            }
    return out


def _row(name: str, run: FolderRun) -> dict[str, Any]:
    if run.error is not None:
        note = f"not read: {run.error}"
    elif run.nonfinite is not None:
        bad = run.nonfinite
        rank = f" on rank {bad['rank']}" if bad.get("rank") is not None else ""
        note = f"non-finite from step {bad.get('step')}{rank}"
    else:
        note = ""
    return {"name": name, "kind": run.kind, "steps": int(run.steps), "note": note}


class FolderFollower(ipywidgets.VBox):
    """Every run of a folder, followed; a run's whole dashboard opens on demand."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        title: str = "",
        interval: float = 0.5,
        max_rate: float = 2.0,
        layout: Any = None,
    ) -> None:
        positive_seconds("interval", interval)
        self.path = run_path(path)
        self.folder = RunFolder(self.path)
        self._interval, self._max_rate = interval, max_rate
        self.status = ipywidgets.Label("")
        self.status.add_class("nbviz-follow-status")
        self.overview = RunsOverview(self.folder, title, max_rate)
        self.details = ipywidgets.HBox(layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.opened: dict[str, Any] = {}  # run -> its Follower, in the order opened
        self.overview.observe(self._on_opened, names="opened")
        extra = {} if layout is None else {"layout": layout}
        super().__init__(children=[self.status, self.overview, self.details], **extra)
        self._read()
        self._loop = ReadLoop(self._read, self.status, interval, "nbviz-follow-folder")

    @property
    def following(self) -> bool:
        """Whether the background thread still reads the folder."""
        return hasattr(self, "_loop") and self._loop.alive

    def show(self, *names: str) -> None:
        """Show these runs' whole dashboards below the overview (as "open" in the list)."""
        unknown = [n for n in names if n not in self.folder.runs]
        if unknown:
            raise ValueError(f"no run named {unknown[0]!r} in {self.path}; runs: {self.names}")
        self.overview.opened = [*self.overview.opened, *(n for n in names if n not in self.opened)]

    @property
    def names(self) -> list[str]:
        """The runs found so far."""
        return self.folder.names()

    def refresh(self) -> None:
        """Read what is new now, in this thread (after ``stop()``)."""
        if self.following:
            raise RuntimeError("refresh() reads in this thread: call stop() first")
        self._read()
        for follower in self.opened.values():
            follower.refresh()

    def stop(self) -> None:
        """Stop reading the folder and every opened run; idempotent."""
        if hasattr(self, "_loop"):  # (not when the constructor raised)
            self._loop.stop()
        for follower in self.opened.values():
            follower.stop()

    def close(self) -> None:
        """Stop reading and close the widgets."""
        self.stop()
        for follower in self.opened.values():
            follower.close()
        self.overview.close()
        super().close()

    def _on_opened(self, change: dict[str, Any]) -> None:
        from .follow import Follower  # (follow imports this module)

        wanted = [n for n in change["new"] if n in self.folder.runs]
        for name in list(self.opened):
            if name not in wanted:
                self.opened.pop(name).close()
        for name in wanted:
            if name not in self.opened:
                self.opened[name] = Follower(
                    self.path / name,
                    title=name,
                    interval=self._interval,
                    max_rate=self._max_rate,
                    layout=ipywidgets.Layout(margin="0 24px 12px 0"),
                )
        self.details.children = [self.opened[n] for n in wanted]

    def _read(self) -> bool:
        changed = self.folder.update()
        runs = self.folder.names()
        if not runs:
            where = "does not exist yet" if not self.path.exists() else "holds no runs yet"
            self.status.value = f"waiting: {self.path} {where}"
        else:
            self.status.value = f"following {self.path}: {plural(len(runs), 'run')}"
        if changed or self.overview.pending:
            self.overview.mark_changed()
        return True
