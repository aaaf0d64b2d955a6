"""ModelGraph through its synced state: the graph once, the overlay throttled."""

import json

import numpy as np
import pytest
import torch

import nbviz
from tests.models import resnet18


@pytest.fixture
def net():
    return resnet18()


def test_state_carries_the_traced_graph(net):
    g = nbviz.ModelGraph(net, torch.randn(1, 3, 32, 32), depth=2, title="ResNet-18")
    state = g.get_state()
    assert state["depth"] == 2 and state["title"] == "ResNet-18"
    graph = state["graph"]
    assert graph["root"] == g.traced.root and graph["model"] == "ResNet"
    assert graph["modules"][""]["params_total"] == sum(p.numel() for p in net.parameters())
    # weight histograms are filled in for the details panel
    assert graph["modules"]["conv1"]["histogram"]["counts"]
    json.dumps(graph)  # what the comm sends
    assert state["overlay_data"] is None


def test_graph_argument_and_bad_arguments(net):
    traced = nbviz.trace(net, torch.randn(1, 3, 32, 32))
    assert nbviz.ModelGraph(graph=traced).get_state()["graph"]["root"] == traced.root
    with pytest.raises(TypeError, match="needs a model"):
        nbviz.ModelGraph()
    with pytest.raises(TypeError, match="not both"):
        nbviz.ModelGraph(net, graph=traced)
    with pytest.raises(ValueError, match="depth must be an int >= 0"):
        nbviz.ModelGraph(graph=traced, depth=-1)
    with pytest.raises(TypeError, match="nbviz.Graph"):
        nbviz.ModelGraph(graph={"nodes": []})
    # A misspelt keyword of ModelGraph's own raises; it used to reach the model's forward.
    with pytest.raises(TypeError, match=r"ModelGraph got the keyword 'dept'.*did you mean 'depth'"):
        nbviz.ModelGraph(net, torch.randn(1, 3, 32, 32), dept=2)
    g = nbviz.ModelGraph(net, torch.randn(2, 3, 32, 32), device="cpu")  # trace's own, passed on
    assert g.get_state()["graph"]["error"] is None
    with pytest.raises(TypeError, match="torch.nn.Module"):
        nbviz.ModelGraph(lambda x: x, torch.randn(1), dept=2)  # not a model: trace says so


def test_numpy_inputs_are_converted(net):
    # As in every nbviz widget: a numpy batch (float64 by default) is traced like a tensor.
    g = nbviz.ModelGraph(net, np.random.default_rng(0).random((2, 3, 32, 32)))
    graph = g.get_state()["graph"]
    assert graph["error"] is None
    assert graph["nodes"][0]["outputs"] == [{"shape": [2, 3, 32, 32], "dtype": "float32"}]
    with pytest.raises(TypeError, match=r"^input args\[0\] is a numpy array of dtype object"):
        nbviz.ModelGraph(net, np.array([None]))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_forward_kwargs_reach_the_model():
    class Scaled(torch.nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale

    g = nbviz.ModelGraph(Scaled(), torch.ones(2), scale=3.0)
    assert [n["name"] for n in g.traced.ops()] == ["mul"]


def test_overlay_by_path_or_module_and_validation(net):
    g = nbviz.ModelGraph(net, torch.randn(1, 3, 32, 32), max_rate=None)
    g.overlay({"conv1": 0.5, net.layer1: torch.tensor(2.0), "fc": float("nan")}, label="grad norm")
    data = g.get_state()["overlay_data"]
    assert data == {"label": "grad norm", "values": {"conv1": 0.5, "layer1": 2.0, "fc": None}}
    json.dumps(data)
    with pytest.raises(ValueError, match="unknown: nope"):
        g.overlay({"nope": 1.0})
    with pytest.raises(ValueError, match="must be a scalar"):
        g.overlay({"conv1": torch.ones(3)})
    with pytest.raises(ValueError, match="must be a number"):
        g.overlay({"conv1": "big"})
    with pytest.raises(TypeError, match="mapping"):
        g.overlay([1, 2])
    assert g.get_state()["overlay_data"]["values"]["conv1"] == 0.5  # bad calls changed nothing
    g.overlay(None)
    assert g.get_state()["overlay_data"] is None


def test_overlay_pushes_are_throttled_and_flushed(net, monkeypatch, clock):
    g = nbviz.ModelGraph(net, torch.randn(1, 3, 32, 32), max_rate=10)
    sent = []
    monkeypatch.setattr(g, "_send", lambda msg, buffers=None: sent.append(msg))
    for step in range(100):  # a training loop calling overlay every step for 1 s
        clock.now = 1.0 + step * 0.01
        g.overlay({"conv1": float(step)}, label="step")
    assert 9 <= len(sent) <= 11
    assert all(set(m["state"]) == {"overlay_data"} for m in sent)  # never the graph again
    g.flush()
    assert sent[-1]["state"]["overlay_data"]["values"]["conv1"] == 99.0
