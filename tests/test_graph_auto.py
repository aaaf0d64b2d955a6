"""The default graph is the real forward's: what ``mode="auto"`` runs, what a meta pass
stands in for, and what tracing must leave as it found.

"The same graph" is defined once, in `same_graph`: `Graph.to_dict()` equal key for key
(every node with its id, kind, name, type, path, parent, call, input and output shapes,
parameters, FLOPs, in-place flag and error; every edge; every module entry with its
repr, parameters and weight histogram; the repeats, the root and the error). Only
``graph.mode``, which says how the graph was made, may differ.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nbviz
from nbviz.graph import auto
from nbviz.graph import trace as trace_module
from nbviz.graph.trace import NeedsValues, trace
from tests.models import ZOO, example_input, gpt, resnet50, vit

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:`torch.jit.(trace|trace_method)` is deprecated"),
]
REPO = Path(__file__).resolve().parents[1]


def same_graph(a: nbviz.Graph, b: nbviz.Graph) -> bool:
    """Equal in everything the graph says of the forward (``mode`` aside): see the module
    docstring. A JSON round trip first, so a tuple and a list of the same shape match."""
    return json.loads(json.dumps(a.to_dict())) == json.loads(json.dumps(b.to_dict()))


# --- reference models ----------------------------------------------------------------------


def hf_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


def hf_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=100, max_position_embeddings=64,
    )  # fmt: skip
    return BertModel(config).eval()


IDS = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(0))
MASKS = {
    "all ones": torch.ones(2, 10, dtype=torch.long),
    "padded": torch.tensor([[1] * 10, [1] * 7 + [0] * 3]),
}


def reference(name: str) -> tuple[nn.Module, tuple, dict]:
    """A reference model (seeded) with its inputs: every model of tests.models in train
    and in eval mode, and transformers' GPT-2 and BERT with an attention mask."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if name.startswith(("gpt2", "bert")):
            kind, mask = name.split(" ", 1)
            model = hf_gpt2() if kind == "gpt2" else hf_bert()
            return model, (), {"input_ids": IDS, "attention_mask": MASKS[mask]}
        base, _, state = name.partition(" ")
        model = ZOO[base]().train(state == "train")
        return model, (example_input(base),), {}


REFERENCES = [
    *(f"{n} {s}" for n in sorted(ZOO) for s in ("train", "eval")),
    *(f"{m} {mask}" for m in ("gpt2", "bert") for mask in MASKS),
]


@pytest.fixture
def meta_first(monkeypatch):
    """Make auto choose a meta pass first, whatever the model's size."""
    monkeypatch.setattr(trace_module, "choose", lambda *a, **k: "meta")


# --- the default graph is the real one -------------------------------------------------------


@pytest.mark.parametrize("name", REFERENCES)
def test_default_graph_equals_real_mode(name):
    model, args, kwargs = reference(name)
    real = trace(model, *args, mode="real", **kwargs)
    default = trace(model, *args, **kwargs)
    assert real.mode == "real" and real.error is None
    assert same_graph(default, real)


@pytest.mark.parametrize("name", REFERENCES)
def test_auto_equals_real_mode_when_it_runs_meta_first(name, meta_first):
    """Where auto's estimate picks meta, the graph is still the real forward's: the meta
    pass runs the same code or stops at the first value it needs, and real takes over."""
    model, args, kwargs = reference(name)
    real = trace(model, *args, mode="real", **kwargs)
    auto_graph = trace(model, *args, **kwargs)
    assert same_graph(auto_graph, real)
    meta = trace(model, *args, mode="meta", **kwargs)
    needs_values = name.startswith("branchy")  # it branches on a value computed by a layer
    assert auto_graph.mode == ("real" if needs_values else "meta")
    if needs_values:
        assert meta.error["type"] == "NeedsValues" and "mode='real'" in meta.error["message"]
    else:  # transformers' checks of the attention mask read the mask itself: it has values
        assert same_graph(meta, real)


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_fake_tensors_take_another_path_in_transformers(kind):
    """Why auto never falls back to fake tensors: transformers skips the mask for an
    all-ones attention mask on real tensors, but builds it explicitly on fake ones."""
    model, args, kwargs = reference(f"{kind} all ones")
    real = trace(model, *args, mode="real", **kwargs)
    fake = trace(model, *args, mode="fake", **kwargs)
    assert fake.error is None and len(fake.ops()) > len(real.ops())
    assert trace(model, *args, **kwargs).mode == "real"


class DeviceAware(nn.Module):
    """Asks its tensors where they are, in all the usual ways, and branches on it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device).to(x.device, torch.float32)
        y = self.fc(x) + pos
        on_cpu = x.device.type == "cpu" and x.is_cpu and not x.is_meta and not x.is_cuda
        y = y.relu() if on_cpu and str(x.device) == "cpu" and x.get_device() == -1 else y.exp()
        if self.fc.weight.device == torch.device("cpu"):
            y = y * 2
        z = torch.zeros(4, device="cpu") + y.cpu()  # a factory with the model's device
        return z.to("cpu").tanh()


def test_meta_tensors_report_the_models_device():
    model, x = DeviceAware(), torch.randn(2, 4)
    real = trace(model, x, mode="real")
    meta = trace(model, x, mode="meta")
    assert meta.error is None and same_graph(meta, real)
    assert [n["name"] for n in meta.ops()][4:6] == ["relu", "mul"]  # the CPU branches


@pytest.mark.parametrize(
    "read",
    [
        lambda t: t.sum().item(),
        lambda t: t.tolist(),
        lambda t: bool(t.sum() > 0),
        lambda t: int(t.sum()),
        lambda t: float(t.sum()),
        lambda t: t.numpy(),
        lambda t: torch.equal(t, t),
        lambda t: t.data_ptr(),
        lambda t: repr(t),
    ],
)
def test_a_meta_pass_stops_at_every_value_read(read):
    class Reads(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            read(x)  # the input has values: read as in the real run
            y = self.fc(x)
            read(y)  # computed from the weights: a meta pass has none
            return y * 2

    meta = trace(Reads(), torch.ones(3), mode="meta")
    assert meta.error["type"] == NeedsValues.__name__
    assert "computed from the weights; a meta pass has shapes only" in meta.error["message"]
    assert "mode='real'" in meta.error["message"]
    failed = meta.node(meta.error["node"])
    assert failed["kind"] == "op" and failed["path"] == "" and meta.calls("fc")
    assert trace(Reads(), torch.ones(3)).error is None


def test_a_model_on_the_meta_device_traces_with_its_attention_mask():
    """The inputs keep their values on a meta pass: transformers reads the mask itself."""
    with torch.device("meta"):
        on_meta = hf_gpt2()
    model, args, kwargs = reference("gpt2 padded")
    g = trace(on_meta, *args, **kwargs)
    real = trace(model, *args, mode="real", **kwargs)
    assert g.mode == "meta" and g.error is None

    def without_histograms(graph):  # (weights on the meta device have no values)
        data = graph.to_dict()
        for m in data["modules"].values():
            m["histogram"] = None
        return data

    assert without_histograms(g) == without_histograms(real)


def test_a_model_on_the_meta_device_says_how_to_trace_a_value_read():
    with torch.device("meta"):
        model = ZOO["branchy"]()
    g = trace(model, example_input("branchy"))
    assert g.mode == "meta" and g.error["type"] == "NeedsValues"
    assert "weights are on the meta device" in g.error["message"]
    assert "to_empty" in g.error["message"]
    assert g.node(g.error["node"])["error"] == g.error["message"]
    assert g.node(g.error["node"])["name"] == "bool"


# --- which pass auto runs ---------------------------------------------------------------------


def test_auto_runs_real_for_small_models_and_meta_for_large_ones(monkeypatch):
    monkeypatch.setattr(auto, "meta_ready", lambda: True)  # torch's meta code imported
    cpu = torch.device("cpu")
    for name in sorted(ZOO):  # the test sizes: a real forward costs less than meta's work
        model = ZOO[name]()
        assert auto.choose(model, (example_input(name),), {}, cpu) == "real", name
    # ResNet-50 at 224x224, batch 8: 4 GFLOPs an image; GPT-2 small on 1,024 tokens.
    with torch.device("meta"):
        big_cnn, big_lm = resnet50(1000, 64), gpt(50257, 12, 12, 768, 1024)
    image = torch.empty(8, 3, 224, 224, device="meta")
    tokens = torch.empty(1, 1024, dtype=torch.long, device="meta")
    assert auto.estimate(big_cnn, (image,), {}).mode == "meta"
    assert auto.estimate(big_lm, (tokens,), {}).mode == "meta"
    assert auto.estimate(big_lm, (tokens,), {}).flops > 2 * 124e6 * 1024 * 0.99
    # Nowhere but on the CPU, nor for TorchScript: a real forward.
    assert auto.choose(big_lm, (tokens,), {}, torch.device("cuda")) == "real"
    scripted = torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2))
    assert not auto.meta_swappable(scripted)


def test_auto_counts_the_first_meta_pass_imports(monkeypatch):
    """In a process where torch's meta machinery is not imported yet (about a second),
    a forward that costs less than that runs real: the first graph does not pay it."""
    with torch.device("meta"):
        model = vit(224, 16, 768, 12, 12, 3072, 1000)  # ViT-B/16, ~35 GFLOPs an image
    image = torch.empty(1, 3, 224, 224, device="meta")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(auto, "meta_ready", lambda: True)
    warm = auto.estimate(model, (image,), {})
    monkeypatch.setattr(auto, "meta_ready", lambda: False)
    cold = auto.estimate(model, (image,), {})
    assert (warm.mode, cold.mode) == ("meta", "real")
    assert cold.meta - warm.meta == pytest.approx(auto.META_FIRST_IMPORTS)


def test_input_positions():
    p = auto._positions
    assert p(torch.zeros(4, 16, dtype=torch.long)) == 64  # token ids: every token
    assert p(torch.zeros(4, 10)) == 4  # feature rows
    assert p(torch.zeros(2, 50, 768)) == 100  # (batch, steps, features)
    assert p(torch.zeros(2, 3, 224, 224)) == 2 * 196  # 16x16 patches
    assert p(torch.zeros(1, 3, 8, 8)) == 1
    assert p(torch.tensor(3.0)) == 1


def test_embedding_tables_cost_no_arithmetic_unless_a_layer_shares_them():
    from nbviz.graph.module_info import module_table

    tied = gpt(vocab=1000, n_layer=1, n_head=2, d_model=16, ctx=8)  # wte is lm_head's weight
    lookup = nn.Sequential(nn.Embedding(1000, 16), nn.Linear(16, 4))
    assert auto._compute_params(module_table(lookup)) == 16 * 4 + 4
    position_table = tied.transformer.wpe.weight.numel()
    total = sum(p.numel() for p in tied.parameters())
    assert auto._compute_params(module_table(tied)) == total - position_table


COLD = """
import sys, torch, nbviz
from nbviz.examples import SmallCNN
graph = nbviz.trace(SmallCNN(), torch.zeros(1, 3, 64, 64))
heavy = [m for m in ("torch._dynamo", "sympy", "torch.fx.experimental.symbolic_shapes")
         if m in sys.modules]
print(graph.mode, graph.error, heavy)
"""


def test_the_first_trace_in_a_process_imports_no_compiler():
    """torch wraps a dispatch mode's handler in dynamo's `disable`, whose first call
    imports torch._dynamo and sympy (about 1.5 s); the FLOP counter opts out of it, and a
    small model's first graph is a real pass, which needs none of torch's meta code."""
    done = subprocess.run(
        [sys.executable, "-c", COLD], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "real None []"


# --- what tracing leaves as it found --------------------------------------------------------


@dataclasses.dataclass
class Batch:
    tokens: torch.Tensor


class WritesItsInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x, extra, batch, again=None):
        assert again is None or again is x  # a tensor passed twice stays one tensor
        x.add_(1)
        extra["mask"].mul_(0)
        batch.tokens.sub_(5)
        extra["list"][0][:] = 7
        return self.fc(x)


@pytest.mark.parametrize("mode", ["auto", "real", "meta", "fake", "meta first"])
def test_the_callers_inputs_are_left_unchanged(mode, monkeypatch):
    if mode == "meta first":
        monkeypatch.setattr(trace_module, "choose", lambda *a, **k: "meta")
        mode = "auto"
    x, mask, tokens, item = torch.ones(2, 3), torch.ones(2, 3), torch.ones(4), torch.ones(2)
    x.requires_grad_(True)
    extra = {"mask": mask, "list": [item]}
    g = trace(WritesItsInputs(), x, extra, Batch(tokens), again=x, mode=mode)
    assert g.error is None
    assert [n["name"] for n in g.inputs][:2] == ["x", "extra['mask']"]
    assert torch.equal(x, torch.ones(2, 3)) and x.requires_grad and x.grad is None
    assert torch.equal(mask, torch.ones(2, 3)) and torch.equal(tokens, torch.ones(4))
    assert torch.equal(item, torch.ones(2))
    assert extra == {"mask": mask, "list": [item]}  # the containers too


@pytest.mark.parametrize("mode", ["real", "meta"])
def test_the_random_state_is_left_as_found(mode):
    """Random ops on the inputs run for real in a meta pass too (dropout in training)."""

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            x = nn.functional.dropout(x, 0.5, training=True) + torch.rand(4)
            return self.fc(x)

    model = Noisy()
    state = torch.random.get_rng_state()
    assert trace(model, torch.ones(2, 4), mode=mode).error is None
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_real_pass_sees_the_inputs_flags_and_strides():
    """The copies a real pass runs on keep what a forward may ask: requires_grad, strides."""

    class Flags(nn.Module):
        def forward(self, x):
            return x * 2 if x.requires_grad and not x.is_contiguous() else x + 3

    x = torch.ones(3, 2).t().requires_grad_(True)  # a transposed view: not contiguous
    g = trace(Flags(), x, mode="real")
    assert g.error is None and [n["name"] for n in g.ops()] == ["mul"]
