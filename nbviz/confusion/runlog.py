"""The confusion matrix in a run directory: what ``ConfusionMatrix(logdir=...)`` writes,
and the state read back for ``nbviz.follow``.

Records of the stream ``confusion`` (``docs/run-format.md``):

- ``meta``: the class names (first in every segment);
- ``epoch``: a closed epoch's matrix, sparse: ``index`` (flat cell, true * K + predicted)
  and ``value`` (count), int64, with its 1-based number;
- ``reset``: every closed epoch before it is forgotten;

and two records replaced whole, as only their latest state is shown: ``current`` in
``confusion-current.nbrec`` (the epoch in progress, sparse, with its number and whether
it has counts) and ``examples`` in ``confusion-examples.nbrec`` (``cells`` int64 and
``images`` uint8 ``(M, h, w, 3)``: the kept example thumbnails of that epoch; with
``keep_inputs``, also ``inputs`` (the examples as the model took them) and, where given,
``masks`` ``(M, H, W)`` bool, written when an epoch closes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..runs.files import RunReader, SegmentWriter
from ..runs.format import Record

STREAM = "confusion"


class ConfusionLog:
    """Queues a confusion matrix's records (a background thread writes them)."""

    def __init__(self, logdir: Any, classes: list[str], interval: float = 1.0) -> None:
        self.writer = SegmentWriter(logdir, STREAM, interval=interval)
        self.interval = interval
        self._last = time.monotonic()
        self._examples_written = -1  # the examples' version last written
        self.writer.append(Record("meta", {"classes": list(classes)}))

    def due(self) -> bool:
        """Whether ``interval`` seconds passed since the last write."""
        return time.monotonic() - self._last >= self.interval

    def current(self, counts: tuple[np.ndarray, np.ndarray], epoch: int, open_: bool) -> None:
        """The epoch in progress (replaces the last one written)."""
        self._last = time.monotonic()
        idx, val = counts
        meta = {"epoch": epoch, "open": open_}
        self.writer.replace("current", Record("current", meta, {"index": idx, "value": val}))

    def examples(self, version: int, arrays: Callable[[], Any]) -> None:
        """The kept examples, if they changed since the last write (``version`` counts
        changes; ``arrays`` makes them, only then: stacking every thumbnail is the cost):
        ``(cells, images)`` or a dict of the record's arrays."""
        if version != self._examples_written:
            self._examples_written = version
            made = arrays()
            if not isinstance(made, dict):
                made = {"cells": made[0], "images": made[1]}
            self.writer.replace("examples", Record("examples", {}, made))

    def epoch(self, number: int, counts: tuple[np.ndarray, np.ndarray]) -> None:
        """A closed epoch (appended: every epoch stays)."""
        idx, val = counts
        self.writer.append(Record("epoch", {"epoch": number}, {"index": idx, "value": val}))

    def reset(self) -> None:
        """Every closed epoch so far is forgotten."""
        self.writer.append(Record("reset"))

    def close(self) -> None:
        """Write what is queued and close the segment."""
        self.writer.close()


class RecordedConfusion:
    """A confusion matrix's records read back; ``update()`` reads what is new."""

    def __init__(self, logdir: Any) -> None:
        self.reader = RunReader(logdir, STREAM)
        self.classes: list[str] | None = None
        self.history: list[tuple[np.ndarray, np.ndarray]] = []
        self.current: tuple[np.ndarray, np.ndarray] | None = None
        self.open = False
        self.examples: tuple[np.ndarray, ...] | None = None  # (cells, images, inputs, masks)
        self.examples_read = 0  # how many examples records were read (a new one: +1)

    def update(self) -> bool:
        """Read what was written since the last call; whether anything changed."""
        records = self.reader.read()
        for name in ("current", "examples"):
            latest = self.reader.latest(name)
            if latest is not None:
                records.append(latest)
        for r in records:
            if r.kind == "meta":
                self.classes = list(r.meta["classes"])
            elif r.kind == "epoch":
                self.history.append((r.arrays["index"], r.arrays["value"]))
            elif r.kind == "reset":
                self.history.clear()
            elif r.kind == "current":
                self.current = (r.arrays["index"], r.arrays["value"])
                self.open = bool(r.meta["open"])
            elif r.kind == "examples":
                a = r.arrays
                self.examples = (a["cells"], a["images"], a.get("inputs"), a.get("masks"))
                self.examples_read += 1
        return bool(records)
