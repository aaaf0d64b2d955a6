"""TensorBoard run directories read into the training dashboard: scalars and histograms.

`TensorBoardRun` reads the ``events.out.tfevents.*`` files that
``torch.utils.tensorboard.SummaryWriter`` (or TensorFlow, or ``tensorboardX``) writes in
one directory, and offers what `nbviz.monitor.runlog.RecordedRun` offers: a
``snapshot()`` shaped as `TrainingRecorder.snapshot`, ``versions``, ``update()``, so the
dashboard's panels (`nbviz.monitor.widget.MonitorPanels`) draw it as they draw a live
recorder. ``update()`` reads only what was appended since the last call, from every event
file of the directory, files that appear later included (a restarted writer starts a new
one); a record still being written is left for a later call.

What is read, and how it maps onto nbviz:

- **Scalars**: ``simple_value`` (``add_scalar``'s default) and tensor scalars (plugin
  ``"scalars"``, a 0-d tensor: ``add_scalar(..., new_style=True)``, TensorFlow 2). The
  tag is the curve's name; every scalar is a training curve (``snapshot()["val"]`` stays
  empty). Points come in step order per tag: a point at a step not after the tag's last
  one (a run restarted from a checkpoint) discards the tag's points from that step on
  before it is added, as TensorBoard's own reservoirs do, and a ``SessionLog.START`` (what
  ``SummaryWriter(purge_step=...)`` writes) discards every tag's points from its step on.
- **Histograms**: ``histo`` (``add_histogram``: a ``HistogramProto`` of right bucket
  edges, the first bucket starting at ``min``, every bucket clipped to ``[min, max]``)
  and tensor histograms (plugin ``"histograms"``: a k x 3 tensor of ``[left, right,
  count]`` rows, TensorFlow 2). Each becomes one row of an nbviz histogram keyed
  ``(tag, kind)``: the range is symmetric, ``[-radius, radius]``, on the doubling ladder
  of `nbviz.monitor.history.Bins` (a power of two above the largest ``|value|``, doubled
  as larger values arrive, older rows re-merged exactly); each bucket's count is spread
  over the nbviz bins it overlaps, in proportion to the overlap (uniform within a bucket;
  a bucket of zero width counts in the bin holding it); a row is fractions that sum to
  1. A histogram of no values adds no row. Histogram rows are added in the order read:
  rows of a restarted run follow the earlier ones (merged rows cannot be taken back).
- **Kind** (the dashboard's histogram panel offers weights, gradients, activations), from
  the tag, case-insensitive: ``"gradients"`` if it contains ``grad``; else
  ``"activations"`` if it contains ``activation`` or has ``act`` or ``acts`` as a word
  (``relu/act``, ``block1.acts``); else ``"weights"``.

Not read: images, audio, text, graphs, hparams, PR curves, meshes, embeddings (the
projector's files), custom-scalar layouts, run metadata; event files in subdirectories
(``add_scalars`` and ``add_hparams`` write those: each is a run of its own). Gradient
flow, dead units and feature maps have no TensorBoard counterpart: those panels stay
empty.

The files are read with this module's own TFRecord framing over TensorBoard's protos and
checksum (``tensorboard.compat``): ``tensorboard``'s ``EventFileLoader`` keeps its
position and waits on a torn last record, as this does, but it also ends silently at a
damaged record, which here raises `RunFormatError` naming the file and offset; and its
pure-Python CRC-32C (about 0.3 µs a byte) would make a scalars-only read pay for every
histogram's bytes, which here are parsed but not checksummed when they are skipped.

>>> from nbviz.runs.tensorboard import TensorBoardRun, is_tensorboard_run
>>> run = TensorBoardRun("runs/exp1")  # doctest: +SKIP
>>> run.update(); run.snapshot()["scalars"]["loss"]  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
import os
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..monitor.histograms import ValueHistograms
from ..monitor.history import Bins, RowHistory
from ..monitor.runlog import FLOW
from .format import RunFormatError

PREFIX = "events.out.tfevents."
BINS = 64  # bins per histogram, as `TrainingRecorder`'s default
CAPACITY = 256  # rows kept per histogram before older ones merge, as the recorder's
CHUNK = 16 << 20  # bytes read from a file at a time
MAX_RECORD = 1 << 31  # a longer record is a damaged length, not an event
INSTALL = "reading TensorBoard runs needs the tensorboard package: pip install 'nbviz[tensorboard]'"

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER = 12  # u64 length, u32 masked CRC-32C of the length
_FOOTER = 4  # u32 masked CRC-32C of the data
_WORD = re.compile(r"[a-z0-9]+")
_DIGITS = re.compile(r"(\d+)")
_START = 1  # SessionLog.START
_DT_FLOAT, _DT_DOUBLE = 1, 2  # TensorProto dtypes


def is_tensorboard_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding TensorBoard event files itself (event files
    in its subdirectories only do not count: those are runs of their own).

    Args:
        path: a directory (a missing path, or a file, is not a run).

    >>> import tempfile
    >>> is_tensorboard_run(tempfile.mkdtemp())
    False
    """
    try:
        with os.scandir(path) as entries:
            return any(e.name.startswith(PREFIX) and e.is_file() for e in entries)
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return False


def histogram_kind(tag: str) -> str:
    """The dashboard's kind for a histogram ``tag`` (see the module docstring).

    >>> histogram_kind("fc1.weight"), histogram_kind("fc1.weight.grad"), histogram_kind("relu/act")
    ('weights', 'gradients', 'activations')
    """
    low = tag.lower()
    if "grad" in low:
        return "gradients"
    if "activation" in low or any(w in ("act", "acts") for w in _WORD.findall(low)):
        return "activations"
    return "weights"


def _order(name: str) -> list[Any]:
    """A file name's sort key, its numbers compared as numbers: files oldest first (the
    name holds the time the writer opened it, then host, process and a counter)."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


def _modules() -> Any:
    """TensorBoard's protos, checksum and tensor decoding, imported on first use."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
        from tensorboard.util import tensor_util
    except ImportError as exc:
        raise ImportError(INSTALL) from exc
    return event_pb2, masked_crc32c, tensor_util


class _EventFile:
    """One event file read incrementally: the bytes of whole records read so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def records(self, crc: Any) -> Iterator[tuple[memoryview, int]]:
        """Yield ``(data, its checksum)`` of each whole record appended since the last call
        (``offset`` is the record's own until the next one is asked for); a torn last
        record is left for a later call. Checking the data against the checksum is the
        caller's, so that a record it skips costs no checksum."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (closed below, whatever happens)
        except FileNotFoundError:  # removed: what was read stays
            return
        with f:
            f.seek(self.offset)
            buf = b""
            while chunk := f.read(CHUNK):
                buf = buf + chunk if buf else chunk
                view, pos = memoryview(buf), 0
                while len(buf) - pos >= _HEADER:
                    if _CRC.unpack_from(view, pos + 8)[0] != crc(buf[pos : pos + 8]):
                        raise self.damaged("its length fails its checksum")
                    (length,) = _LENGTH.unpack_from(view, pos)
                    if length > MAX_RECORD:
                        raise self.damaged(f"it claims {length:,} bytes")
                    end = pos + _HEADER + length + _FOOTER
                    if end > len(buf):
                        break  # torn (still being written): the next chunk, or call
                    yield view[pos + _HEADER : end - _FOOTER], _CRC.unpack_from(view, end - 4)[0]
                    self.offset += end - pos
                    pos = end
                buf = buf[pos:]

    def damaged(self, why: str) -> RunFormatError:
        """The error for the record at ``offset``."""
        return RunFormatError(
            f"{self.path} is damaged: its TensorBoard record at byte {self.offset:,} is "
            f"unreadable ({why})"
        )


class TensorBoardRun:
    """A TensorBoard run directory read as the dashboard's source; ``update()`` reads what
    is new.

    It has what the dashboard's panels and a follower use of `RecordedRun`: ``meta``
    (None until an event with data was read), ``steps`` (the highest step seen),
    ``versions``, ``lock``, ``update()``, ``snapshot()``, ``probe_images()``. What is read
    and how it is mapped: the module docstring.

    Args:
        logdir: the directory holding ``events.out.tfevents.*`` files.
        histograms: read histograms; False skips their events unchecked (a view that needs
            only the scalars).

    Raises:
        ImportError: the ``tensorboard`` package is not installed.
        FileNotFoundError: ``logdir`` does not exist.
        NotADirectoryError: ``logdir`` is a file.

    >>> run = TensorBoardRun("runs/exp1")  # doctest: +SKIP
    >>> run.update()  # doctest: +SKIP
    20000
    """

    def __init__(self, logdir: str | os.PathLike, *, histograms: bool = True) -> None:
        self._event_pb2, self._crc, self._tensor_util = _modules()
        self.logdir = Path(logdir)
        if not self.logdir.exists():
            raise FileNotFoundError(f"{self.logdir} does not exist: no TensorBoard run there")
        if not self.logdir.is_dir():
            raise NotADirectoryError(
                f"{self.logdir} is a file; a TensorBoard run is the directory that holds "
                "the events.out.tfevents.* files"
            )
        self.read_histograms = histograms
        self.lock = threading.Lock()  # update() and snapshot() from different threads
        self.meta: dict[str, Any] | None = None
        self.steps = 0
        self.versions = {"scalars": 0, "flow": 0, "hist": 0, "features": 0}
        self._files: dict[str, _EventFile] = {}
        self._points: dict[str, tuple[list[int], list[float]]] = {}  # tag -> steps, values
        self._plugins: dict[str, str] = {}  # tag -> plugin named by its first metadata
        self._bins: dict[tuple[str, str], Bins] = {}  # (tag, kind) -> its range
        self._histograms = ValueHistograms(BINS, CAPACITY)

    def update(self) -> int:
        """Read the events appended since the last call, from every event file (new files
        too; oldest first, by the time in their names); how many scalar points and
        histogram rows they held.

        Raises:
            RunFormatError: an event file holds a damaged record (the message names it).
            FileNotFoundError: the directory was removed.
        """
        try:
            names = [e.name for e in os.scandir(self.logdir) if e.name.startswith(PREFIX)]
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.logdir} was removed") from None
        added = 0
        for name in sorted(names, key=_order):
            events = self._files.setdefault(name, _EventFile(self.logdir / name))
            added += self._read(events)
        return added

    def _read(self, events: _EventFile) -> int:
        parse, crc = self._event_pb2.Event.FromString, self._crc
        added, batch = 0, []
        try:
            for data, checksum in events.records(crc):
                try:
                    event = parse(data)
                except Exception as exc:  # protobuf's DecodeError, or worse
                    why = "its data fail their checksum" if crc(data) != checksum else str(exc)
                    raise events.damaged(why) from None
                if not self._wanted(event):
                    continue
                if crc(data) != checksum:
                    raise events.damaged("its data fail their checksum")
                batch.append(event)
                if len(batch) == 4096:
                    added += self._apply(batch)
                    batch = []
        finally:  # what came before a damaged record is shown
            added += self._apply(batch)
        return added

    def _wanted(self, event: Any) -> bool:
        """Whether an event holds anything read here (asked before its checksum is
        checked, so that the others, histograms when they are not read among them, cost
        none)."""
        if event.HasField("session_log"):
            return event.session_log.status == _START
        if not event.HasField("summary"):
            return False
        return any(self._what(value) for value in event.summary.value)

    def _what(self, value: Any) -> str:
        """What a summary value is to this reader: "scalar", "histo", "tensor_histogram",
        or "" (not read)."""
        field = value.WhichOneof("value")
        if field == "simple_value":
            return "scalar"
        if field == "histo":
            return "histo" if self.read_histograms else ""
        if field == "tensor":
            # TensorFlow 2 writes a tag's metadata with its first value only.
            plugin = value.metadata.plugin_data.plugin_name  # "" where there is none
            if plugin:
                self._plugins[value.tag] = plugin
            else:
                plugin = self._plugins.get(value.tag, "")
            if plugin == "scalars":
                return "tensor_scalar"
            if plugin == "histograms" and self.read_histograms:
                return "tensor_histogram"
        return ""

    def _apply(self, events: list[Any]) -> int:
        if not events:
            return 0
        added, scalars, hist = 0, False, False
        with self.lock:
            for event in events:
                step = int(event.step)
                if event.HasField("session_log"):
                    scalars |= self._purge(step)
                    continue
                for value in event.summary.value:
                    what = self._what(value)
                    if what == "scalar":
                        took = self._scalar(value.tag, step, float(value.simple_value))
                    elif what == "tensor_scalar":
                        took = self._scalar(value.tag, step, self._tensor_scalar(value.tensor))
                    elif what == "histo":
                        took = self._histo(value.tag, step, value.histo)
                    elif what == "tensor_histogram":
                        took = self._tensor_histogram(value.tag, step, value.tensor)
                    else:
                        continue
                    if took:
                        scalars |= what.endswith("scalar")
                        hist |= not what.endswith("scalar")
                        added += 1
                        self.steps = max(self.steps, step)
            self.versions["scalars"] += scalars
            self.versions["hist"] += hist
        return added

    def _start(self) -> dict[str, Any]:
        if self.meta is None:  # shaped as RecordedRun's, from the first event with data
            self.meta = {
                "layers": [],
                "relus": [],
                "hist_layers": [],
                "feature_layers": [],
                "capacity": CAPACITY,
                "bins": BINS,
            }
        return self.meta

    def _scalar(self, tag: str, step: int, value: float | None) -> bool:
        if value is None:
            return False
        self._start()
        steps, values = self._points.setdefault(tag, ([], []))
        if steps and step <= steps[-1]:  # a restart: its points replace the later ones
            cut = bisect.bisect_left(steps, step)
            del steps[cut:], values[cut:]
        steps.append(step)
        values.append(value)
        return True

    def _purge(self, step: int) -> bool:
        """Discard every tag's points from ``step`` on (a ``SessionLog.START``)."""
        purged = False
        for steps, values in self._points.values():
            cut = bisect.bisect_left(steps, step)
            if cut < len(steps):
                del steps[cut:], values[cut:]
                purged = True
        return purged

    def _tensor_scalar(self, tensor: Any) -> float | None:
        if tensor.dtype == _DT_FLOAT and len(tensor.float_val) == 1:  # as torch writes it
            return float(tensor.float_val[0])
        if tensor.dtype == _DT_DOUBLE and len(tensor.double_val) == 1:
            return float(tensor.double_val[0])
        try:
            a = self._tensor_util.make_ndarray(tensor)
            return float(a.reshape(-1)[0]) if a.size == 1 else None
        except (TypeError, ValueError):  # a string, or a dtype numpy lacks
            return None

    def _histo(self, tag: str, step: int, h: Any) -> bool:
        counts = np.array(h.bucket, dtype=np.float64)
        rights = np.array(h.bucket_limit, dtype=np.float64)
        if not h.num or not len(counts) or len(counts) != len(rights):
            return False
        lefts = np.concatenate([[h.min], rights[:-1]])
        if math.isfinite(h.min) and math.isfinite(h.max) and h.min <= h.max:
            # TensorFlow's last limit is DBL_MAX, torch's first bucket an empty one.
            lefts, rights = np.clip(lefts, h.min, h.max), np.clip(rights, h.min, h.max)
        return self._histogram(tag, step, lefts, rights, counts)

    def _tensor_histogram(self, tag: str, step: int, tensor: Any) -> bool:
        try:
            a = np.asarray(self._tensor_util.make_ndarray(tensor), dtype=np.float64)
        except (TypeError, ValueError):
            return False
        if a.ndim != 2 or a.shape[1] != 3:
            return False
        return self._histogram(tag, step, a[:, 0], a[:, 1], a[:, 2])

    def _histogram(
        self, tag: str, step: int, lefts: np.ndarray, rights: np.ndarray, counts: np.ndarray
    ) -> bool:
        """Add a row to ``(tag, kind)``: buckets ``[lefts, rights]`` holding ``counts``."""
        keep = np.isfinite(lefts) & np.isfinite(rights) & np.isfinite(counts) & (counts > 0)
        if not keep.any():
            return False  # no values: no row, as `ValueHistograms.fractions`
        lefts, rights, counts = lefts[keep], rights[keep], counts[keep]
        lefts, rights = np.minimum(lefts, rights), np.maximum(lefts, rights)
        key = (tag, histogram_kind(tag))
        bins = self._bins.get(key)
        if bins is None:
            bins = self._bins[key] = Bins(BINS)
            self._start()["hist_layers"].append(tag)  # one kind per tag: a new tag
        bins.fit(float(max(-lefts.min(), rights.max())))
        assert bins.radius is not None  # fit() set it: the peak is finite
        self._histograms.replay(
            key, step, bins.radius, rebin(lefts, rights, counts, bins.radius, BINS)
        )
        return True

    def snapshot(self) -> dict[str, Any]:
        """Everything read so far, shaped as `TrainingRecorder.snapshot` (the flow, feature
        and non-finite parts empty: TensorBoard has none)."""
        with self.lock:
            meta = self.meta or {"layers": [], "relus": [], "hist_layers": []}
            h = self._histograms
            empty = RowHistory(1, 2)
            return {
                "steps": self.steps,
                "layers": list(meta["layers"]),
                "relus": list(meta["relus"]),
                "scalars": {
                    tag: (np.array(s, dtype=np.int64), np.array(v, dtype=np.float64))
                    for tag, (s, v) in self._points.items()
                },
                "val": {},
                **{n: (empty.rows(), empty.steps()) for n in FLOW},
                "strides": {n: empty.stride for n in FLOW},
                "latest": {},
                "grad_max_step": None,
                "histograms": h.snapshot(),
                "hist_strides": h.strides(),
                "hist_layers": list(meta["hist_layers"]),
                "features": {},
                "features_step": None,
                "nonfinite": None,
            }

    def probe_images(self) -> None:
        """None: a TensorBoard run has no probe images for the feature-map panel."""
        return None


def rebin(
    lefts: np.ndarray, rights: np.ndarray, counts: np.ndarray, radius: float, bins: int
) -> np.ndarray:
    """Fractions over ``bins`` equal bins of ``[-radius, radius]`` of a histogram of
    buckets ``[lefts[i], rights[i]]`` holding ``counts[i]``: each count spread over the
    bins its bucket overlaps, uniformly; a bucket of zero width counts in the bin that
    holds it (bins are closed below, the last one on both sides, as ``torch.histc``).

    Args:
        lefts: each bucket's lower edge, inside ``[-radius, radius]``.
        rights: each bucket's upper edge (>= its lower edge), inside the range.
        counts: each bucket's count (>= 0, some > 0).
        radius: the half-width of the range.
        bins: how many bins.

    >>> rebin(np.array([-1.0, 0.0]), np.array([0.0, 0.5]), np.array([2.0, 2.0]), 1.0, 4).tolist()
    [0.25, 0.25, 0.5, 0.0]
    """
    edges = np.linspace(-radius, radius, bins + 1)
    width = rights - lefts
    wide = width > 0
    out = np.zeros(bins)
    if wide.any():
        lo = np.maximum(lefts[wide, None], edges[None, :-1])
        hi = np.minimum(rights[wide, None], edges[None, 1:])
        out += counts[wide] @ (np.clip(hi - lo, 0.0, None) / width[wide, None])
    if not wide.all():
        at = np.clip(np.searchsorted(edges, lefts[~wide], side="right") - 1, 0, bins - 1)
        np.add.at(out, at, counts[~wide])
    return out / out.sum()
