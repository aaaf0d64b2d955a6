"""TensorBoard run directories read as the dashboard's source: event files written by
torch's own SummaryWriter, read incrementally, mapped onto nbviz's scalars and histograms,
and damaged files named in clear errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from run_helpers import assert_same
from torch.utils.tensorboard import SummaryWriter

from nbviz.monitor.runlog import RecordedRun
from nbviz.monitor.widget import dashboard_parts
from nbviz.runs.format import RunFormatError
from nbviz.runs.tensorboard import (
    BINS,
    TensorBoardRun,
    histogram_kind,
    is_tensorboard_run,
    rebin,
)

pytestmark = pytest.mark.timeout(60)  # a reader that waits on a damaged file fails, not hangs


def event_files(d) -> list[str]:
    return sorted(str(d / n) for n in os.listdir(d) if n.startswith("events.out.tfevents."))


def records(path) -> list[tuple[int, int]]:
    """(start, end) of each TFRecord in an event file: u64 length, u32, data, u32."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 8], "little")
        out.append((pos, pos + 16 + n))
        pos += 16 + n
    return out


def scalars_of(run) -> dict[str, tuple[list[int], list[float]]]:
    return {k: (s.tolist(), v.tolist()) for k, (s, v) in run.snapshot()["scalars"].items()}


def numpy_fractions(values, radius) -> np.ndarray:
    counts, _ = np.histogram(values, bins=BINS, range=(-radius, radius))
    return counts / len(values)


def on_the_ladder(radius: float, values) -> bool:
    """A power of two strictly above the largest |value|, and the smallest such."""
    peak = float(np.abs(values).max())
    return math.log2(radius).is_integer() and peak < radius <= 2 * peak


# --- scalars ---------------------------------------------------------------------------------


def test_scalars_come_back_float32_exact_in_step_order(tmp_path):
    rng = np.random.default_rng(0)
    loss, acc = rng.normal(size=50) * 3, rng.uniform(size=50)
    with SummaryWriter(tmp_path) as w:
        for step in range(50):
            w.add_scalar("loss", float(loss[step]), step)
            w.add_scalar("acc", float(acc[step]), step)
    assert is_tensorboard_run(tmp_path)
    run = TensorBoardRun(tmp_path)
    assert run.meta is None
    assert run.update() == 100
    snap = run.snapshot()
    assert list(snap["scalars"]) == ["loss", "acc"] and snap["val"] == {}
    for name, written in (("loss", loss), ("acc", acc)):
        steps, values = snap["scalars"][name]
        assert steps.dtype == np.int64 and values.dtype == np.float64
        np.testing.assert_array_equal(steps, np.arange(50))
        # simple_value is a float32: what was written, rounded to float32, exactly
        np.testing.assert_array_equal(values, written.astype(np.float32).astype(np.float64))
    assert run.steps == 49 and snap["steps"] == 49
    assert run.meta == {
        "layers": [],
        "relus": [],
        "hist_layers": [],
        "feature_layers": [],
        "capacity": 256,
        "bins": BINS,
    }
    assert run.versions["scalars"] >= 1 and run.versions["hist"] == 0
    assert run.probe_images() is None
    assert run.update() == 0  # nothing new


def test_a_snapshot_has_recorded_runs_shape(tmp_path):
    """With nothing read, the snapshot equals RecordedRun's with no meta, part for part;
    with data, the same keys and the same empty flow."""
    (tmp_path / "tb").mkdir()
    (tmp_path / "nb").mkdir()
    tb, nb = TensorBoardRun(tmp_path / "tb"), RecordedRun(tmp_path / "nb")
    tb.update()
    nb.update()
    assert_same(tb.snapshot(), nb.snapshot())
    assert set(tb.versions) == set(nb.versions)
    with SummaryWriter(tmp_path / "tb") as w:
        w.add_scalar("loss", 1.0, 3)
    tb.update()
    full, empty = tb.snapshot(), nb.snapshot()
    assert set(full) == set(empty)
    for key in ("grad_norm", "grad_max", "ratio", "dead", "strides", "latest", "features"):
        assert_same(full[key], empty[key])


def test_meta_waits_for_a_first_event_with_data(tmp_path):
    w = SummaryWriter(tmp_path)
    w.flush()  # the file exists, holding only its file_version event
    run = TensorBoardRun(tmp_path)
    assert run.update() == 0 and run.meta is None and run.snapshot()["scalars"] == {}
    w.add_scalar("loss", 0.5, 0)
    w.flush()
    assert run.update() == 1 and run.meta is not None
    w.close()


def test_new_style_tensor_scalars(tmp_path):
    values = [0.1, 1 / 3, 2.5e-8, -7.0]
    with SummaryWriter(tmp_path) as w:
        for step, v in enumerate(values):
            w.add_scalar("f32", v, step, new_style=True)
            w.add_scalar("f64", v, step, new_style=True, double_precision=True)
            w.add_scalar("old", v, step)
    run = TensorBoardRun(tmp_path)
    assert run.update() == 12
    got = scalars_of(run)
    f32 = np.array(values, dtype=np.float32).astype(np.float64).tolist()
    assert got["f32"] == (list(range(4)), f32)
    assert got["f64"] == (list(range(4)), values)  # double precision: exact
    assert got["old"] == got["f32"]


def test_tensorflow_2_writes_metadata_with_a_tags_first_value_only(tmp_path):
    """A tensor without metadata belongs to the plugin its tag's first value named."""
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    with SummaryWriter(tmp_path) as w:
        fw = w._get_file_writer()
        for step in range(3):
            summary = scalar_pb("lr", 0.25 * (step + 1))
            if step:
                summary.value[0].ClearField("metadata")
            fw.add_summary(summary, step)
    run = TensorBoardRun(tmp_path)
    run.update()
    assert scalars_of(run) == {"lr": ([0, 1, 2], [0.25, 0.5, 0.75])}


# --- histograms ------------------------------------------------------------------------------


def test_histograms_with_buckets_on_nbvizs_grid_are_binned_exactly(tmp_path):
    """TensorBoard buckets that are unions of nbviz's bins spread over them exactly: the
    rows equal numpy's histogram over nbviz's range, also after the range doubles."""
    rng = np.random.default_rng(1)
    small = rng.uniform(-0.9, 0.9, 5000)  # radius 1
    large = rng.uniform(-7.5, 7.5, 3000)  # radius 8: the first row merges, exactly
    with SummaryWriter(tmp_path) as w:
        w.add_histogram("fc1.weight", small, 0, bins=np.linspace(-1, 1, BINS + 1))
        w.add_histogram("fc1.weight", large, 1, bins=np.linspace(-8, 8, BINS + 1))
    run = TensorBoardRun(tmp_path)
    assert run.update() == 2
    snap = run.snapshot()
    edges, rows, steps = snap["histograms"][("fc1.weight", "weights")]
    assert edges[-1] == 8.0 and rows.shape == (2, BINS)
    np.testing.assert_array_equal(steps, [[0, 0], [1, 1]])
    np.testing.assert_allclose(rows[0], numpy_fractions(small, 8.0), atol=1e-12)
    np.testing.assert_allclose(rows[1], numpy_fractions(large, 8.0), atol=1e-12)


@pytest.mark.parametrize("bins", ["tensorflow", "auto"])
def test_histograms_of_known_tensors_match_numpy(tmp_path, bins):
    """torch's default buckets (TensorFlow's exponential ones) and numpy's "auto" ones do
    not line up with nbviz's bins: spreading each uniformly lands close to numpy's own
    histogram over the chosen range, much closer than a bin's shift would."""
    g = torch.Generator().manual_seed(2)
    tensors = {
        "fc1.weight": torch.randn(20000, generator=g) * 0.1,
        "fc1.weight.grad": torch.randn(20000, generator=g) * 1e-3 + 2e-4,
        "relu/act": torch.relu(torch.randn(20000, generator=g)) * 3,
        "block.Activations": torch.rand(20000, generator=g) * 2 - 0.5,
    }
    with SummaryWriter(tmp_path) as w:
        for tag, t in tensors.items():
            w.add_histogram(tag, t, 7, bins=bins)
    run = TensorBoardRun(tmp_path)
    run.update()
    snap = run.snapshot()
    kinds = {"fc1.weight": "weights", "fc1.weight.grad": "gradients"}
    kinds |= {"relu/act": "activations", "block.Activations": "activations"}
    assert set(snap["histograms"]) == set(kinds.items())
    assert snap["hist_layers"] == list(tensors)
    for tag, t in tensors.items():
        values = t.double().numpy()
        edges, rows, steps = snap["histograms"][(tag, kinds[tag])]
        radius = float(edges[-1])
        assert on_the_ladder(radius, values), (tag, radius)
        assert rows.shape == (1, BINS) and steps.tolist() == [[7, 7]]
        assert abs(rows[0].sum() - 1) < 1e-12
        want = numpy_fractions(values, radius)
        error = np.abs(rows[0] - want).sum()  # L1: 0 to 2
        shifted = np.abs(np.roll(want, 1) - want).sum()  # what a bin's offset would cost
        assert error < 0.03 and error < shifted / 3, (tag, error, shifted)
        mean = (rows[0] * (edges[:-1] + edges[1:]) / 2).sum()
        assert abs(mean - values.mean()) < radius / BINS, tag


def test_kind_follows_the_tag():
    assert histogram_kind("layer1.conv.weight") == "weights"
    assert histogram_kind("Grad/fc1") == "gradients"
    assert histogram_kind("fc1.weight_GRADIENTS") == "gradients"
    assert histogram_kind("encoder/activation_0") == "activations"
    assert histogram_kind("relu_act") == "activations"
    assert histogram_kind("fc.acts") == "activations"
    assert histogram_kind("impact.factor") == "weights"  # "act" inside a word is not
    assert histogram_kind("activation/grad") == "gradients"


def test_tensor_histograms_k_by_3(tmp_path):
    """TensorFlow 2's histograms: [left, right, count] rows, metadata on the first only."""
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 0.2, 4000), rng.normal(0.5, 1.0, 4000)
    with SummaryWriter(tmp_path) as w:
        fw = w._get_file_writer()
        fw.add_summary(histogram_pb("dense/kernel", a, buckets=200), 0)
        second = histogram_pb("dense/kernel", b, buckets=200)
        second.value[0].ClearField("metadata")
        fw.add_summary(second, 1)
        fw.add_summary(histogram_pb("dense/kernel_grad", np.full(10, 0.3)), 1)  # one value
    run = TensorBoardRun(tmp_path)
    assert run.update() == 3
    snap = run.snapshot()
    edges, rows, _ = snap["histograms"][("dense/kernel", "weights")]
    radius = float(edges[-1])
    assert on_the_ladder(radius, np.concatenate([a, b]))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    for row, values in zip(rows, (a, b), strict=True):
        assert np.abs(row - numpy_fractions(values, radius)).sum() < 0.03
    edges, rows, _ = snap["histograms"][("dense/kernel_grad", "gradients")]
    assert edges[-1] == 0.5 and rows[0][np.searchsorted(edges, 0.3) - 1] == 1.0


def test_rebin_spreads_by_overlap():
    # [-1, 0] over bins [-1,-.5], [-.5,0]: half each; [0, .5] wholly in the third bin
    got = rebin(np.array([-1.0, 0.0]), np.array([0.0, 0.5]), np.array([2.0, 2.0]), 1.0, 4)
    np.testing.assert_allclose(got, [0.25, 0.25, 0.5, 0.0])
    # a bucket across a bin edge splits by overlap; a point on an edge counts above it
    got = rebin(np.array([-0.25, 0.5]), np.array([0.25, 0.5]), np.array([1.0, 1.0]), 1.0, 4)
    np.testing.assert_allclose(got, [0, 0.25, 0.25, 0.5])


def test_histograms_false_skips_them_unchecked(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(20):
            w.add_scalar("loss", 1 / (step + 1), step)
            w.add_histogram("fc.weight", torch.randn(5000), step)
    checked = {}
    for read in (True, False):
        run = TensorBoardRun(tmp_path, histograms=read)
        crc, checked[read] = run._crc, 0

        def counting(data, crc=crc, read=read):
            checked[read] += len(data)
            return crc(data)

        run._crc = counting
        assert run.update() == (40 if read else 20)
        snap = run.snapshot()
        assert len(snap["scalars"]["loss"][0]) == 20
        assert bool(snap["histograms"]) == read and bool(snap["hist_layers"]) == read
        assert (run.versions["hist"] > 0) == read
    assert checked[False] * 20 < checked[True]  # histograms' bytes were not checksummed


# --- reading as the files grow ---------------------------------------------------------------


def test_update_reads_only_what_is_new(tmp_path):
    w = SummaryWriter(tmp_path)
    for step in range(10):
        w.add_scalar("loss", step * 0.5, step)
        w.add_scalar("acc", step * 0.1, step)
    w.flush()
    run = TensorBoardRun(tmp_path)
    assert run.update() == 20
    version = run.versions["scalars"]
    assert run.update() == 0 and run.versions["scalars"] == version
    for step in range(10, 25):
        w.add_scalar("loss", step * 0.5, step)
        w.add_scalar("acc", step * 0.1, step)
    w.add_histogram("fc.weight", torch.linspace(-1, 1, 101), 24)
    w.flush()
    assert run.update() == 31
    assert run.versions["scalars"] > version and run.versions["hist"] == 1
    got = scalars_of(run)
    assert got["loss"][0] == list(range(25))  # appended, no duplicates
    assert got["loss"][1] == [np.float32(s * 0.5).item() for s in range(25)]
    assert run.steps == 24 and run.snapshot()["hist_layers"] == ["fc.weight"]
    w.close()


def test_a_record_still_being_written_waits_for_its_end(tmp_path):
    """The file grows a few bytes at a time, cut anywhere, headers and checksums included:
    each update takes the whole records there are, and the end result is the whole run."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    with SummaryWriter(src) as w:
        for step in range(6):
            w.add_scalar("loss", step + 0.25, step)
        w.add_histogram("fc.weight", torch.linspace(-1, 1, 50), 6)
    (path,) = event_files(src)
    data = open(path, "rb").read()
    bounds = records(path)
    dst.mkdir()
    target = dst / os.path.basename(path)
    run = TensorBoardRun(dst)
    written = 0
    for cut in [*range(0, len(data), 7), len(data)]:
        with open(target, "ab") as f:
            f.write(data[written:cut])
        written = cut
        run.update()
        whole = max(0, sum(1 for _, end in bounds if end <= cut) - 1)  # less file_version
        assert len(scalars_of(run).get("loss", ([], []))[0]) == min(whole, 6), cut
    assert scalars_of(run)["loss"] == (list(range(6)), [s + 0.25 for s in range(6)])
    assert len(run.snapshot()["histograms"]) == 1


def test_a_second_event_file_appears_later(tmp_path):
    """A writer that restarts writes a new file: it is found and read after the first,
    and points of steps it writes again replace the earlier ones (a resumed run)."""
    with SummaryWriter(tmp_path) as w:
        for step in range(10):
            w.add_scalar("loss", 1.0, step)
    run = TensorBoardRun(tmp_path)
    assert run.update() == 10
    w2 = SummaryWriter(tmp_path)
    for step in range(6, 15):
        w2.add_scalar("loss", 2.0, step)
    w2.flush()
    assert len(event_files(tmp_path)) == 2
    assert run.update() == 9
    assert scalars_of(run)["loss"] == (list(range(15)), [1.0] * 6 + [2.0] * 9)
    assert run.steps == 14
    w2.add_scalar("loss", 3.0, 15)  # the second file goes on growing
    w2.close()
    assert run.update() == 1 and scalars_of(run)["loss"][0][-1] == 15


def test_purge_step_discards_later_points(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(10):
            w.add_scalar("loss", 1.0, step)
            w.add_scalar("acc", 1.0, step)
    with SummaryWriter(tmp_path, purge_step=4) as w:
        w.add_scalar("loss", 2.0, 4)
    run = TensorBoardRun(tmp_path)
    run.update()
    got = scalars_of(run)
    assert got["loss"] == ([0, 1, 2, 3, 4], [1.0] * 4 + [2.0])
    assert got["acc"] == ([0, 1, 2, 3], [1.0] * 4)


# --- errors ----------------------------------------------------------------------------------


def test_a_missing_directory_or_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        TensorBoardRun(tmp_path / "nope")
    f = tmp_path / "events.out.tfevents.1.host.1.0"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file"):
        TensorBoardRun(f)
    assert not is_tensorboard_run(f) and not is_tensorboard_run(tmp_path / "nope")
    (tmp_path / "sub").mkdir()
    assert is_tensorboard_run(tmp_path)
    assert not is_tensorboard_run(tmp_path / "sub")
    run = TensorBoardRun(tmp_path / "sub")
    (tmp_path / "sub").rmdir()
    with pytest.raises(FileNotFoundError, match="was removed"):
        run.update()


@pytest.mark.parametrize("where", ["data", "length", "length_crc", "data_crc"])
def test_a_damaged_record_names_its_file(tmp_path, where):
    with SummaryWriter(tmp_path) as w:
        for step in range(8):
            w.add_scalar("loss", float(step), step)
    (path,) = event_files(tmp_path)
    start, end = records(path)[5]  # the scalar of step 4
    at = {"data": start + 14, "length": start + 1, "length_crc": start + 9, "data_crc": end - 2}
    data = bytearray(open(path, "rb").read())
    data[at[where]] ^= 0x5A
    open(path, "wb").write(bytes(data))
    run = TensorBoardRun(tmp_path)
    with pytest.raises(RunFormatError, match=f"{os.path.basename(path)} is damaged.*byte {start}"):
        run.update()
    assert scalars_of(run)["loss"][0] == [0, 1, 2, 3]  # what came before is there
    with pytest.raises(RunFormatError):  # and the next reading says so again
        run.update()


def test_a_file_that_is_not_tensorboards(tmp_path):
    (tmp_path / "events.out.tfevents.123.host").write_bytes(os.urandom(4096))
    with pytest.raises(RunFormatError, match="events.out.tfevents.123.host is damaged"):
        TensorBoardRun(tmp_path).update()


def test_tensorboard_is_imported_when_a_run_is_read_only(tmp_path, monkeypatch):
    code = "import sys, nbviz, nbviz.runs.tensorboard; print('tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'nbviz\[tensorboard\]'"):
        TensorBoardRun(tmp_path)


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_draws_a_tensorboard_run(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(30):
            w.add_scalar("train/loss", 1 / (step + 1), step)
            w.add_scalar("lr", 0.1, step)
            if step % 10 == 0:
                w.add_histogram("fc.weight", torch.randn(1000) * 0.05, step)
                w.add_histogram("fc.weight.grad", torch.randn(1000) * 1e-3, step)
    run = TensorBoardRun(tmp_path)
    run.update()
    head, curves, view = dashboard_parts(run, "", 2.0, end_of_cell_flush=False)
    try:
        assert head == []
        view.flush()
        state = view.get_state()
        assert state["steps"] == 29 and state["layers"] == [] and state["relus"] == []
        assert set(state["scalars"]) == {"train/loss", "lr"} and state["val"] == {}
        assert state["scalars"]["train/loss"]["values"]["shape"] == [30]
        assert state["hist_layers"] == ["fc.weight", "fc.weight.grad"]
        assert set(state["histograms"]) == {"fc.weight|weights", "fc.weight.grad|gradients"}
        entry = state["histograms"]["fc.weight|weights"]
        assert entry["rows"]["shape"] == [3, BINS] and entry["stride"] == 1
        assert math.log2(entry["radius"]).is_integer()
        assert state["flow"]["grad_norm"]["rows"]["shape"] == [0, 1]
        assert [c["name"] for c in state["curves"]] == ["train/loss", "lr"]
        assert [f.title for f in curves.children] == ["train/loss", "lr"]
        assert state["probe_images"] is None and state["features"] == {}
    finally:
        view.close()
