"""Modules as the graph shows them however the model holds or compiles them: TorchScript
(`torch.jit.trace` and `torch.jit.script`), modules kept in plain lists and dicts, lazy
modules; and inputs a model cannot take."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nbviz.graph.script import ScriptRunner, runnable
from nbviz.graph.trace import trace
from tests.models import example_input, gpt, resnet18, resnet50, vit
from tests.test_graph_auto import same_graph
from tests.test_graph_trace import _global_hooks, _same, _snapshot

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:`torch.jit.(trace|trace_method|script)` is deprecated"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]


def module_calls(g) -> list[tuple[str, str, int]]:
    return [(n["path"], n["type"], n["call"]) for n in g.nodes if n["kind"] == "module"]


# --- TorchScript -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "vit", "gpt"])
def test_a_jit_traced_model_has_its_modules_and_readable_ops(name):
    from tests import models

    torch.manual_seed(0)
    model, x = getattr(models, name)().eval(), example_input(name)
    traced = torch.jit.trace(model, x)
    before = _snapshot(traced)
    g = trace(traced, x)
    python = trace(model, x)
    assert g.error is None and g.mode == "real"
    assert g.model == type(model).__name__ and g.node(g.root)["path"] == ""
    assert [n["name"] for n in g.inputs] == ["x" if name != "gpt" else "idx"]
    # The module calls of the Python model, by path and class, but for a module called a
    # second time in one forward (ResNet's relu), which torch.jit.trace inlines.
    calls = module_calls(g)
    assert calls == [c for c in module_calls(python) if c[2] == 0]
    assert g.modules.keys() == python.modules.keys()
    assert [m["type"] for m in g.modules.values()] == [m["type"] for m in python.modules.values()]
    # Ops are aten operators by their own names, inside the module that ran them.
    names = {(n["name"], n["type"]) for n in g.ops()}
    assert ("linear", "aten.linear") in names
    assert not any("." in n["name"] or "Script" in n["type"] for n in g.ops())
    head = "fc" if name == "resnet18" else "head" if name == "vit" else "lm_head"
    (call,) = g.calls(head)
    assert [c["name"] for c in g.children(call["id"])] == ["linear"]
    assert g.total_flops == python.total_flops and g.total_params == python.total_params
    assert g.outputs[0]["outputs"] == python.outputs[0]["outputs"]
    assert g.repeats == python.repeats or name == "resnet18"  # (its relus: see above)
    assert _same(_snapshot(traced), before) and _global_hooks() == (0, 0, 0)
    assert "forward" not in vars(traced)  # the runner's stand-in is gone
    assert not any("repr failed" in m["repr"] for m in g.modules.values())


class Scripted(nn.Module):
    """Loops, branches, an Optional argument, a list and a Python function (F.relu)."""

    def __init__(self):
        super().__init__()
        self.step = nn.Linear(3, 3)
        self.layers = nn.ModuleList([nn.Linear(3, 3), nn.ReLU()])

    def forward(self, x, n: int = 2, scale: float | None = None):
        for _ in range(n):
            x = self.step(x)
        for layer in self.layers:
            x = layer(x)
        kept: list[torch.Tensor] = []
        kept.append(x)
        if x.sum() > 0:
            x = x * 2
        if scale is not None:
            x = x * scale
        return torch.cat(kept + [x], dim=1)


def test_a_scripted_model_runs_node_by_node_with_its_control_flow():
    torch.manual_seed(0)
    model = torch.jit.script(Scripted())
    x = torch.randn(2, 3)
    g = trace(model, x, n=3, scale=0.5)
    assert g.error is None and g.model == "Scripted"
    assert [c["path"] for c in g.calls("step")] == ["step"] * 3  # the loop, three times
    assert [c["call"] for c in g.calls("step")] == [0, 1, 2]
    assert [n["type"] for n in g.children(g.calls("layers.1")[0]["id"])] == ["F.relu"]
    assert [n["name"] for n in g.ops()][-4:] == ["gt", "mul", "mul", "cat"]
    assert g.outputs[0]["outputs"] == [{"shape": [2, 6], "dtype": "float32"}]
    # The runner computes what TorchScript computes.
    quiet = ScriptRunner(lambda *a: None, lambda *a: None)
    for kwargs in ({}, {"n": 0}, {"n": 1, "scale": -1.0}):
        with torch.no_grad():
            expected = model(x, **kwargs)
            assert torch.equal(quiet.method(model, "forward", (x,), kwargs), expected)


class Converts(nn.Module):
    """dtypes, a memory format and a raise: TorchScript passes them as numbers and nodes."""

    def forward(self, x):
        y = x.to(torch.float64).contiguous(memory_format=torch.channels_last)
        if x.sum() > 1e9:
            raise RuntimeError("too big")
        return y.float() + torch.zeros(2, dtype=torch.int32).sum()


def test_script_dtypes_memory_formats_and_raises_run_as_in_torchscript():
    model, x = torch.jit.script(Converts()), torch.randn(1, 2, 3, 3)
    g = trace(model, x)
    assert g.error is None
    assert [n["name"] for n in g.ops()] == [
        "to",
        "contiguous",
        "sum",
        "gt",
        "to",
        "zeros",
        "sum",
        "add",
    ]
    quiet = ScriptRunner(lambda *a: None, lambda *a: None)
    with torch.no_grad():
        assert torch.equal(quiet.method(model, "forward", (x,), {}), model(x))
        with pytest.raises(RuntimeError, match="too big"):
            quiet.method(model, "forward", (x + 1e10,), {})
    failed = trace(model, x + 1e10)
    assert failed.error["type"] == "RuntimeError" and "too big" in failed.error["message"]


def test_script_the_runner_does_not_know_stays_one_box():
    class Counts(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1  # an attribute write: prim::SetAttr
            return self.fc(x)

    model = torch.jit.script(Counts())
    assert not runnable(model)
    g = trace(model, torch.zeros(1, 3))
    assert g.error is None and module_calls(g) == [("", "Counts", 0)]
    assert g.outputs[0]["outputs"] == [{"shape": [1, 3], "dtype": "float32"}]


def test_a_scripted_submodule_error_points_at_its_op():
    model = nn.Sequential(torch.jit.script(nn.Linear(3, 4)), nn.ReLU())
    g = trace(model, torch.zeros(1, 5))
    assert g.error is not None and g.node(g.error["node"])["name"] == "linear"
    assert g.node(g.error["node"])["path"] == "0"


# --- modules the model does not register -------------------------------------------------


class Unregistered(nn.Module):
    """Modules in a list, a dict and a tuple, one made on the fly; one registered."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.blocks = [nn.Linear(4, 4) for _ in range(3)]
        self.norms = (nn.BatchNorm1d(4),)
        self.heads = {"cls": nn.Sequential(nn.Linear(4, 2), nn.ReLU())}

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = nn.Tanh()(self.norms[0](x))
        return self.heads["cls"](x)


@pytest.mark.parametrize("mode", ["auto", "real", "meta", "fake"])
def test_modules_in_plain_lists_show_as_module_calls(mode):
    model = Unregistered().train()
    norm = model.norms[0]
    stats = (norm.running_mean.clone(), int(norm.num_batches_tracked))
    g = trace(model, torch.randn(3, 4), mode=mode)
    assert g.error is None
    assert module_calls(g) == [
        ("", "Unregistered", 0),
        ("stem", "Linear", 0),
        ("blocks[0]", "Linear", 0),
        ("blocks[1]", "Linear", 0),
        ("blocks[2]", "Linear", 0),
        ("norms[0]", "BatchNorm1d", 0),
        ("<Tanh>", "Tanh", 0),
        ("heads['cls']", "Sequential", 0),
        ("heads['cls'].0", "Linear", 0),
        ("heads['cls'].1", "ReLU", 0),
    ]
    (block,) = g.calls("blocks[1]")
    assert block["params"] == block["params_total"] == 20
    assert [(c["name"], c["type"]) for c in g.children(block["id"])] == [("linear", "F.linear")]
    assert g.predecessors(g.children(block["id"])[0]["id"])[0]["path"] == "blocks[0]"
    assert g.modules["heads['cls'].0"]["params_own"] == 10
    assert g.modules[""]["params_total"] == 20  # what model.parameters() holds: the stem
    assert [[g.node(i)["path"] for i in r] for r in g.repeats] == [
        ["stem", "blocks[0]", "blocks[1]", "blocks[2]"]
    ]
    # Their state is put back too (a real pass updates BatchNorm statistics in training).
    assert torch.equal(norm.running_mean, stats[0]) and int(norm.num_batches_tracked) == stats[1]
    assert not norm.running_mean.is_meta and not model.blocks[0].weight.is_meta
    assert _global_hooks() == (0, 0, 0)
    if mode != "meta":
        hist = g.modules["blocks[0]"]["histogram"]
        assert hist is not None and sum(hist["counts"]) == 20


def test_unregistered_modules_graph_is_the_real_one_on_meta():
    model, x = Unregistered().eval(), torch.randn(3, 4)
    assert same_graph(trace(model, x, mode="meta"), trace(model, x, mode="real"))


# --- lazy modules ------------------------------------------------------------------------------


def test_lazy_modules_are_refused_with_how_to_initialise_them():
    model = nn.Sequential(nn.Linear(4, 4), nn.LazyLinear(3), nn.LazyBatchNorm1d())
    for mode in ("auto", "real", "meta"):
        with pytest.raises(ValueError) as info:
            trace(model, torch.zeros(2, 4), mode=mode)
        message = str(info.value)
        assert "lazy modules (1: LazyLinear, 2: LazyBatchNorm1d)" in message
        assert "with torch.no_grad(): model(x)" in message
    assert type(model[1]) is nn.LazyLinear and model[1].has_uninitialized_params()
    with torch.no_grad():  # as the message says
        model(torch.zeros(2, 4))
    g = trace(model, torch.zeros(2, 4))
    assert g.error is None and [c["type"] for c in g.children(g.root)] == [
        "Linear",
        "Linear",
        "BatchNorm1d",
    ]


# --- inputs a model cannot take ---------------------------------------------------------------


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_2d_input_to_a_conv_model_says_what_was_expected(size, monkeypatch):
    from nbviz.graph import trace as trace_module

    if size == "large":  # auto's meta pass fails first, then the real pass reports
        monkeypatch.setattr(trace_module, "choose", lambda *a, **k: "meta")
    model = (resnet18() if size == "small" else resnet50()).train()
    before = _snapshot(model)
    x = torch.randn(2, 8)
    copy = x.clone()
    g = trace(model, x)
    assert g.mode == "real" and g.error["type"] == "RuntimeError"
    assert "Expected 3D (unbatched) or 4D (batched) input to conv2d" in g.error["message"]
    assert "[2, 8]" in g.error["message"]
    failed = g.node(g.error["node"])
    assert (failed["name"], failed["path"]) == ("conv2d", "conv1")
    assert g.node(failed["parent"])["error"] is None and g.node(g.root)["flops"] is None
    assert "Forward failed at conv1: RuntimeError: Expected 3D" in g.summary()
    assert _same(_snapshot(model), before) and torch.equal(x, copy)


def test_wrong_channels_and_float_ids_say_what_was_expected():
    g = trace(resnet18(), torch.randn(1, 1, 32, 32))
    assert "expected input[1, 1, 32, 32] to have 3 channels" in g.error["message"]
    assert g.node(g.error["node"])["path"] == "conv1"
    g = trace(gpt(), torch.randn(2, 16))
    assert g.error is not None and g.node(g.error["node"])["name"] == "embedding"
    assert "Long, Int" in g.error["message"] or "indices" in g.error["message"]
    assert trace(vit(), torch.randn(2, 3, 32, 32)).error is None
