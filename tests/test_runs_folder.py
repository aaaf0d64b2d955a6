"""A folder of runs followed: every run found (later ones too), read for its scalars only,
curves decimated without hiding a blow-up, runs picked, and a run's whole dashboard
opened on demand from the browser's side."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from monitor_helpers import mlp, small_cnn, train_step
from run_helpers import assert_same, merging_recorder, train, wait_for

import nbviz
from nbviz.monitor.core import TrainingRecorder
from nbviz.monitor.runlog import RecordedRun
from nbviz.runs.folder import decimate, find_runs, is_run
from nbviz.runs.widget import AUTO_PICK, POINTS, FolderFollower


def record(logdir, steps: int, lr: float = 0.1, seed: int = 0, nan_at: int | None = None):
    """A real run: an MLP trained with a recorder that writes ``logdir`` at every step."""
    model = mlp(seed)
    rec = TrainingRecorder(model, logdir=logdir, log_every=0.001)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g)
    for s in range(steps):
        if s == nan_at:
            with torch.no_grad():
                model[0].weight[0, 0] = float("nan")
        train_step(model, opt, x, y, rec)
        if s % 10 == 9:
            rec.log_val(loss=float(s))
    rec.detach()
    return rec


def test_find_runs_walks_a_sweep_in_natural_order(tmp_path):
    for name in ["lr10/seed1", "lr2/seed1", "lr2/seed10", "lr2/seed2", "tb", ".hidden/x"]:
        (tmp_path / name).mkdir(parents=True)
    for name in ["lr10/seed1", "lr2/seed1", "lr2/seed10", "lr2/seed2", ".hidden/x"]:
        (tmp_path / name / "monitor-00001.nbrun").write_bytes(b"")
    (tmp_path / "tb" / "events.out.tfevents.1.host").write_bytes(b"")
    (tmp_path / "notes").mkdir()  # no run files: not a run
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    assert find_runs(tmp_path) == ["lr2/seed1", "lr2/seed2", "lr2/seed10", "lr10/seed1", "tb"]
    assert is_run(tmp_path / "tb") and not is_run(tmp_path / "notes")
    assert not is_run(tmp_path / "missing")
    assert find_runs(tmp_path / "missing") == []
    # A run is not looked into: a folder inside a run is part of it, not a run of its own.
    (tmp_path / "tb" / "inner").mkdir()
    (tmp_path / "tb" / "inner" / "monitor-00001.nbrun").write_bytes(b"")
    assert "tb/inner" not in find_runs(tmp_path)


def test_decimate_keeps_means_and_shows_a_blow_up_as_a_gap():
    steps = np.arange(1000, dtype=np.int64)
    values = np.random.default_rng(0).normal(size=1000)
    s, v = decimate(steps, values, 100)
    assert len(s) == len(v) == 100
    np.testing.assert_array_equal(s, steps[9::10])  # each chunk's last step
    np.testing.assert_allclose(v, values.reshape(100, 10).mean(axis=1))
    # Uneven chunks cover every point once.
    s, v = decimate(steps[:997], values[:997], 100)
    assert s[-1] == 996 and len(s) == 100
    values[503] = np.inf
    _, v = decimate(steps, values, 100)
    assert np.isnan(v[50]) and np.isfinite(np.delete(v, 50)).all()
    short = decimate(steps[:5], values[:5], 100)
    assert short[0] is steps[:5].base or np.array_equal(short[0], steps[:5])


def test_scalars_only_reads_the_scalars_and_passes_over_the_rest(tmp_path, monkeypatch):
    from nbviz.monitor.runlog import MonitorLog

    monkeypatch.setattr(MonitorLog, "roll_bytes", 20_000)  # checkpoints on the way
    model = small_cnn()
    rec = merging_recorder(model, tmp_path)
    scalars = RecordedRun(tmp_path, scalars_only=True)
    for _ in range(3):
        train(rec, model, 40)
        rec.log.writer.flush()
        scalars.update()
    rec.detach()
    scalars.update()
    full = RecordedRun(tmp_path)
    full.update()
    got, want = scalars.snapshot(), full.snapshot()
    for key in ("steps", "scalars", "val", "nonfinite"):
        assert_same(want[key], got[key], key)
    assert got["histograms"] == {} and got["latest"] == {} and got["features"] == {}
    assert len(got["grad_norm"][1]) == 0  # no flow rows were replayed


def test_follow_a_folder_finds_runs_as_they_come_and_picks_the_first(tmp_path):
    record(tmp_path / "lr0.1", 30, lr=0.1)
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        assert isinstance(view, FolderFollower)
        assert view.names == ["lr0.1"]
        record(tmp_path / "lr0.01", 20, lr=0.01, seed=1)  # a run created while followed
        wait_for(lambda: view.names == ["lr0.01", "lr0.1"], "the new run to be found")
        wait_for(lambda: not view.overview.pending, "the push")
        view.overview.flush()
        state = view.overview.get_state()
        assert [r["name"] for r in state["runs"]] == ["lr0.01", "lr0.1"]
        assert {r["name"]: r["steps"] for r in state["runs"]} == {"lr0.01": 20, "lr0.1": 30}
        assert state["picked"] == ["lr0.1", "lr0.01"]  # picked by themselves, in arrival order
        assert state["scalars"] == ["loss", "acc"]
        # The curves are the runs' own points (short runs are not decimated).
        run = RecordedRun(tmp_path / "lr0.1")
        run.update()
        steps, values = run.scalars["loss"]
        sent = view.overview.series["lr0.1"]["train:loss"]
        np.testing.assert_array_equal(sent["steps"], steps)
        np.testing.assert_array_equal(sent["values"], values.astype(np.float32))
        assert set(view.overview.series["lr0.1"]) == {"train:loss", "train:acc", "val:loss"}
        assert view.status.value == f"following {tmp_path}: 2 runs"
        # The browser unpicks one: it stays unpicked (never picked again by itself).
        view.overview.set_state({"picked": ["lr0.1"]})
        view.overview.mark_changed(force=True)
        assert view.overview.picked == ["lr0.1"]
    finally:
        view.close()
    assert not view.following


def test_auto_pick_stops_at_one_run_per_colour_and_long_curves_are_decimated(tmp_path):
    for i in range(AUTO_PICK + 2):
        (tmp_path / f"run{i}").mkdir()
    # Long curves written straight to the format (a real recorder's records, without
    # training 8 x 3,000 steps): one scalars record per run.
    from nbviz.runs.files import SegmentWriter
    from nbviz.runs.format import Record

    for i in range(AUTO_PICK + 2):
        w = SegmentWriter(tmp_path / f"run{i}", "monitor")
        steps = np.arange(3000, dtype=np.int64)
        w.append(
            Record(
                "meta",
                {
                    "layers": [],
                    "relus": [],
                    "hist_layers": [],
                    "feature_layers": [],
                    "capacity": 8,
                    "bins": 8,
                },
            )
        )
        w.append(
            Record(
                "scalars",
                {"series": "scalars", "name": "loss"},
                {"steps": steps, "values": np.exp(-steps / (500.0 * (i + 1)))},
            )
        )
        w.append(Record("progress", {"steps": 3000}))
        w.close()
    view = FolderFollower(tmp_path, interval=0.01)
    try:
        view.stop()
        view.overview.flush()
        assert view.overview.picked == [f"run{i}" for i in range(AUTO_PICK)]
        sent = view.overview.series["run0"]["train:loss"]
        assert len(sent["steps"]) == POINTS
        want = decimate(steps, np.exp(-steps / 500.0), POINTS)[1].astype(np.float32)
        np.testing.assert_allclose(sent["values"], want, rtol=1e-6)
    finally:
        view.close()


def test_a_run_that_blew_up_or_is_damaged_says_so_and_the_others_go_on(tmp_path):
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 5"):
        record(tmp_path / "bad", 12, nan_at=5)
    record(tmp_path / "good", 12, seed=1)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "monitor-00001.nbrun").write_bytes(b"NOTARUN!" + bytes(8))
    view = FolderFollower(tmp_path, interval=0.01)
    try:
        view.stop()
        view.overview.flush()
        rows = {r["name"]: r for r in view.overview.runs}
        assert rows["bad"]["note"].startswith("non-finite from step 5")
        assert rows["good"]["note"] == "" and rows["good"]["steps"] == 12
        assert (
            rows["broken"]["note"].startswith("not read: ")
            and "not an nbviz run" in rows["broken"]["note"]
        )
        # A deleted run leaves the list.
        import shutil

        shutil.rmtree(tmp_path / "good")
        view.refresh()
        view.overview.flush()
        assert [r["name"] for r in view.overview.runs] == ["bad", "broken"]
        assert "good" not in view.overview.series
    finally:
        view.close()


def test_opening_a_run_from_the_browser_shows_its_whole_dashboard(tmp_path):
    """The browser sets ``opened`` (the kernel is free while following): the kernel shows
    that run's own dashboard below; two open side by side; closing stops its reader."""
    record(tmp_path / "a", 15)
    record(tmp_path / "b", 25, seed=1)
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        view.overview.set_state({"opened": ["b"]})  # as a click on "open" does
        (follower,) = view.details.children
        assert follower.following and follower.path == tmp_path / "b"
        wait_for(lambda: follower.run.steps == 25, "the opened run to be read")
        assert follower.children[0].value == "b"  # titled with the run's name
        view.show("a")
        assert [f.path.name for f in view.details.children] == ["b", "a"]
        view.overview.set_state({"opened": ["a"]})  # "close" on b
        assert not follower.following and [f.path.name for f in view.details.children] == ["a"]
        with pytest.raises(ValueError, match="no run named 'c'"):
            view.show("c")
    finally:
        view.close()
    assert not any(t.name.startswith("nbviz-follow") for t in threading.enumerate())


def test_a_folder_that_is_empty_yet_is_waited_for(tmp_path):
    sweep = tmp_path / "sweep"
    view = nbviz.follow(sweep, many=True, interval=0.01)
    try:
        assert view.status.value == f"waiting: {sweep} does not exist yet"
        sweep.mkdir()
        wait_for(lambda: view.status.value == f"waiting: {sweep} holds no runs yet", "waiting")
        record(sweep / "r1", 5)
        wait_for(lambda: view.names == ["r1"], "the first run")
    finally:
        view.close()
    # Followed as one run, a folder of runs says how to show them all.
    single = nbviz.follow(tmp_path, many=False, interval=0.01)
    try:
        assert "it holds runs, shown with nbviz.follow(" in single.status.value
    finally:
        single.close()


def test_tensorboard_runs_are_followed_alone_and_beside_nbviz_runs(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    record(tmp_path / "nbviz", 10)
    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in range(20):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
        if step % 5 == 0:
            writer.add_histogram("fc.weight", torch.linspace(-1, 1, 101) * (step + 1), step)
    writer.flush()
    one = nbviz.follow(tmp_path / "tb", interval=0.01)
    try:
        wait_for(lambda: one.run.steps == 19, "the TensorBoard run to be read")
        one.view.flush()
        np.testing.assert_allclose(
            one.view.scalars["loss"]["values"], [1.0 / (s + 1) for s in range(20)], rtol=1e-6
        )
        assert list(one.view.histograms) == ["fc.weight|weights"]
        assert one.status.value == f"following {tmp_path / 'tb'}: 19 steps"
    finally:
        one.close()
    many = FolderFollower(tmp_path, interval=0.01)
    try:
        many.stop()
        many.overview.flush()
        rows = {r["name"]: (r["kind"], r["steps"]) for r in many.overview.runs}
        assert rows == {"nbviz": ("nbviz", 10), "tb": ("tensorboard", 19)}
        assert set(many.overview.series["tb"]) == {"train:loss"}
    finally:
        many.close()
        writer.close()
