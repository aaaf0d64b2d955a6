"""The run format and its files: records round-trip, torn and damaged tails, versions,
readers beside a writer, and writers killed with SIGKILL at random points."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nbviz.runs import Record, RunFormatError, RunReader, SegmentWriter
from nbviz.runs.format import FILE_HEADER, VERSION, encode, file_header, scan

REPO = Path(__file__).resolve().parents[1]


def test_records_round_trip_every_dtype_and_shape():
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.array([-(2**40), 0, 2**40], dtype=np.int64),
        "u8": np.zeros((2, 0, 4), dtype=np.uint8),  # empty
        "scalar": np.array(3.5),  # 0-d
        "layer.0 / ünïcode": np.array([True, False]),
    }
    rec = Record("kind", {"step": 7, "name": "<b>text</b>", "nested": {"a": [1, 2]}}, arrays)
    data = encode(rec) + encode(Record("empty"))
    got = [r for r, _ in scan(data, 0)]
    assert [r.kind for r in got] == ["kind", "empty"]
    assert got[0].meta == rec.meta and got[1].meta == {} and got[1].arrays == {}
    for name, a in arrays.items():
        assert got[0].arrays[name].dtype == a.dtype and got[0].arrays[name].shape == a.shape
        np.testing.assert_array_equal(got[0].arrays[name], a)
    assert got[0].arrays["f32"].flags.writeable  # a copy, not a view of the file's bytes


def test_a_torn_or_damaged_tail_is_not_read_and_nothing_after_it():
    records = [Record("r", {"i": i}, {"x": np.full(i + 1, i, np.float64)}) for i in range(3)]
    data = b"".join(encode(r) for r in records)
    whole = len(data) - len(encode(records[-1]))
    for cut in range(whole, len(data)):  # every point a writer could die in the last record
        got = [r.meta["i"] for r, _ in scan(data[:cut], 0)]
        assert got == [0, 1]
    damaged = bytearray(data)
    damaged[len(encode(records[0])) + 12] ^= 0xFF  # a byte in the second payload
    assert [r.meta["i"] for r, _ in scan(bytes(damaged), 0)] == [0]
    huge = struct.pack("<II", 2**31, 0) + b"x" * 16  # a length no record has
    assert list(scan(huge, 0)) == []


def test_newer_versions_and_foreign_files_are_refused_by_name(tmp_path):
    seg = tmp_path / "monitor-00001.nbrun"
    seg.write_bytes(FILE_HEADER.pack(b"NBVZRUN\0", VERSION + 1))
    with pytest.raises(
        RunFormatError, match=rf"version {VERSION + 1}, newer than the version {VERSION}"
    ):
        RunReader(tmp_path, "monitor").read()
    seg.write_bytes(b"PK\x03\x04 not a run at all")
    with pytest.raises(RunFormatError, match="is not an nbviz run segment"):
        RunReader(tmp_path, "monitor").read()


def test_a_reader_gets_each_record_once_while_the_writer_appends(tmp_path):
    writer = SegmentWriter(tmp_path, "monitor", interval=60)  # flushes when told
    reader = RunReader(tmp_path, "monitor")
    assert reader.read() == []  # a header and nothing else yet
    seen = []
    for i in range(5):
        writer.append(Record("step", {"i": i}))
        assert [r.meta["i"] for r in reader.read()] == []  # queued, not yet written
        writer.flush()
        seen += [r.meta["i"] for r in reader.read()]
    writer.close()
    assert seen == list(range(5)) and reader.read() == []
    # A second writer (a resumed run) starts the next segment; a reader reads both in order.
    again = SegmentWriter(tmp_path, "monitor")
    again.append(Record("step", {"i": 5}))
    again.close()
    assert [p.name for p in reader.segments()] == ["monitor-00001.nbrun", "monitor-00002.nbrun"]
    assert [r.meta["i"] for r in reader.read()] == [5]
    assert [r.meta["i"] for r in RunReader(tmp_path, "monitor").read()] == list(range(6))
    with pytest.raises(ValueError, match="closed"):
        again.append(Record("late"))


def test_a_truncated_segment_is_said_not_silently_reread(tmp_path):
    writer = SegmentWriter(tmp_path, "monitor")
    for i in range(3):
        writer.append(Record("step", {"i": i}))
    writer.close()
    reader = RunReader(tmp_path, "monitor")
    assert len(reader.read()) == 3
    with open(writer.path, "r+b") as f:
        f.truncate(FILE_HEADER.size + 4)
    with pytest.raises(RunFormatError, match="truncated or replaced"):
        reader.read()


def test_the_writer_thread_flushes_by_itself_and_stops_on_close(tmp_path):
    writer = SegmentWriter(tmp_path, "monitor", interval=0.01)
    writer.append(Record("step", {"i": 0}))
    reader = RunReader(tmp_path, "monitor")
    deadline = time.monotonic() + 30
    got = []
    while not got and time.monotonic() < deadline:  # the condition, not a guess at a delay
        got = reader.read()
        time.sleep(0.01)
    assert [r.meta for r in got] == [{"i": 0}]
    writer.close()
    assert writer.closed and not writer._thread.is_alive()
    with pytest.raises(ValueError, match="lowercase name"):
        SegmentWriter(tmp_path, "Bad Name")


# A writer that reports, on stdout, how many records each completed flush has written.
WRITER = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from nbviz_runs_only import files, format
w = files.SegmentWriter(sys.argv[1], "monitor", interval=3600)
print("ready", flush=True)
sys.stdin.readline()  # go
i = 0
while True:
    for _ in range(int(np.random.default_rng(i).integers(1, 20))):
        w.append(format.Record("step", {"i": i}, {"x": np.full(i % 50 * 1000, i, np.float32)}))
        i += 1
    w.flush()
    print(i, flush=True)
"""


def _runs_only_package(tmp_path: Path) -> Path:
    """nbviz/runs/format.py and files.py as a package of their own: a child that imports
    them does not import torch (nbviz/__init__), so it starts in a fraction of a second."""
    pkg = tmp_path / "lib" / "nbviz_runs_only"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("format.py", "files.py"):
        (pkg / name).write_text((REPO / "nbviz" / "runs" / name).read_text())
    return tmp_path / "lib"


def test_writers_killed_at_random_points_leave_every_flushed_record_readable(tmp_path):
    lib = _runs_only_package(tmp_path)
    rng = np.random.default_rng(1)
    kills = 16
    children = []
    for k in range(kills):  # all at once: two cores share their start-up
        out = tmp_path / f"run{k}"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(out), str(lib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append((child, out))
    for child, out in children:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        first = int(child.stdout.readline())  # a first flush completed: a random point after
        time.sleep(float(rng.uniform(0, 0.05)))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdin.close()
        confirmed = [first] + [int(line) for line in child.stdout.read().split()]
        child.stdout.close()
        got = [r.meta["i"] for r in RunReader(out, "monitor").read()]
        assert got == list(range(len(got))), "records in order, none missing, none twice"
        assert len(got) >= (confirmed[-1] if confirmed else 0), "a completed flush was lost"
        for r in RunReader(out, "monitor").read():
            i = r.meta["i"]
            np.testing.assert_array_equal(r.arrays["x"], np.full(i % 50 * 1000, i, np.float32))
        # Resuming after the kill: a new segment, readable after the torn one.
        w = SegmentWriter(out, "monitor")
        w.append(Record("step", {"i": len(got)}))
        w.close()
        assert [r.meta["i"] for r in RunReader(out, "monitor").read()][-1] == len(got)


def test_file_header_is_magic_and_version():
    assert file_header() == b"NBVZRUN\0" + struct.pack("<I", VERSION)


def test_a_latest_record_replaces_the_last_and_is_read_once_per_change(tmp_path):
    writer = SegmentWriter(tmp_path, "monitor", interval=60)
    reader = RunReader(tmp_path, "monitor")
    assert reader.latest("features") is None  # none yet
    for step in (1, 2):
        writer.replace("features", Record("features", {"step": 0}))
        writer.replace("features", Record("features", {"step": step}, {"m": np.full(3, step)}))
        writer.flush()
        got = reader.latest("features")
        assert got.meta == {"step": step} and got.arrays["m"].tolist() == [step] * 3
        assert reader.latest("features") is None  # unchanged since
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "monitor-00001.nbrun",
        "monitor-features.nbrec",  # one file however often it was replaced; no leftovers
    ]
    assert [r.meta for r in reader.read()] == []  # not among the appended records


def test_the_reader_in_docs_run_format_reads_what_nbviz_writes(tmp_path):
    """docs/run-format.md's reader (numpy and the standard library alone) agrees with
    RunReader, torn tail included: the documented format is the written one."""
    import re

    code = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "run-format.md").read_text(), re.S)
    namespace: dict = {}
    exec(code[0], namespace)  # defines records(path)
    writer = SegmentWriter(tmp_path, "monitor")
    arrays = {"a": np.arange(6, dtype="<f8").reshape(2, 3), "b": np.array(7, dtype="<i8")}
    for i in range(3):
        writer.append(Record("step", {"i": i}, arrays))
    writer.close()
    with open(writer.path, "ab") as f:
        f.write(encode(Record("torn", {}, arrays))[:-5])  # a writer killed mid-record
    documented = list(namespace["records"](writer.path))
    ours = RunReader(tmp_path, "monitor").read()
    assert [(k, m) for k, m, _ in documented] == [(r.kind, r.meta) for r in ours]
    for (_, _, got), r in zip(documented, ours, strict=True):
        for name, a in r.arrays.items():
            np.testing.assert_array_equal(got[name], a)
            assert got[name].shape == a.shape and got[name].dtype == a.dtype


def test_a_roll_starts_a_new_segment_with_its_records_then_deletes_the_old(tmp_path):
    writer = SegmentWriter(tmp_path, "monitor", interval=60)  # flushes when told
    reader = RunReader(tmp_path, "monitor")
    writer.append(Record("step", {"i": 0}))
    writer.roll(Record("checkpoint", {"upto": 1}))
    writer.append(Record("step", {"i": 1}))
    first = writer.path
    assert writer.rolling and first.exists()  # queued: no file work on the caller's thread
    writer.flush()
    assert not writer.rolling and not first.exists() and writer.path != first
    assert [p.name for p in reader.segments()] == ["monitor-00002.nbrun"]
    assert [(r.kind, r.meta) for r in reader.read()] == [
        ("checkpoint", {"upto": 1}),
        ("step", {"i": 1}),
    ]
    writer.close()
