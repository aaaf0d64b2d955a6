"""nbviz.watch's dashboard through its synced state, and its link to ModelGraph."""

import bqplot
import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monitor_helpers import (  # tests/ is on the path (pytest's rootdir-relative import)
    CNN_LAYERS,
    direct_grad_stats,
    randn,
    shapes_data,
    small_cnn,
    tiny,
    train_step,
)
from torch import nn

import nbviz
from nbviz.examples import SmallCNN
from nbviz.monitor import Monitor

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def train_steps(model, mon, steps, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for s in range(steps):
        x, y = data.images[s * 8 : s * 8 + 8], data.labels[s * 8 : s * 8 + 8]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        mon.step(loss=loss, acc=(out.argmax(1) == y).float().mean())
        opt.step()


def test_graph_overlay_follows_the_gradient_norms():
    data = nbviz.datasets.shapes(48, size=32, seed=0)
    model = SmallCNN(num_classes=6, width=8)
    graph = nbviz.ModelGraph(model, data.images[:1])
    with nbviz.watch(model, graph=graph, every=2, hist_every=2) as mon:
        train_steps(model, mon, 5, data)
        mon.flush()
        norms = mon.gradient_norms()
        assert set(norms) == set(mon.recorder.layers) and all(v > 0 for v in norms.values())
        graph.flush()
        overlay = graph.overlay_data
        assert overlay["label"] == "gradient norm"
        assert set(overlay["values"]) == set(norms)
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(TypeError, match="nbviz.ModelGraph"):
        nbviz.watch(model, graph="not a graph")
    assert not any(m._forward_hooks for m in model.modules())


def test_state_after_steps_and_detach():
    data = nbviz.datasets.shapes(48, size=32, seed=1)
    model = SmallCNN(num_classes=6, width=8)
    mon = nbviz.watch(model, probe=data.images[:4], every=2, hist_every=2, features_every=2)
    train_steps(model, mon, 4, data)
    mon.flush()
    state = mon.view.get_state()
    assert state["steps"] == 4 and state["layers"] == mon.recorder.layers
    assert set(state["scalars"]) == {"loss", "acc"}
    assert state["scalars"]["loss"]["steps"]["shape"] == [4]
    assert state["flow"]["grad_norm"]["rows"]["shape"][1] == len(mon.recorder.layers)
    assert len(state["features"]) == 4 and state["probe_images"]["shape"][0] == 4
    assert [c["name"] for c in state["curves"]] == ["loss", "acc"]
    assert len(mon.curves.children) == 2
    mon.detach()
    assert mon.view.detached and not mon.recorder.attached
    with pytest.raises(RuntimeError, match="detached"):
        mon.step(loss=1.0)


def test_validation_passes_under_no_grad_leave_no_trace():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    w = nbviz.monitor.TrainingRecorder(model, every=1)
    x = torch.randn(8, 4)
    model(x).sum().backward()
    with torch.no_grad():
        model(torch.full((8, 4), float("nan")))  # a validation pass with NaN: not training
    w.step(loss=1.0)
    assert w.snapshot()["nonfinite"] is None
    w.detach()


def test_an_empty_batch_passes_through():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    w = nbviz.monitor.TrainingRecorder(model)
    model(torch.zeros(0, 4)).sum().backward()
    w.step(loss=0.0)
    assert w.snapshot()["nonfinite"] is None
    w.detach()


def test_watch_takes_a_layout_like_the_other_widgets():
    model = nn.Sequential(nn.Linear(4, 2))
    mon = nbviz.watch(model, layout=ipywidgets.Layout(width="500px"))
    try:
        assert mon.layout.width == "500px"
    finally:
        mon.detach()


def test_widget_state_after_some_steps():
    data = shapes_data()
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = nbviz.watch(model, probe=data.images[:4], every=2, hist_every=2, features_every=3)
    assert isinstance(mon, Monitor) and isinstance(mon, ipywidgets.VBox)
    for _ in range(7):
        train_step(model, opt, data.images[:8], data.labels[:8], mon)
    mon.log_val(loss=0.5, acc=torch.tensor(0.25))
    mon.view.flush()
    state = mon.view.get_state()
    for key in ("layers", "flow", "latest", "histograms", "features", "scalars"):
        assert state[key], key
    assert state["layers"] == CNN_LAYERS and state["steps"] == 7
    assert set(state["flow"]) == {"grad_norm", "grad_max", "ratio", "dead"}
    g = state["flow"]["grad_norm"]["rows"]
    assert g["shape"] == [7, len(CNN_LAYERS)] and g["dtype"] == "float32"
    assert set(state["scalars"]) == {"loss", "acc"} and set(state["val"]) == {"loss", "acc"}
    assert state["scalars"]["loss"]["values"]["shape"] == [7]
    assert set(state["histograms"]) == {
        f"{layer}|{kind}"
        for layer in mon.recorder.hist_layers
        for kind in ("weights", "gradients", "activations")
    }
    assert set(state["features"]) == set(mon.recorder.feature_layers)
    assert state["features_step"] == 6
    figures = mon.curves.children
    assert [f.title for f in figures] == ["loss", "acc"]
    assert all(isinstance(f, bqplot.Figure) for f in figures)
    assert [c["name"] for c in state["curves"]] == ["loss", "acc"]
    norms = mon.gradient_norms()
    assert list(norms) == CNN_LAYERS
    np.testing.assert_allclose(
        list(norms.values()), direct_grad_stats(model, CNN_LAYERS)[0], rtol=1e-5
    )
    mon.detach()
    assert mon.view.get_state()["detached"] is True


def test_widget_pushes_are_throttled_and_flushed(monkeypatch, clock):
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nbviz.watch(model, every=5, hist_every=10, max_rate=2.0)
    pushes = []
    monkeypatch.setattr(mon.view, "send_state", lambda key=None: pushes.append(key))
    x, y = randn(8, 4), torch.arange(8) % 2
    for step in range(100):  # 100 steps within 0.99 s of (fake) time
        clock.now = 10.0 + step * 0.01
        train_step(model, opt, x, y, mon)
    assert 1 <= len(pushes) <= 2, len(pushes)  # ~2 refreshes a second, not 100
    assert mon.view.steps < mon.recorder.steps == 100
    n = len(pushes)
    mon.view.flush()  # what the end of the cell does
    assert len(pushes) == n + 1
    assert mon.view.steps == mon.recorder.steps == 100
    assert mon.view.scalars["loss"]["steps"][-1] == 99
    mon.view.flush()  # nothing new: nothing sent
    assert len(pushes) == n + 1
    mon.detach()


def test_old_names_still_work_with_a_deprecation_warning():
    """0.1's Watcher, MonitorView and Monitor.watcher: the same objects, and a warning naming
    the new name."""
    with pytest.warns(DeprecationWarning, match="nbviz.monitor.TrainingRecorder"):
        assert nbviz.monitor.Watcher is nbviz.monitor.TrainingRecorder
    with pytest.warns(DeprecationWarning, match="nbviz.monitor.MonitorPanels"):
        assert nbviz.monitor.MonitorView is nbviz.monitor.MonitorPanels
    with nbviz.watch(SmallCNN(width=4)) as mon:
        with pytest.warns(DeprecationWarning, match="Monitor.recorder"):
            assert mon.watcher is mon.recorder
    with pytest.raises(AttributeError, match="Watchr"):
        nbviz.monitor.Watchr  # noqa: B018
