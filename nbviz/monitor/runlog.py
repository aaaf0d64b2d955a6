"""The training monitor in a run directory: what a recorder writes, and a run read back.

`MonitorLog` is what ``watch(..., logdir=...)`` attaches to a `TrainingRecorder`: the
recorder's histories hand it each row as it is added (before any merging), and every
``interval`` seconds the training thread queues what is new as records of the stream
``monitor``; a background thread writes them (`nbviz.runs.files.SegmentWriter`).

`RecordedRun` replays those records into the same bounded histories, so its
``snapshot()`` equals the recorder's at the last write, merged rows and all, and the
dashboard's panels draw either one. Record kinds (``docs/run-format.md``):

- ``meta``: the layers, ReLUs, histogram and feature layers, capacity, bins; the probe's
  thumbnails if it holds images (first in every segment);
- ``scalars``: new points of one training (``series="scalars"``) or validation
  (``series="val"``) scalar: ``steps`` int64, ``values`` float64;
- ``rows``: new rows of one history (``grad_norm``, ``grad_max``, ``ratio``, ``dead``):
  ``steps`` int64 (n,), ``rows`` float64 (n, width);
- ``hist``: new rows of one histogram (``layer``, ``kind``): ``steps``, ``radius`` (the
  range each row was binned over), ``rows`` (fractions);
- ``features``: the probe's latest maps, one uint8 array per layer, at ``step`` (in
  ``monitor-features.nbrec``, replaced whole each time: only the latest is kept);
- ``graph``: the model's layer graph, once, as `nbviz.Graph.to_dict` (in
  ``monitor-graph.nbrec``): a follower draws it coloured by the latest gradient norms;
- ``nonfinite``: where the first non-finite value began (with ``rank`` in a distributed
  job, where every rank writes its own; rank 0 alone writes the rest);
- ``progress``: the number of steps recorded so far;
- ``checkpoint``: everything above at once, bounded (merged histories as they are, every
  scalar point): when a segment passes ``MonitorLog.roll_bytes``, the log starts a new
  segment with one and deletes the segments it wrote before, so a run's files stay
  bounded however long it trains.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runs.files import RunReader, SegmentWriter
from ..runs.format import Record
from .histograms import ValueHistograms
from .history import RowHistory
from .nonfinite import nonfinite_order

if TYPE_CHECKING:
    from .core import TrainingRecorder

STREAM = "monitor"
SCALAR_KINDS = frozenset({"meta", "scalars", "progress", "nonfinite", "checkpoint"})
FLOW = ("grad_norm", "grad_max", "ratio", "dead")
PARTS = ("rows", "spans", "acc")  # a RowHistory's arrays in a checkpoint


class MonitorLog:
    """Writes a recorder's records to ``logdir`` (see the module docstring)."""

    roll_bytes = 16 << 20  # a segment this large is replaced by a checkpoint (see _roll)

    def __init__(
        self,
        recorder: TrainingRecorder,
        logdir: Any,
        interval: float = 1.0,
        *,
        events_only: bool = False,
    ) -> None:
        self.writer = SegmentWriter(logdir, STREAM, interval=interval)
        self.events_only = events_only  # another rank than 0: where a NaN/Inf began, only
        self.interval = interval
        self._last = time.monotonic()
        self._meta_written = False
        self._rows: dict[str, list[tuple[int, np.ndarray]]] = {n: [] for n in FLOW}
        self._hist: dict[tuple[str, str], list[tuple[int, float, np.ndarray]]] = {}
        self._points: dict[tuple[str, str], int] = {}  # (series, name) -> points written
        self._features_step: int | None = None
        self._nonfinite_written = False
        if events_only:
            return
        for name in FLOW:
            getattr(recorder, name).on_add = lambda step, row, name=name: self._rows[name].append(
                (step, row.copy())
            )
        recorder.histograms.on_add = lambda key, step, radius, fr: self._hist.setdefault(
            key, []
        ).append((step, radius, np.asarray(fr, dtype=np.float64)))

    def graph(self, graph: Any) -> None:
        """Record the model's layer graph (an `nbviz.Graph`), once."""
        self.writer.replace("graph", Record("graph", graph.to_dict()))

    def due(self) -> bool:
        """Whether ``interval`` seconds passed since the last write (checked every step)."""
        return time.monotonic() - self._last >= self.interval

    def write(self, recorder: TrainingRecorder) -> None:
        """Queue everything new (the recorder has read its pending values to the CPU)."""
        self._last = time.monotonic()
        append = self.writer.append
        if recorder.nonfinite is not None and not self._nonfinite_written:
            self._nonfinite_written = True
            append(Record("nonfinite", _plain(recorder.nonfinite)))
        if self.events_only:
            return
        if not self._meta_written:
            self._meta_written = True
            append(self._meta(recorder))
        for series, points_by_name in (("scalars", recorder.scalars), ("val", recorder.val)):
            for name, points in points_by_name.items():
                done = self._points.get((series, name), 0)
                new = points[done:]
                if not new:
                    continue
                self._points[(series, name)] = len(points)
                steps = np.array([s for s, _ in new], dtype=np.int64)
                values = np.array([float(v) for _, v in new], dtype=np.float64)
                append(
                    Record(
                        "scalars",
                        {"series": series, "name": name},
                        {"steps": steps, "values": values},
                    )
                )
        for name, rows in self._rows.items():
            if rows:
                steps = np.array([s for s, _ in rows], dtype=np.int64)
                append(
                    Record(
                        "rows",
                        {"name": name},
                        {"steps": steps, "rows": np.stack([r for _, r in rows])},
                    )
                )
                rows.clear()
        for (layer, kind), rows in self._hist.items():
            if rows:
                append(
                    Record(
                        "hist",
                        {"layer": layer, "kind": kind},
                        {
                            "steps": np.array([s for s, _, _ in rows], dtype=np.int64),
                            "radius": np.array([r for _, r, _ in rows], dtype=np.float64),
                            "rows": np.stack([f for _, _, f in rows]),
                        },
                    )
                )
                rows.clear()
        if recorder.features_step is not None and recorder.features_step != self._features_step:
            self._features_step = recorder.features_step
            self.writer.replace(
                "features",
                Record("features", {"step": recorder.features_step}, dict(recorder.features)),
            )
        append(Record("progress", {"steps": recorder.steps}))
        if self.writer.size >= self.roll_bytes and not self.writer.rolling:
            self._roll(recorder)

    def _meta(self, recorder: TrainingRecorder) -> Record:
        probe = recorder.feature_probe.thumbnails()
        return Record(
            "meta",
            {
                "layers": list(recorder.layers),
                "relus": list(recorder.relu_names),
                "hist_layers": list(recorder.hist_layers),
                "feature_layers": list(recorder.feature_layers),
                "capacity": recorder.capacity,
                "bins": recorder.histograms.bins,
            },
            {} if probe is None else {"probe": probe},
        )

    def _roll(self, recorder: TrainingRecorder) -> None:
        """Keep the run bounded: the writer goes on in a new segment that starts with a
        checkpoint of the recorder's (bounded) state and deletes the old one (in its
        thread). A reader that meets a checkpoint takes its state as it is; one that starts
        later reads no more than the checkpoint and what followed it."""
        self.writer.roll(self._meta(recorder), checkpoint(recorder))

    def close(self) -> None:
        """Write what is queued and close the segment."""
        self.writer.close()


def checkpoint(recorder: TrainingRecorder) -> Record:
    """A record of everything the recorder holds that a snapshot shows, bounded: merged
    histories as they are (with their partly filled rows), histograms with their ranges,
    every scalar point, the latest values."""
    meta: dict[str, Any] = {
        "steps": recorder.steps,
        "latest_max_step": recorder.latest_max_step,
        "nonfinite": _plain(recorder.nonfinite),
        "flow": {},
        "hist": [],
        "series": [],
    }
    arrays: dict[str, np.ndarray] = {}
    for name in FLOW:
        ints, parts = getattr(recorder, name).state()
        meta["flow"][name] = ints
        arrays.update({f"flow/{name}/{k}": v for k, v in parts.items()})
    for i, ((layer, kind), (bins, rows)) in enumerate(recorder.histograms.rows.items()):
        if rows is None:
            continue
        ints, parts = rows.state()
        meta["hist"].append({"layer": layer, "kind": kind, "radius": bins.radius, **ints})
        arrays.update({f"hist/{i}/{k}": v for k, v in parts.items()})
    for series, points_by_name in (("scalars", recorder.scalars), ("val", recorder.val)):
        for i, (name, points) in enumerate(points_by_name.items()):
            meta["series"].append({"series": series, "name": name, "at": f"{series}/{i}"})
            steps = np.array([s for s, _ in points], dtype=np.int64)
            values = np.array([float(v) for _, v in points])
            arrays[f"{series}/{i}/steps"] = _narrow(steps, np.int32)
            arrays[f"{series}/{i}/values"] = _narrow(values, np.float32)
    for name, row in recorder.latest.items():
        arrays[f"latest/{name}"] = np.asarray(row, dtype=np.float64)
    return Record("checkpoint", meta, arrays)


def _narrow(a: np.ndarray, dtype: Any) -> np.ndarray:
    """``a`` in the narrower ``dtype`` when that loses nothing (a float32 loss, steps below
    2**31): half the bytes of a checkpoint's scalars, read back equal."""
    narrow = a.astype(dtype)
    return narrow if np.array_equal(narrow.astype(a.dtype), a) else a


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class RecordedRun:
    """A monitor's run read back from its directory; ``update()`` reads what is new.

    ``snapshot()`` has the shape of `TrainingRecorder.snapshot`, and ``versions`` counts
    changes per part as the recorder's does, so the dashboard's panels draw it as they
    draw a live recorder.
    """

    def __init__(self, logdir: Any, *, scalars_only: bool = False) -> None:
        self.reader = RunReader(logdir, STREAM)
        # Only the scalars, the steps and where a NaN/Inf began (a folder of many runs
        # shows their curves): the other records are passed over unread.
        self._kinds = SCALAR_KINDS if scalars_only else None
        self.lock = threading.Lock()  # replay and snapshot() from different threads
        self.meta: dict[str, Any] | None = None
        self.probe: np.ndarray | None = None
        self.steps = 0
        self.scalars: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # (series, name) -> points read and not yet joined to their series (one join per
        # read, not one concatenation per record: a run holds thousands of records)
        self._points: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        self.val: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.flow: dict[str, RowHistory] = {}
        self.latest: dict[str, np.ndarray] = {}
        self.latest_max_step: int | None = None
        self.histograms: ValueHistograms | None = None
        self.features: dict[str, np.ndarray] = {}
        self.features_step: int | None = None
        self.nonfinite: dict[str, Any] | None = None
        self.graph: dict[str, Any] | None = None  # the model's layer graph, if recorded
        self.versions = {"scalars": 0, "flow": 0, "hist": 0, "features": 0}

    def update(self) -> int:
        """Read and replay the records written since the last call; how many there were."""
        records = self.reader.read(self._kinds)
        if self._kinds is None:
            records += filter(None, (self.reader.latest(n) for n in ("features", "graph")))
        with self.lock:
            for r in records:
                self._replay(r)
            self._join()
        return len(records)

    def _join(self) -> None:
        for (kind, name), chunks in self._points.items():
            series = self.scalars if kind == "scalars" else self.val
            steps, values = series.get(name, (np.zeros(0, np.int64), np.zeros(0)))
            series[name] = (
                np.concatenate([steps, *(s for s, _ in chunks)]),
                np.concatenate([values, *(v for _, v in chunks)]),
            )
        self._points = {}

    def _replay(self, r: Record) -> None:
        if r.kind == "meta":
            if self.meta is None:
                self.meta = r.meta
                capacity, width = r.meta["capacity"], len(r.meta["layers"])
                self.flow = {
                    "grad_norm": RowHistory(width, capacity),
                    "grad_max": RowHistory(width, capacity, reduce="max"),
                    "ratio": RowHistory(width, capacity),
                    "dead": RowHistory(len(r.meta["relus"]), capacity),
                }
                self.histograms = ValueHistograms(r.meta["bins"], capacity)
            self.probe = r.arrays.get("probe", self.probe)
        elif r.kind == "scalars":  # joined to the series when read (see _join)
            key = (r.meta["series"], r.meta["name"])
            self._points.setdefault(key, []).append((r.arrays["steps"], r.arrays["values"]))
            self.versions["scalars"] += 1
        elif r.kind == "rows" and r.meta["name"] in self.flow:
            history = self.flow[r.meta["name"]]
            for step, row in zip(r.arrays["steps"].tolist(), r.arrays["rows"], strict=True):
                history.add(step, row)
            self.latest[r.meta["name"]] = r.arrays["rows"][-1]
            if r.meta["name"] == "grad_max":
                self.latest_max_step = int(r.arrays["steps"][-1])
            self.versions["flow"] += 1
        elif r.kind == "hist" and self.histograms is not None:
            key = (r.meta["layer"], r.meta["kind"])
            for step, radius, row in zip(
                r.arrays["steps"].tolist(),
                r.arrays["radius"].tolist(),
                r.arrays["rows"],
                strict=True,
            ):
                self.histograms.replay(key, step, radius, row)
            self.versions["hist"] += 1
        elif r.kind == "features":
            self.features, self.features_step = dict(r.arrays), int(r.meta["step"])
            self.versions["features"] += 1
        elif r.kind == "graph":
            self.graph = r.meta
        elif r.kind == "nonfinite":  # the earliest, of whichever rank saw it
            if self.nonfinite is None or nonfinite_order(r.meta) < nonfinite_order(self.nonfinite):
                self.nonfinite = r.meta
        elif r.kind == "progress":
            self.steps = int(r.meta["steps"])
        elif r.kind == "checkpoint" and self.meta is not None:
            self._load(r)

    def _load(self, r: Record) -> None:
        """Take a checkpoint's state as it is (what came before it is in it)."""
        meta, arrays = r.meta, r.arrays
        if self._kinds is None:
            for name, ints in meta["flow"].items():
                self.flow[name].load(ints, {k: arrays[f"flow/{name}/{k}"] for k in PARTS})
            self.histograms = ValueHistograms(self.meta["bins"], self.meta["capacity"])
            for i, h in enumerate(meta["hist"]):
                key = (h["layer"], h["kind"])
                parts = {k: arrays[f"hist/{i}/{k}"] for k in PARTS}
                self.histograms.replay_state(key, h["radius"], h, parts)
        self.scalars, self.val, self._points = {}, {}, {}
        for s in meta["series"]:
            series = self.scalars if s["series"] == "scalars" else self.val
            steps, values = arrays[f"{s['at']}/steps"], arrays[f"{s['at']}/values"]
            series[s["name"]] = (steps.astype(np.int64), values.astype(np.float64))
        if self._kinds is None:
            self.latest = {k[7:]: v for k, v in arrays.items() if k.startswith("latest/")}
            self.latest_max_step = meta["latest_max_step"]
        self.steps = int(meta["steps"])
        bad = meta["nonfinite"]
        if bad is not None and (
            self.nonfinite is None or nonfinite_order(bad) < nonfinite_order(self.nonfinite)
        ):
            self.nonfinite = bad
        for part in self.versions:
            self.versions[part] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything read so far, shaped as `TrainingRecorder.snapshot`."""
        with self.lock:
            meta = self.meta or {"layers": [], "relus": [], "hist_layers": []}
            empty = RowHistory(1, 2)
            flow = {n: self.flow.get(n, empty) for n in FLOW}
            hist = self.histograms.snapshot() if self.histograms is not None else {}
            strides = self.histograms.strides() if self.histograms is not None else {}
            return {
                "steps": self.steps,
                "layers": list(meta["layers"]),
                "relus": list(meta["relus"]),
                "scalars": {k: (s.copy(), v.copy()) for k, (s, v) in self.scalars.items()},
                "val": {k: (s.copy(), v.copy()) for k, (s, v) in self.val.items()},
                **{n: (h.rows(), h.steps()) for n, h in flow.items()},
                "strides": {n: h.stride for n, h in flow.items()},
                "latest": dict(self.latest),
                "grad_max_step": self.latest_max_step,
                "histograms": hist,
                "hist_strides": strides,
                "hist_layers": list(meta["hist_layers"]),
                "features": dict(self.features),
                "features_step": self.features_step,
                "nonfinite": self.nonfinite,
            }

    def probe_images(self) -> np.ndarray | None:
        """The probe's thumbnails (N, h, w, 3) uint8, if the run recorded images."""
        return self.probe
