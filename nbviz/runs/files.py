"""Writing and reading the segments of a run directory (see `format`).

`SegmentWriter` owns one new segment: the training thread only queues records, and a
background thread encodes and appends them, whole, with one ``write`` per flush.
`RunReader` reads every segment of a directory incrementally, from any process, with no
lock: what it has read stays read, and a record still being written (or torn by a
writer that was killed) waits, unread, at the end of its segment.
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import threading
from pathlib import Path

from .format import (
    FILE_HEADER,
    Record,
    RunFormatError,
    check_file_header,
    encode,
    file_header,
    scan,
)

SUFFIX = ".nbrun"
LATEST = ".nbrec"  # a file holding one record, replaced whole (see SegmentWriter.replace)
_NAME = re.compile(r"^(?P<stream>[a-z][a-z0-9_]*)-(?P<session>\d+)" + re.escape(SUFFIX) + "$")


class _Roll:
    """In a writer's queue: end the segment here and go on in a new one (see `roll`)."""

    def __init__(self, records: tuple[Record, ...]) -> None:
        self.records = records


class SegmentWriter:
    """Appends records to a new segment ``<stream>-<n>.nbrun`` in ``directory``.

    Each writer starts its own segment (``n`` one above the highest there), so a run
    resumed after a crash never appends behind a torn record. ``append`` queues;
    ``flush`` writes what is queued (a background thread calls it every ``interval``
    seconds); ``close`` writes the rest and stops the thread. A killed writer loses only
    what was queued since its last completed flush. ``roll`` keeps a long run bounded.
    """

    def __init__(self, directory: str | os.PathLike, stream: str, interval: float = 1.0):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", stream):
            raise ValueError(f"stream must be a lowercase name like 'monitor', got {stream!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stream = stream
        self._queue: collections.deque[Record | _Roll] = collections.deque()
        self._latest: dict[str, Record] = {}  # name -> the record to put in place next
        self.rolling = False  # a roll is queued and not yet done
        self._lock = threading.Lock()  # one flush at a time
        self._fd = self._create()
        self.size = FILE_HEADER.size  # bytes written to the segment so far
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name=f"nbviz-writer-{stream}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)  # a script that ends without close() loses nothing queued

    def _create(self) -> int:
        for _ in range(100):  # another writer may take the same number first
            taken = [
                int(m["session"])
                for p in self.directory.iterdir()
                if (m := _NAME.match(p.name)) and m["stream"] == self.stream
            ]
            n = max(taken, default=0) + 1
            self.path = self.directory / f"{self.stream}-{n:05d}{SUFFIX}"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            _write_all(fd, file_header())
            return fd
        raise OSError(f"could not create a new segment for {self.stream!r} in {self.directory}")

    def append(self, record: Record) -> None:
        """Queue a record (its arrays must not change afterwards)."""
        if self._fd < 0:
            raise ValueError(f"{self.path} is closed")
        self._queue.append(record)

    def roll(self, *records: Record) -> None:
        """Queue the end of this segment: the next flush writes what was queued before,
        starts a new segment with ``records`` (a checkpoint of everything so far), and only
        then deletes this one. The file work happens in the background thread."""
        if self._fd < 0:
            raise ValueError(f"{self.path} is closed")
        self.rolling = True
        self._queue.append(_Roll(records))

    def replace(self, name: str, record: Record) -> None:
        """Queue a record that replaces the last one given under ``name``: only the latest
        is kept (in ``<stream>-<name>.nbrec``), so data that is only ever shown as its
        latest state (the probe's feature maps) does not grow the run."""
        if self._fd < 0:
            raise ValueError(f"{self.path} is closed")
        self._latest[name] = record

    def flush(self) -> None:
        """Write every queued record now, whole, in one write; put the latest records in
        place (written aside, then renamed over the old file: a reader sees one or the
        other, whole)."""
        with self._lock:
            if self._fd < 0:
                return
            pending: list[bytes] = []
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, _Roll):
                    self._write(pending)
                    self._next_segment(item.records)
                    self.rolling = False
                    pending = []
                else:
                    pending.append(encode(item))
            self._write(pending)
            while self._latest:
                name, record = self._latest.popitem()
                target = self.directory / f"{self.stream}-{name}{LATEST}"
                aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                with open(aside, "wb") as f:
                    f.write(file_header() + encode(record))
                os.replace(aside, target)

    def _write(self, encoded: list[bytes]) -> None:
        if encoded:
            data = b"".join(encoded)
            _write_all(self._fd, data)
            self.size += len(data)

    def _next_segment(self, records: tuple[Record, ...]) -> None:
        """Go on in a new segment that starts with ``records``; delete the old one once the
        new one is written (a reader always finds one or the other, whole)."""
        old_fd, old_path = self._fd, self.path
        self._fd, self.size = self._create(), FILE_HEADER.size
        self._write([encode(r) for r in records])
        os.close(old_fd)
        old_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write what is queued, stop the background thread and close the file."""
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    @property
    def closed(self) -> bool:
        """Whether `close` ran."""
        return self._fd < 0

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RunReader:
    """Reads the records of one stream of a run directory as they are written.

    >>> import tempfile
    >>> from nbviz.runs.format import Record
    >>> d = tempfile.mkdtemp()
    >>> w = SegmentWriter(d, "demo")
    >>> w.append(Record("hello", {"step": 1})); w.flush()
    >>> [r.meta for r in RunReader(d, "demo").read()]
    [{'step': 1}]
    >>> w.close()
    """

    def __init__(self, directory: str | os.PathLike, stream: str):
        self.directory = Path(directory)
        self.stream = stream
        self._done: dict[str, int] = {}  # segment name -> bytes read (whole records)
        self._seen: dict[str, tuple[int, int]] = {}  # latest name -> (mtime_ns, size) read

    def segments(self) -> list[Path]:
        """This stream's segments, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(m["session"]), p)
            for p in self.directory.iterdir()
            if (m := _NAME.match(p.name)) and m["stream"] == self.stream
        ]
        return [p for _, p in sorted(found)]

    def latest(self, name: str) -> Record | None:
        """The record last put in place under ``name`` if it changed since the last call,
        else None."""
        path = self.directory / f"{self.stream}-{name}{LATEST}"
        try:
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                if self._seen.get(name) == (stat.st_mtime_ns, stat.st_size):
                    return None
                data = f.read()
        except FileNotFoundError:
            return None
        check_file_header(data[: FILE_HEADER.size], str(path))
        found = next(scan(data, FILE_HEADER.size), None)
        if found is None:
            raise RunFormatError(f"{path} holds no whole record")
        self._seen[name] = (stat.st_mtime_ns, stat.st_size)
        return found[0]

    def read(self, kinds: frozenset[str] | None = None) -> list[Record]:
        """The records written since the last call, segment by segment (with ``kinds``, only
        records of those kinds; the others are passed over unread)."""
        out: list[Record] = []
        for path in self.segments():
            start = self._done.get(path.name, 0)
            try:
                f = open(path, "rb")  # noqa: SIM115 (closed below, whatever happens)
            except FileNotFoundError:  # removed by its writer after a checkpoint
                self._done.pop(path.name, None)
                continue
            with f:
                if os.fstat(f.fileno()).st_size < start:
                    raise RunFormatError(
                        f"{path} is shorter than the {start} bytes already read from it: the "
                        "run was truncated or replaced while it was read"
                    )
                if start == 0:
                    head = f.read(FILE_HEADER.size)
                    if len(head) < FILE_HEADER.size:
                        continue  # just created: its header is not there yet
                    check_file_header(head, str(path))
                    start = FILE_HEADER.size
                else:
                    f.seek(start)
                data = f.read()
            end = 0
            for record, after in scan(data, 0, kinds):
                if record is not None:
                    out.append(record)
                end = after
            self._done[path.name] = start + end
        return out
