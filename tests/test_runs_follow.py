"""The monitor recorded to a run directory and followed: the same records, the same views,
a kernel left free, and clear words for runs that are missing, deleted or damaged."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest
import torch
from monitor_helpers import shapes_data, small_cnn
from run_helpers import assert_same, merging_recorder, train, wait_for

import nbviz
from nbviz.monitor.core import TrainingRecorder
from nbviz.monitor.runlog import RecordedRun
from nbviz.runs.format import FILE_HEADER
from tests.models import hf_vit


def test_a_run_read_back_equals_the_recorder_merged_histories_and_all(tmp_path):
    """Capacity 8 makes every history merge several times and the histograms' ranges
    double: the replay merges the same rows the same way."""
    model = small_cnn()
    rec = merging_recorder(model, tmp_path)
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 60"):
        train(rec, model, 70, nan_at=60)
    rec.detach()
    live = rec.snapshot()
    assert live["strides"]["grad_norm"] >= 8 and live["nonfinite"] is not None
    run = RecordedRun(tmp_path)
    assert run.update() > 0
    assert_same(live, run.snapshot())
    assert run.update() == 0  # everything was read once


def test_recording_writes_from_its_own_thread_and_changes_no_weight(tmp_path, monkeypatch):
    """The training thread only queues records; the file is written by the writer's thread.
    And training with a run log gives bitwise the same weights as without."""
    writers = set()
    real_write = os.write

    def spy(fd, data):
        writers.add(threading.current_thread().name)
        return real_write(fd, data)

    weights = []
    for logdir in (None, tmp_path):
        model = small_cnn()
        rec = TrainingRecorder(model, logdir=logdir, log_every=0.001)
        monkeypatch.setattr(os, "write", spy)
        train(rec, model, 12)
        monkeypatch.setattr(os, "write", real_write)
        rec.detach()  # (its last write is on the caller's thread, after training)
        weights.append(model.state_dict())
    assert writers == {"nbviz-writer-monitor"}, writers
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_follow_shows_the_views_watch_shows(tmp_path):
    model = small_cnn()
    mon = nbviz.watch(model, probe=shapes_data().images[:4], logdir=tmp_path, log_every=0.001)
    train(mon, model, 25)
    mon.detach()
    mon.flush()
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        wait_for(lambda: view.run.steps == 25, "the follower to read every step")
        view.view.flush()
        live, followed = mon.view.get_state(), view.view.get_state()
        for key in ("layers", "relus", "steps", "scalars", "val", "flow", "latest", "max_step"):
            assert_same(live[key], followed[key], key)
        for key in ("histograms", "hist_layers", "features", "features_step", "probe_images"):
            assert_same(live[key], followed[key], key)
        assert [c["name"] for c in followed["curves"]] == [c["name"] for c in live["curves"]]
        assert view.status.value == f"following {tmp_path}: 25 steps"
    finally:
        view.close()
    assert not view.following


def test_follow_a_run_while_it_trains_then_stop(tmp_path):
    """A training thread records while the follower reads: the follower keeps up until the
    run ends, and stop() ends its thread (no thread or file handle left)."""
    model = small_cnn()
    rec = TrainingRecorder(model, logdir=tmp_path, log_every=0.005)
    trainer = threading.Thread(target=lambda: (train(rec, model, 60), rec.detach()))
    view = nbviz.follow(tmp_path, interval=0.005)
    trainer.start()
    trainer.join()
    wait_for(lambda: view.run.steps == 60, "the last step to be followed")
    wait_for(lambda: not view.view.pending, "the last push")
    assert view.view.steps == 60
    view.stop()
    assert not view.following
    view.stop()  # idempotent
    assert not [t for t in threading.enumerate() if t.name.startswith("nbviz-")]


def test_follow_waits_for_a_run_that_does_not_exist_yet(tmp_path):
    later = tmp_path / "not-yet"
    view = nbviz.follow(later, interval=0.005)
    try:
        assert view.status.value == f"waiting: {later} does not exist yet"
        model = small_cnn()
        rec = TrainingRecorder(model, logdir=later, log_every=0.001)
        train(rec, model, 3)
        rec.detach()
        wait_for(lambda: view.run.steps == 3, "the run to appear and be read")
        assert view.status.value.startswith(f"following {later}")
    finally:
        view.close()


def test_follow_says_when_a_run_is_deleted_or_truncated(tmp_path):
    for damage in ("delete", "truncate"):
        run_dir = tmp_path / damage
        model = small_cnn()
        rec = TrainingRecorder(model, logdir=run_dir, log_every=0.001)
        train(rec, model, 3)
        rec.detach()
        view = nbviz.follow(run_dir, interval=0.005)
        assert view.run.steps == 3
        if damage == "delete":
            shutil.rmtree(run_dir)
            expected = f"stopped following: {run_dir} was deleted"
        else:
            (segment,) = run_dir.glob("*.nbrun")
            with open(segment, "r+b") as f:
                f.truncate(FILE_HEADER.size + 3)
            expected = "stopped following: "
        wait_for(lambda view=view: not view.following, f"the follower to stop ({damage})")
        assert view.status.value.startswith(expected), view.status.value
        assert damage == "delete" or "truncated or replaced" in view.status.value
        assert view.view.steps == 3  # what was shown stays
        view.close()


def test_follow_refuses_what_is_not_a_run_directory(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("hello")
    with pytest.raises(ValueError, match="is a file; nbviz.follow needs a run directory"):
        nbviz.follow(afile)
    with pytest.raises(TypeError, match="path must be a run directory"):
        nbviz.follow(3)
    with pytest.raises(ValueError, match="interval must be a number of seconds > 0"):
        nbviz.follow(tmp_path, interval=0)
    with pytest.raises(ValueError, match="log_every must be a number of seconds > 0"):
        TrainingRecorder(small_cnn(), logdir=tmp_path, log_every=-1)


def confusion_epochs(cm, epochs: int = 3) -> None:
    data = shapes_data()
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        for i in range(0, 48, 16):
            scores = torch.randn(16, 6, generator=gen) + 2 * torch.nn.functional.one_hot(
                data.labels[i : i + 16], 6
            )
            cm.update(scores, data.labels[i : i + 16], data.images[i : i + 16])
        if epoch < epochs - 1:
            cm.end_epoch()  # the last epoch stays open


def test_a_confusion_matrix_recorded_and_followed_shows_what_the_live_one_shows(tmp_path):
    cm = nbviz.ConfusionMatrix(classes=shapes_data().classes, logdir=tmp_path, log_every=0.001)
    confusion_epochs(cm)
    cm.close_log()
    cm.close_log()  # idempotent
    cm.flush()
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        wait_for(lambda: view.confusion is not None and not view.confusion.pending, "the matrix")
        live, followed = cm.get_state(), view.confusion.get_state()
        for key in ("classes", "counts_index", "counts_value", "epoch", "epoch_open"):
            assert_same(live[key], followed[key], key)
        for key in ("history_index", "history_value", "history_offsets"):
            assert_same(live[key], followed[key], key)
        for key in ("examples_cells", "examples_images"):
            assert_same(live[key], followed[key], key)
        assert live["epoch"] == 3 and live["epoch_open"]
        assert view.status.value == f"following {tmp_path}: confusion matrix: epoch 3"
        assert view.view.layout.display == "none"  # no monitor records: no empty dashboard
        np.testing.assert_array_equal(view.confusion.history[1], cm.history[1])
        np.testing.assert_array_equal(view.confusion.examples(0, 0), cm.examples(0, 0))
    finally:
        view.close()


def test_an_unexpected_error_while_following_is_said_in_the_view(tmp_path, monkeypatch):
    model = small_cnn()
    rec = TrainingRecorder(model, logdir=tmp_path, log_every=0.001)
    train(rec, model, 2)
    view = nbviz.follow(tmp_path, interval=0.005)

    def broken() -> int:
        raise KeyError("steps")

    monkeypatch.setattr(view.run, "update", broken)
    wait_for(lambda: not view.following, "the follower to stop")
    assert view.status.value == "stopped following: KeyError: 'steps'"
    rec.detach()
    view.close()


def test_a_long_run_rolls_into_checkpoints_and_stays_bounded(tmp_path, monkeypatch):
    """Past MonitorLog.roll_bytes a segment is replaced by a checkpoint of the recorder's
    bounded state: the run's files stop growing with its steps, a reader that followed all
    along and one that starts at the end both equal the recorder, merges included."""
    from nbviz.monitor.runlog import MonitorLog

    monkeypatch.setattr(MonitorLog, "roll_bytes", 20_000)
    model = small_cnn()
    rec = merging_recorder(model, tmp_path)
    along = RecordedRun(tmp_path)
    sizes = []
    for _ in range(6):
        train(rec, model, 40)
        rec.log.writer.flush()  # the writer's thread caught up (a queued roll is done)
        along.update()
        sizes.append(sum(f.stat().st_size for f in tmp_path.glob("*.nbrun")))
    rec.detach()
    along.update()
    live = rec.snapshot()
    assert live["strides"]["grad_norm"] >= 16  # merged many times
    assert_same(live, along.snapshot())
    late = RecordedRun(tmp_path)
    late.update()
    assert_same(live, late.snapshot())
    assert len(list(tmp_path.glob("*.nbrun"))) == 1  # the old segments went
    # Bounded: the segment holds a checkpoint (the bounded state; its scalars grow 16 bytes
    # a point) plus about roll_bytes of newer records, however many steps went by.
    from nbviz.monitor.runlog import checkpoint
    from nbviz.runs.format import encode

    assert max(sizes) < len(encode(checkpoint(rec))) + 2 * MonitorLog.roll_bytes, sizes
    assert max(sizes[3:]) < 1.2 * max(sizes[:3]), sizes  # no growth with the steps


def test_the_run_records_the_graph_once_and_the_follower_colours_it(tmp_path):
    """Traced on the probe when watch starts (before any hook of nbviz's is on the model),
    recorded once; the follower draws it coloured by each layer's latest gradient norm."""
    model = small_cnn()
    mon = nbviz.watch(model, probe=shapes_data().images[:4], logdir=tmp_path, log_every=0.001)
    train(mon, model, 6)
    mon.detach()
    assert len(list(tmp_path.glob("monitor-graph.nbrec"))) == 1
    view = nbviz.follow(tmp_path, interval=0.01)
    norms = mon.gradient_norms()

    def coloured_by_the_last_step() -> bool:  # the records may arrive over several reads
        if view.graph is None or view.graph.pending:
            return False
        values = (view.graph.overlay_data or {}).get("values", {})
        return all(values.get(k) == pytest.approx(v) for k, v in norms.items())

    try:
        wait_for(coloured_by_the_last_step, "the graph, coloured by the last step's norms")
        want = nbviz.trace(small_cnn(), shapes_data().images[:4]).to_dict()
        got = view.graph.traced.to_dict()
        assert [n["id"] for n in got["nodes"]] == [n["id"] for n in want["nodes"]]
        assert set(got["modules"]) == set(want["modules"])
        overlay = view.graph.overlay_data
        assert overlay["label"] == "gradient norm (latest)"
        for layer, norm in norms.items():  # every layer, by its module path
            assert overlay["values"][layer] == pytest.approx(norm)
        # A folded box (a block) is coloured by its layers' norms together.
        block = [n for layer, n in norms.items() if layer.startswith("features.block2.")]
        assert overlay["values"]["features.block2"] == pytest.approx(
            np.sqrt(np.sum(np.square(block)))
        )
        assert view.children.index(view.graph) == view.children.index(view.view) + 1
    finally:
        view.close()


def test_a_given_graph_is_recorded_and_no_probe_means_no_graph(tmp_path):
    model = small_cnn()
    graph = nbviz.ModelGraph(model, shapes_data().images[:1])
    mon = nbviz.watch(model, graph=graph, logdir=tmp_path / "given", log_every=0.001)
    train(mon, model, 2)
    mon.detach()
    run = RecordedRun(tmp_path / "given")
    run.update()
    assert run.graph == graph.traced.to_dict()
    plain = nbviz.watch(small_cnn(), logdir=tmp_path / "plain", log_every=0.001)
    plain.detach()
    run = RecordedRun(tmp_path / "plain")
    run.update()
    assert run.graph is None


def test_a_hugging_face_model_watched_with_a_keyword_probe(tmp_path):
    """watch's probe as keyword inputs (``pixel_values``): feature maps of the patch
    embedding, thumbnails of the images, and the graph traced on them, recorded."""
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = hf_vit(image_size=32, layers=2, width=32, num_labels=6)
    data = shapes_data()
    probe = {"pixel_values": data.images[:4]}
    mon = nbviz.watch(model, probe=probe, features_every=2, logdir=tmp_path, log_every=0.001)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for s in range(4):
        out = model(pixel_values=data.images[s * 8 : s * 8 + 8])
        loss = torch.nn.functional.cross_entropy(out.logits, data.labels[s * 8 : s * 8 + 8])
        opt.zero_grad()
        loss.backward()
        mon.step(loss=loss)
        opt.step()
    mon.detach()
    rec = mon.recorder
    assert rec.feature_layers == ["vit.embeddings.patch_embeddings.projection"]
    assert rec.features["vit.embeddings.patch_embeddings.projection"].shape[:2] == (4, 16)
    assert rec.feature_probe.thumbnails().shape[0] == 4
    run = RecordedRun(tmp_path)
    run.update()
    assert "vit.layers.1.attention.q_proj" in run.graph["modules"]  # (transformers 5 names)
    assert torch.equal(probe["pixel_values"], data.images[:4])  # the caller's probe as it was
    with pytest.raises(
        ValueError, match=r"model\(\*\*probe\) with \{'pixel_values': \(4, 3, 9, 9\)\}"
    ):
        nbviz.watch(model, probe={"pixel_values": torch.zeros(4, 3, 9, 9)})
