"""A folder of runs: every run under it found and read for its scalars alone.

A *run* is a directory that holds run files itself: nbviz's segments (``*.nbrun``) or
TensorBoard's event files (``events.out.tfevents.*``). `RunFolder` finds the runs under a
root (a sweep's ``runs/lr=0.1/seed=1`` too, a few levels deep), including ones created
later, and reads only their scalars, steps and NaN/Inf events: what an overview of
hundreds of runs draws. `decimate` shrinks a long curve to the points a chart can show.

>>> import tempfile, nbviz
>>> folder = RunFolder(tempfile.mkdtemp())
>>> folder.update(), folder.names()
(set(), [])
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .format import RunFormatError
from .tensorboard import TensorBoardRun, is_tensorboard_run

_RUN_FILE = re.compile(r"^[a-z][a-z0-9_]*-\d+\.nbrun$|^events\.out\.tfevents\.")
MAX_DEPTH = 4  # how deep under the root runs are looked for


def run_path(path: Any) -> Path:
    """``path`` as a Path, checked: a directory to follow (that may not exist yet)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a run directory (str or Path), got {type(path).__name__}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; nbviz.follow needs a run directory")
    return path


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory that holds run files itself."""
    try:
        with os.scandir(path) as entries:
            return any(e.is_file() and _RUN_FILE.match(e.name) for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def find_runs(root: str | os.PathLike) -> list[str]:
    """The runs under ``root`` (not ``root`` itself), as paths relative to it with "/",
    in natural order ("run2" before "run10"); hidden folders are passed over."""
    found: list[str] = []

    def visit(path: str, rel: str, depth: int) -> None:
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        if rel and any(e.is_file() and _RUN_FILE.match(e.name) for e in entries):
            found.append(rel)
            return
        if depth == MAX_DEPTH:
            return
        for e in entries:
            if e.is_dir() and not e.name.startswith("."):
                visit(e.path, f"{rel}/{e.name}" if rel else e.name, depth + 1)

    visit(os.fspath(root), "", 0)
    return sorted(found, key=natural_key)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders the numbers inside names by value ("lr2" < "lr10", "lr0.03" <
    "lr0.1"); names equal by value ("lr0.1", "lr0.10") in their plain order."""
    parts = re.split(r"(\d+(?:\.\d+)?)", name)  # text, number, text, ...: types alternate
    return [*(float(t) if i % 2 else t.lower() for i, t in enumerate(parts)), name]


def open_run(path: Path, *, scalars_only: bool = False) -> Any:
    """The reader of one run: `RecordedRun` for nbviz's records, `TensorBoardRun` for a
    TensorBoard directory (``scalars_only``: the rest is passed over unread)."""
    if is_tensorboard_run(path):
        return TensorBoardRun(path, histograms=not scalars_only)
    from ..monitor.runlog import RecordedRun

    return RecordedRun(path, scalars_only=scalars_only)


class FolderRun:
    """One run of a folder: its scalars, steps and first NaN/Inf as read so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = "tensorboard" if is_tensorboard_run(path) else "nbviz"
        self.source = open_run(path, scalars_only=True)
        self.version = 0  # bumped when what an overview shows of this run changed
        self.error: str | None = None  # why reading it stopped, if it did
        self.scalars: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.val: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.steps = 0
        self.nonfinite: dict[str, Any] | None = None

    def update(self) -> bool:
        """Read what is new; whether anything changed. A damaged run stops being read and
        says why in ``error``; the folder's other runs go on."""
        if self.error is not None:
            return False
        try:
            if not self.source.update():
                return False
        except (RunFormatError, OSError) as exc:
            self.error = str(exc)
            self.version += 1
            return True
        snap = self.source.snapshot()
        self.scalars, self.val = snap["scalars"], snap["val"]
        self.steps, self.nonfinite = snap["steps"], snap["nonfinite"]
        self.version += 1
        return True


class RunFolder:
    """The runs under ``root``, found again and read incrementally at each ``update()``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.runs: dict[str, FolderRun] = {}
        self.lock = threading.Lock()  # update() in a reading thread, reads in the kernel's

    def names(self) -> list[str]:
        """The runs found so far, in natural order."""
        with self.lock:
            return list(self.runs)

    def update(self) -> set[str]:
        """Find runs created or deleted since the last call and read what is new in each;
        the names of the runs that changed (deleted ones included)."""
        found = find_runs(self.root)
        changed: set[str] = set()
        new = {name: self.runs.get(name) for name in found}
        for name, run in new.items():
            if run is None:
                new[name] = run = FolderRun(self.root / name)
                changed.add(name)
            if run.update():
                changed.add(name)
        changed |= set(self.runs) - set(new)
        with self.lock:
            self.runs = new
        return changed


def decimate(steps: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` points of a curve: equal runs of consecutive points, each shown by
    its last step and its mean value. A run that holds a NaN or Inf shows as NaN (a gap in
    the line: a blow-up is never averaged away).

    >>> decimate(np.arange(6), np.array([1.0, 3, 5, 7, 9, 11]), 3)
    (array([1, 3, 5]), array([ 2.,  6., 10.]))
    """
    n = len(steps)
    if n <= points:
        return steps, values
    edges = np.linspace(0, n, points + 1).astype(np.int64)
    sums = np.add.reduceat(values, edges[:-1])  # a non-finite value makes its run's sum one
    means = sums / np.diff(edges)
    return steps[edges[1:] - 1], np.where(np.isfinite(means), means, np.nan)
