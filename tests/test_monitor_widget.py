"""nbviz.watch's dashboard through its synced state, and its link to ModelGraph."""

import ipywidgets
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbviz
from nbviz.examples import SmallCNN

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
        assert set(norms) == set(mon.watcher.layers) and all(v > 0 for v in norms.values())
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
    assert state["steps"] == 4 and state["layers"] == mon.watcher.layers
    assert set(state["scalars"]) == {"loss", "acc"}
    assert state["scalars"]["loss"]["steps"]["shape"] == [4]
    assert state["flow"]["grad_norm"]["rows"]["shape"][1] == len(mon.watcher.layers)
    assert len(state["features"]) == 4 and state["probe_images"]["shape"][0] == 4
    assert [c["name"] for c in state["curves"]] == ["loss", "acc"]
    assert len(mon.curves.children) == 2
    mon.detach()
    assert mon.view.detached and not mon.watcher.attached
    with pytest.raises(RuntimeError, match="detached"):
        mon.step(loss=1.0)


def test_validation_passes_under_no_grad_leave_no_trace():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    w = nbviz.monitor.Watcher(model, every=1)
    x = torch.randn(8, 4)
    model(x).sum().backward()
    with torch.no_grad():
        model(torch.full((8, 4), float("nan")))  # a validation pass with NaN: not training
    w.step(loss=1.0)
    assert w.snapshot()["nonfinite"] is None
    w.detach()


def test_an_empty_batch_passes_through():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    w = nbviz.monitor.Watcher(model)
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
