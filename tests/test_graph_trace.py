"""Tests of nbviz.graph: `trace` (the headless capture) and the `Graph` it returns."""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
from torch.utils.flop_counter import FlopCounterMode

from nbviz.graph import Graph
from nbviz.graph.trace import trace
from tests.models import (
    ZOO,
    broken,
    dict_net,
    example_input,
    gpt,
    inplace_net,
    lstm,
    resnet18,
    resnet50,
    shared_layer,
    transformer_encoder,
    vit,
)
from tests.models import (
    branchy as branchy_model,
)

NODE_FIELDS = {
    "id", "kind", "name", "type", "path", "parent", "call", "inputs", "outputs",
    "params", "params_total", "flops", "inplace", "error",
}  # fmt: skip
MODULE_FIELDS = {"type", "repr", "params", "params_own", "params_total", "histogram"}
EDGE_FIELDS = {"source", "target", "shape", "dtype"}
TOP_FIELDS = {"model", "nodes", "edges", "modules", "repeats", "root", "error"}


def make(name: str) -> tuple[nn.Module, object]:
    with torch.random.fork_rng():  # seeded init without touching the global state
        torch.manual_seed(0)
        return ZOO[name](), example_input(name)


def unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def shapes(infos: list[dict]) -> list[list[int]]:
    return [i["shape"] for i in infos]


# --- an independent recording of the data flow -----------------------------------------------


class Flow(TorchFunctionMode):
    """The simplest possible recorder: which earlier call produced each argument.

    Producers are found by object identity over strong references (an in-place
    op returns the very tensor it wrote; ``x[i] = v`` returns None and writes
    ``x``), so it shares no logic with the tracer.
    """

    def __init__(self, inputs: list[torch.Tensor], state: list[torch.Tensor]):
        super().__init__()
        self.calls: list[tuple[str, list, list]] = []
        self.inputs = inputs
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = [t for t in _flat(out) if isinstance(t, torch.Tensor)]
        if getattr(func, "__name__", "") == "__setitem__":
            outs = [args[0]]
        if outs:
            ins = [t for t in _flat((args, kwargs or {})) if isinstance(t, torch.Tensor)]
            self.calls.append((getattr(func, "__name__", "?"), ins, outs))
        return out

    def edges(self) -> set[tuple[int, int]]:
        """(producer, consumer) indices into the calls; -1 - i for the i-th model input."""
        found = set()
        for j, (_, ins, _) in enumerate(self.calls):
            for t in ins:
                if any(t is s for s in self.state):
                    continue
                source = next(
                    (i for i in range(j - 1, -1, -1) if any(t is o for o in self.calls[i][2])),
                    None,
                )
                if source is None:
                    source = next((-1 - k for k, x in enumerate(self.inputs) if x is t), None)
                if source is not None:
                    found.add((source, j))
        return found


def _flat(obj):
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _flat(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _flat(x)
    else:
        yield obj


def graph_edges(g: Graph) -> set[tuple[int, int]]:
    """The graph's edges between ops and inputs, in the numbering of `Flow.edges`."""
    ops = {n["id"]: i for i, n in enumerate(g.ops())}
    ops.update({n["id"]: -1 - i for i, n in enumerate(g.inputs)})
    return {
        (ops[e["source"]], ops[e["target"]])
        for e in g.edges
        if e["source"] in ops and e["target"] in ops
    }


# --- structure and contract --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ZOO))
def test_params_shapes_and_contract(name):
    model, x = make(name)
    outputs: dict[nn.Module, list] = {}
    hooks = [
        m.register_forward_hook(
            lambda m, a, out: outputs.setdefault(m, []).append(
                [list(t.shape) for t in _flat(out) if isinstance(t, torch.Tensor)]
            )
        )
        for m in model.modules()
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()

    g = trace(model, x)
    assert g.error is None
    assert g.total_params == unique_params(model)
    assert g.node(g.root)["params_total"] == unique_params(model)
    assert g.node(g.root)["parent"] is None and g.node(g.root)["path"] == ""

    # Every module call saw the shapes a plain forward produces.
    paths = dict((m, p) for p, m in model.named_modules())
    for m, seen in outputs.items():
        calls = g.calls(paths[m])
        assert [shapes(c["outputs"]) for c in calls] == seen, paths[m]

    # The data contract, field by field.
    d = g.to_dict()
    assert set(d) == TOP_FIELDS
    json.dumps(d)
    ids = [n["id"] for n in d["nodes"]]
    assert len(ids) == len(set(ids))
    kinds = {n["id"]: n["kind"] for n in d["nodes"]}
    for n in d["nodes"]:
        assert set(n) == NODE_FIELDS
        assert n["parent"] is None or kinds[n["parent"]] == "module"
        if n["kind"] in ("input", "output"):
            assert n["parent"] is None and n["path"] == ""
    assert d["nodes"][0]["kind"] == "input" and d["nodes"][-1]["kind"] == "output"
    for e in d["edges"]:
        assert set(e) == EDGE_FIELDS
        assert kinds[e["source"]] != "module" and kinds[e["target"]] != "module"
    assert set(d["modules"]) == {p for p, _ in model.named_modules()}
    for m in d["modules"].values():
        assert set(m) == MODULE_FIELDS
        assert m["params_own"] == sum(p["numel"] for p in m["params"])
    assert Graph.from_dict(json.loads(json.dumps(d))).to_dict() == d


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("mode", ["real", "fake", "meta"])
def test_edges_are_the_real_data_flow(name, mode):
    model, x = make(name)
    inputs = list(_flat(x))
    flow = Flow(inputs, [*model.parameters(), *model.buffers()])
    with torch.no_grad(), flow:
        model(x)
    g = trace(model, x, mode=mode)
    if name == "branchy" and mode != "real":
        assert g.error is not None  # it branches on a value: shape-only tensors can't tell
        return
    assert [n["name"].strip("_") for n in g.ops()] == [c[0].strip("_") for c in flow.calls]
    assert graph_edges(g) == flow.edges()


def test_residual_add_consumes_block_input_and_bn2():
    g = trace(resnet18(), example_input("resnet18"))
    for block, shortcut in (("layer1.0", "maxpool"), ("layer2.0", "layer2.0.downsample.1")):
        (add,) = [n for n in g.ops() if n["path"] == block and n["name"] == "add_"]
        assert add["inplace"]
        sources = {p["path"] for p in g.predecessors(add["id"])}
        assert sources == {f"{block}.bn2", shortcut}
        # The block's last ReLU reads the sum: the in-place add produced it.
        (after,) = g.successors(add["id"])
        assert (after["name"], after["path"]) == ("relu", f"{block}.relu")


def test_inplace_ops_become_producers():
    g = trace(inplace_net(), example_input("inplace_net"))
    op = {n["path"] + "/" + n["name"]: n for n in g.ops()}
    relu, conv2 = op["relu/relu"], op["conv2/conv2d"]
    assert relu["inplace"] and not op["conv1/conv2d"]["inplace"]
    assert g.predecessors(conv2["id"]) == [relu]  # not conv1's output: relu wrote over it
    assert [p["id"] for p in g.predecessors(op["/add_"]["id"])] == [conv2["id"], relu["id"]]
    assert g.predecessors(op["/setitem"]["id"]) == [op["/add_"]]
    assert op["/setitem"]["inplace"] and op["/setitem"]["outputs"][0]["shape"] == [2, 4, 32, 32]
    assert g.predecessors(op["/mean"]["id"]) == [op["/setitem"]]


# --- the model is left as found ----------------------------------------------------------------


def _bits(t: torch.Tensor) -> tuple:
    return t.dtype, tuple(t.shape), t.detach().reshape(-1).contiguous().view(torch.uint8).clone()


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: _bits(v) for k, v in model.state_dict(keep_vars=True).items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else _bits(p.grad) for p in model.parameters()],
        "hooks": [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._forward_hooks_with_kwargs),
                len(m._forward_hooks_always_called),
                len(m._forward_pre_hooks_with_kwargs),
                len(m._backward_hooks),
                len(m._backward_pre_hooks),
            )
            for m in model.modules()
        ],
    }


def _same(a: dict, b: dict) -> bool:
    def eq(x, y):
        if isinstance(x, tuple) and len(x) == 3 and isinstance(x[2], torch.Tensor):
            return x[:2] == y[:2] and torch.equal(x[2], y[2])
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(eq(x[k], y[k]) for k in x)
        if isinstance(x, list):
            return len(x) == len(y) and all(eq(i, j) for i, j in zip(x, y, strict=True))
        return x == y

    return eq(a, b)


def _global_hooks() -> tuple:
    return (
        len(torch_module._global_forward_hooks),
        len(torch_module._global_forward_pre_hooks),
        len(torch_module._global_backward_hooks),
    )


class BNThenBroken(nn.Module):
    """Updates BatchNorm statistics, then fails."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 16)
        self.bad = nn.Linear(32, 4)

    def forward(self, x):
        return self.bad(self.fc(self.bn(x)))


@pytest.mark.parametrize("mode", ["auto", "real", "fake", "meta"])
@pytest.mark.parametrize("name", ["resnet18", "gpt", "lstm", "bn_then_broken"])
def test_model_left_as_found(name, mode):
    if name == "bn_then_broken":
        model, x = BNThenBroken(), torch.randn(4, 8)
    else:
        model, x = make(name)
    # Mixed train/eval flags, some frozen parameters and existing gradients to keep.
    model.train()
    next(model.children()).eval()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    for p in params[1::2]:
        p.grad = torch.randn_like(p)
    before, hooks = _snapshot(model), _global_hooks()

    g = trace(model, x, mode=mode)

    assert (g.error is not None) == (name == "bn_then_broken")
    assert _same(_snapshot(model), before)
    assert _global_hooks() == hooks
    assert torch._C._len_torch_function_stack() == 0
    assert _get_current_dispatch_mode_stack() == []
    assert torch.is_grad_enabled()


def test_batchnorm_statistics_restored_after_real_train_forward():
    model, x = make("resnet50")
    mean = model.bn1.running_mean.clone()
    g = trace(model.train(), x, mode="real")
    assert g.mode == "real"
    assert torch.equal(model.bn1.running_mean, mean)
    assert int(model.bn1.num_batches_tracked) == 0


def test_nothing_kept_alive():
    model = resnet18()
    x = torch.randn(2, 3, 32, 32)
    ref = weakref.ref(x)
    g = trace(model, x, mode="real")
    del x
    gc.collect()
    assert ref() is None and g.error is None


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        trace(lambda x: x, torch.zeros(1))
    with pytest.raises(ValueError, match="'auto', 'meta', 'fake', 'real'"):
        trace(nn.Linear(2, 2), torch.zeros(1, 2), mode="fast")


def test_a_misspelt_keyword_is_refused_before_the_forward_runs():
    """trace's keywords go to the model's forward; a name that neither takes raises at once
    (it showed only as a failed graph), with the near miss named."""
    net = nn.Linear(2, 2)
    runs = []
    net.register_forward_pre_hook(lambda *_: runs.append(1))
    with pytest.raises(TypeError, match=r"'mdoe'.*Linear.forward \(input\).*did you mean 'mode'"):
        trace(net, torch.zeros(1, 2), mdoe="meta")
    with pytest.raises(TypeError, match=r"keyword 'scale'.*takes$"):
        trace(net, torch.zeros(1, 2), scale=2.0)
    assert runs == []

    class AnyKeywords(nn.Module):
        def forward(self, x, **options):
            return x * options.get("scale", 1.0)

    assert trace(AnyKeywords(), torch.zeros(1, 2), scale=2.0).error is None  # nothing to check


# --- inputs, outputs, reuse, weight tying --------------------------------------------------------


def test_dict_inputs_and_outputs_are_named():
    g = trace(dict_net(), example_input("dict_net"), scale=2.0)
    assert [n["name"] for n in g.inputs] == ["batch['x']", "batch['mask']"]
    assert [n["name"] for n in g.outputs] == ["output['logits']", "output['features']"]
    logits, features = g.outputs
    assert g.predecessors(logits["id"])[0]["path"] == "head"
    assert g.predecessors(features["id"])[0]["name"] == "mul"


@pytest.mark.parametrize("mode", ["auto", "real"])
def test_numpy_inputs_become_tensors(mode):
    # Floating arrays take the model's dtype (numpy's float64 would not meet float32
    # weights), integer and bool arrays keep theirs; arrays nested in dicts, tuples
    # and lists and passed as keyword arguments too.
    x = np.random.default_rng(0).random((2, 8))  # float64
    as_numpy = trace(dict_net(), {"x": x, "mask": np.ones((2, 8), bool)}, mode=mode, scale=2.0)
    as_torch = trace(
        dict_net(), {"x": torch.tensor(x, dtype=torch.float32), "mask": torch.ones(2, 8).bool()}
    )
    assert as_numpy.error is None
    assert as_numpy.inputs == as_torch.inputs
    assert [i["outputs"][0]["dtype"] for i in as_numpy.inputs] == ["float32", "bool"]

    class Nested(nn.Module):
        def forward(self, pair, ids=None):
            (a, [b]), ids = pair, ids
            return a.double() + b + ids

    g = trace(Nested(), (np.ones(3, np.float32), [np.ones(3)]), ids=np.arange(3), mode=mode)
    assert g.error is None
    dtypes = {i["name"]: i["outputs"][0]["dtype"] for i in g.inputs}
    # no parameters: no dtype to take, the arrays keep theirs
    assert dtypes == {"pair[0]": "float32", "pair[1][0]": "float64", "ids": "int64"}
    assert g.outputs[0]["outputs"][0] == {"shape": [3], "dtype": "float64"}

    half = trace(nn.Linear(4, 2).half(), np.zeros((1, 4)), mode=mode)
    assert half.inputs[0]["outputs"][0]["dtype"] == "float16"


def test_numpy_arrays_are_copied_and_bad_ones_refused():
    class Inplace(nn.Module):
        def forward(self, x):
            return x.mul_(2)

    x = np.ones(3, np.float32)
    assert trace(Inplace(), x, mode="real").error is None
    assert (x == 1).all()  # the model wrote into a copy

    class Masked(nn.Linear):
        def forward(self, input, mask=None):
            return super().forward(input)

    model, hooks = Masked(2, 2), _global_hooks()
    before = _snapshot(model)
    with pytest.raises(TypeError, match=r"^input args\[0\]\['ids'\] is a numpy array of dtype "
                       r"<U1; expected a tensor or a numeric numpy array$"):  # fmt: skip
        trace(model, {"ids": np.array(["a", "b"])})
    with pytest.raises(TypeError, match=r"input mask\[1\] is a numpy array of dtype object"):
        trace(model, torch.zeros(1, 2), mask=[np.ones(2), np.array([None])])
    assert _same(_snapshot(model), before) and _global_hooks() == hooks


def test_args_and_kwargs_names_and_nested_outputs():
    class Varargs(nn.Module):
        def forward(self, *args, **kwargs):
            a, b = args
            return (a + b, [a * kwargs["mask"]]), a.sum()

    g = trace(Varargs(), torch.ones(2), torch.ones(2), mask=torch.zeros(2))
    assert [n["name"] for n in g.inputs] == ["args[0]", "args[1]", "kwargs.mask"]
    assert [n["name"] for n in g.outputs] == ["output[0][0]", "output[0][1][0]", "output[1]"]
    assert g.node(g.root)["name"] == "Varargs" and g.model == "Varargs"


def test_weight_tying_counts_shared_parameters_once():
    model = gpt()
    g = trace(model, example_input("gpt"))
    counted_twice = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert g.total_params == unique_params(model) < counted_twice
    shared = model.lm_head.weight.numel()
    assert g.total_params == counted_twice - shared
    assert g.modules["lm_head"]["params_own"] == shared
    assert g.modules["transformer.wte"]["params_own"] == shared
    assert g.modules[""]["params_total"] == g.node(g.root)["params_total"] == g.total_params


def test_reused_module_has_one_node_per_call():
    g = trace(shared_layer(times=3), example_input("shared_layer"))
    calls = g.calls("shared")
    assert [c["call"] for c in calls] == [0, 1, 2]
    assert len({c["id"] for c in calls}) == 3
    assert [c["id"] for c in calls] in g.repeats
    # Each call's linear reads the previous call's output.
    linears = [g.children(c["id"])[0] for c in calls]
    assert g.predecessors(linears[1]["id"]) == [linears[0]]
    assert len(g.modules) == 4  # one entry per module object


# --- control flow and errors ---------------------------------------------------------------------


def test_dynamic_control_flow_follows_the_branch_taken():
    model = branchy_model()
    with torch.no_grad():  # stem = identity: the branch follows the sign of the input
        model.stem.weight.copy_(torch.eye(8))
        model.stem.bias.zero_()
    up = trace(model, torch.ones(2, 8))
    down = trace(model, -torch.ones(2, 8))
    assert up.mode == down.mode == "real"  # fake tensors can't branch: auto fell back
    assert up.calls("positive") and not up.calls("negative")
    assert down.calls("negative") and not down.calls("positive") and down.ops("tanh")
    fake = trace(model, torch.ones(2, 8), mode="fake")
    assert fake.error is not None and fake.mode == "fake"


@pytest.mark.parametrize("mode", ["auto", "meta", "fake", "real"])
def test_failing_forward_returns_partial_graph(mode):
    model = broken()
    g = trace(model, example_input("broken"), mode=mode)
    assert g.error["type"] == "RuntimeError" and "32" in g.error["message"]
    failed = g.node(g.error["node"])
    assert failed["kind"] == "op" and failed["name"] == "linear" and failed["path"] == "fc3"
    assert failed["error"] == g.error["message"]
    assert g.node(failed["parent"])["path"] == "fc3"
    assert g.predecessors(failed["id"])[0]["path"] == "act"  # the edge into the failing op
    assert g.calls("fc3") and not g.calls("never") and not g.outputs
    assert g.node(g.root)["flops"] is None  # an unfinished call
    assert [n["error"] is not None for n in g.nodes].count(True) == 1
    json.dumps(g.to_dict())


def test_error_raised_by_python_code_points_at_module():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)

        def forward(self, x):
            return self.inner(x) + 1

    def refuse(module, args):
        raise ValueError("no thanks")

    model = Picky()
    handle = model.inner.register_forward_pre_hook(refuse)
    try:
        g = trace(model, torch.zeros(1, 2))
    finally:
        handle.remove()
    assert g.error["type"] == "ValueError" and g.error["message"] == "no thanks"
    assert g.node(g.error["node"])["path"] == "inner"
    assert _global_hooks() == (0, 0, 0)


# --- repeats -------------------------------------------------------------------------------------


def test_repeats_fold_gpt_blocks_and_resnet_stages():
    g = trace(gpt(n_layer=12), example_input("gpt"))
    assert [[g.node(i)["path"] for i in r] for r in g.repeats] == [
        [f"transformer.h.{i}" for i in range(12)]
    ]
    assert "0 (GPTBlock) x12" in g.summary()

    g = trace(resnet18(), example_input("resnet18"))
    assert [[g.node(i)["path"] for i in r] for r in g.repeats] == [["layer1.0", "layer1.1"]]

    g = trace(resnet50(), example_input("resnet50"))
    runs = [[g.node(i)["path"] for i in r] for r in g.repeats]
    assert runs == [
        [f"layer{s}.{i}" for i in range(1, n)]
        for s, n in zip(range(1, 5), (3, 4, 6, 3), strict=True)
    ]

    g = trace(transformer_encoder(num_layers=3), example_input("transformer_encoder"))
    assert [[g.node(i)["path"] for i in r] for r in g.repeats] == [
        ["encoder.layers.0", "encoder.layers.1", "encoder.layers.2"]
    ]


# --- fake, meta and FLOPs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(ZOO) - {"branchy"}))
def test_shape_only_modes_match_real_mode(name):
    model, x = make(name)
    real, fake, meta, auto = (trace(model, x, mode=m) for m in ("real", "fake", "meta", "auto"))
    # Small models at small sizes: a real forward is the cheaper pass (see test_graph_auto).
    assert (real.mode, fake.mode, meta.mode, auto.mode) == ("real", "fake", "meta", "real")

    def sig(g):
        return [
            (n["kind"], n["name"], n["path"], n["inputs"], n["outputs"], n["flops"])
            for n in g.nodes
        ]

    for g in (fake, meta):
        assert sig(g) == sig(real)
        assert g.edges == real.edges
        assert g.modules == real.modules  # histograms of the real weights in all


def test_meta_mode_swaps_the_weights_back():
    model, x = make("gpt")  # tied embedding and head weights
    before = {name: t for name, t in [*model.named_parameters(), *model.named_buffers()]}
    g = trace(model, x, mode="meta")
    assert g.error is None
    after = {name: t for name, t in [*model.named_parameters(), *model.named_buffers()]}
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert not any(t.is_meta for t in after.values())


def test_meta_gpt2_small_traces():
    with torch.device("meta"):
        model = gpt(50257, 12, 12, 768, 1024)
    g = trace(model, torch.randint(0, 50257, (1, 128)))
    assert g.mode == "meta" and g.error is None
    assert g.total_params == 124_439_808
    assert g.node(g.root)["outputs"] == [{"shape": [1, 128, 50257], "dtype": "float32"}]
    assert len(g.repeats) == 1 and len(g.repeats[0]) == 12
    assert all(m["histogram"] is None for m in g.modules.values())
    assert g.node(g.root)["flops"] > 2 * 128 * 85e6  # at least 2 FLOPs per weight per token
    assert g.modules["transformer.h.0.attn.c_attn"]["repr"].startswith("Linear(in_features=768")


def test_long_reprs_are_cut():
    model = nn.Sequential(*[nn.Linear(i + 1, i + 2) for i in range(60)])
    g = trace(model, torch.zeros(1, 1))
    assert len(repr(model)) > 2000 and g.modules[""]["repr"] == repr(model)[:2000]


def test_shape_only_inputs_on_meta_trace_a_real_model():
    model, _ = make("vit")
    g = trace(model, torch.empty(2, 3, 32, 32, device="meta"), mode="fake")
    assert g.error is None and g.node(g.root)["outputs"][0]["shape"] == [2, 10]


def test_flops_per_call():
    model, x = make("vit")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    g = trace(model, x)
    assert g.total_flops == counter.get_total_flops() > 0
    (head,) = g.calls("head")
    assert head["flops"] == 2 * 2 * 32 * 10  # batch x in x out, 2 FLOPs a multiply-add
    blocks = [g.node(i) for i in g.repeats[0]]
    assert len({b["flops"] for b in blocks}) == 1
    child_flops = sum(c["flops"] for c in g.children(g.root))
    assert child_flops == g.total_flops  # a call's FLOPs are its children's, ops included

    # Kernels torch's counter has no CPU formula for: fused RNN layers, CPU attention.
    model = lstm()
    g = trace(model, example_input("lstm"))
    steps = 2 * 7  # batch x time
    weights = sum(p.numel() for p in model.lstm.parameters() if p.dim() == 2)
    assert g.calls("lstm")[0]["flops"] == 2 * steps * weights

    class Attend(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, is_causal=True)

    g = trace(Attend(), torch.randn(1, 2, 8, 4))
    assert g.total_flops == 2 * (2 * 1 * 2 * 8 * 8 * 4)  # q @ k^T and attn @ v


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_flops_counted_directly_match_the_counter(device):
    """Convolutions and linear layers are counted without the FLOP counter's dispatch:
    the same numbers, for every way of calling them (and others go to the counter)."""
    from nbviz.graph.flops import FlopCounter, direct_formula

    def t(*shape):
        return torch.randn(*shape).to(device)

    calls = [
        (F.linear, (t(5, 8), t(6, 8)), {}),
        (F.linear, (t(5, 8), t(6, 8), t(6)), {}),
        (F.linear, (t(3, 5, 8), t(6, 8), t(6)), {}),
        (F.linear, (t(2, 3, 5, 8), t(6, 8)), {}),
        (F.linear, (t(3, 8, 5).transpose(0, 1), t(6, 5), t(6)), {}),  # not contiguous
        (F.linear, (t(0, 8), t(6, 8), t(6)), {}),
        (F.linear, (), {"input": t(4, 8), "weight": t(6, 8), "bias": None}),
        (F.conv2d, (t(2, 4, 9, 9), t(8, 4, 3, 3), t(8), 2, 1), {}),
        (F.conv2d, (t(2, 4, 9, 9), t(8, 2, 3, 3), None, 1, "same", 2, 2), {}),
        (F.conv2d, (), {"input": t(1, 4, 9, 9), "weight": t(8, 4, 3, 3)}),
        (F.conv1d, (t(2, 4, 9), t(8, 4, 3)), {}),
        (F.conv3d, (t(1, 4, 5, 6, 7), t(8, 4, 3, 3, 3)), {"padding": 1}),
    ]
    for func, args, kwargs in calls:
        counter = FlopCounter()
        with torch.no_grad(), counter:
            out = func(*args, **kwargs)
        formula = direct_formula(func, args, kwargs)
        assert formula is not None and formula(out) == counter.total, func
    # Unbatched input (torch adds the batch dimension) and 1-D input: the counter's.
    assert direct_formula(F.conv2d, (t(4, 9, 9), t(8, 4, 3, 3)), {}) is None
    assert direct_formula(F.linear, (t(8), t(6, 8)), {}) is None
    assert direct_formula(torch.matmul, (t(2, 8), t(8, 3)), {}) is None


@pytest.mark.parametrize("name", ["resnet18", "gpt"])
def test_a_trace_leaves_no_garbage_for_the_collector(name):
    """What a trace made is freed as it goes out of use (no reference cycles), and the
    garbage collector, paused during the pass, is as the caller had it."""
    model, x = make(name)
    trace(model, x, mode="real")
    gc.collect()
    graph = trace(model, x, mode="real")
    assert gc.isenabled()
    del graph
    assert gc.collect() == 0
    gc.disable()
    try:
        trace(model, x, mode="real")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_histograms_are_numpy_histograms_of_own_weights():
    model, x = make("vit")
    g = trace(model, x)
    h = g.modules["blocks.0.attn.qkv"]["histogram"]
    values = torch.cat([model.blocks[0].attn.qkv.weight.flatten(), model.blocks[0].attn.qkv.bias])
    counts, edges = np.histogram(values.detach().numpy(), bins=30)
    assert h["counts"] == counts.tolist()
    assert np.allclose(h["edges"], edges) and len(h["edges"]) == 31
    assert g.modules["blocks.0.attn"]["histogram"] is None  # no parameters of its own
    assert g.modules[""]["histogram"] is not None  # cls_token and pos_embed


# --- Graph helpers -------------------------------------------------------------------------------


def test_graph_helpers_and_summary():
    g = trace(vit(), example_input("vit"))
    root = g.node(g.root)
    top = g.children(None)
    assert [n["kind"] for n in top] == ["input", "module", "output"]
    kids = g.children(g.root)
    assert [k["name"] for k in kids if k["kind"] == "module"][:2] == ["patch_embed", "0"]
    assert all(k["parent"] == root["id"] for k in kids)
    with pytest.raises(KeyError):
        g.node("nope")
    text = g.summary()
    assert "ViT (ViT)" in text and "0 (ViTBlock) x4" in text and "Total params: 41,322" in text
    assert g.summary(depth=0).count("\n") < 8
    assert "ViT" in repr(g) and "mode=real" in repr(g)


def test_ops_are_named_and_typed():
    model, x = make("gpt")
    g = trace(model, x)
    types = {(n["name"], n["type"]) for n in g.ops()}
    for expected in [
        ("arange", "torch.arange"),
        ("linear", "F.linear"),
        ("layer_norm", "F.layer_norm"),
        ("softmax", "F.softmax"),
        ("view", "Tensor.view"),
        ("matmul", "Tensor.matmul"),
        ("add", "Tensor.add"),
        ("getitem", "Tensor.__getitem__"),
        ("embedding", "F.embedding"),
    ]:
        assert expected in types
    assert all(n["params"] == n["params_total"] == 0 for n in g.ops())
    assert not any(n["name"] in ("size", "dim", "shape") for n in g.ops())


def test_cat_and_tuple_outputs():
    class Split(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            return torch.cat([b, F.relu(a)], dim=1), x.T

    g = trace(Split(), torch.randn(3, 4))
    cat = g.ops("cat")[0]
    sources = [p["name"] for p in g.predecessors(cat["id"])]
    assert sorted(sources) == ["chunk", "relu"]
    assert g.ops("T")[0]["type"] == "Tensor.T"
    assert [o["shape"] for o in g.ops("chunk")[0]["outputs"]] == [[3, 2], [3, 2]]


def test_exception_caught_inside_the_model():
    class Fallback(nn.Module):
        def __init__(self):
            super().__init__()
            self.fast = nn.Linear(3, 4)
            self.slow = nn.Linear(4, 4)

        def forward(self, x):
            try:
                return self.fast(x)  # wrong width: raises, and the model copes
            except RuntimeError:
                return self.slow(x)  # called while the first error is being handled

    g = trace(Fallback(), torch.zeros(2, 4))
    assert g.error is None and g.outputs
    (fast,), (slow,) = g.calls("fast"), g.calls("slow")
    assert fast["flops"] is None and fast["outputs"] == []
    assert slow["flops"] == 2 * 2 * 4 * 4 and shapes(slow["outputs"]) == [[2, 4]]
    assert not any(n["error"] for n in g.nodes)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_script_submodules_run_node_by_node_and_lazy_modules_refused():
    model = nn.Sequential(nn.Linear(2, 3), torch.jit.script(nn.Linear(3, 3)), nn.ReLU())
    forward = vars(model[1]).get("forward")
    g = trace(model, torch.zeros(1, 2))
    assert g.error is None and g.mode == "real"
    (call,) = g.calls("1")
    assert call["type"] == "Linear"  # the Python class, not RecursiveScriptModule
    assert [(c["name"], c["type"]) for c in g.children(call["id"])] == [("linear", "aten.linear")]
    assert g.predecessors(g.children(call["id"])[0]["id"])[0]["path"] == "0"
    assert call["flops"] == 2 * 3 * 3
    assert all(h == (0,) * 7 for h in _snapshot(model)["hooks"])
    assert vars(model[1]).get("forward") is forward  # the runner's stand-in is gone
    with pytest.raises(ValueError, match=r"lazy modules \(0: LazyLinear\).*model\(x\)"):
        trace(nn.Sequential(nn.LazyLinear(3)), torch.zeros(1, 2))


def test_graph_repr_counts_in_words():
    g = trace(nn.Linear(2, 2), torch.rand(1, 2))
    text = repr(g)
    assert "1 module call," in text and "1 op," in text, text


def test_the_module_and_the_function_each_keep_their_name():
    """``import nbviz.graph.trace`` gives the recorder's module; ``nbviz.trace`` its function."""
    import importlib
    import inspect

    import nbviz
    import nbviz.graph.trace as module

    assert inspect.ismodule(module) and module is importlib.import_module("nbviz.graph.trace")
    assert nbviz.graph.trace is module and nbviz.trace is module.trace


def _conforms(value, hint) -> None:
    """``value`` is of the type ``hint`` from the contract: a typed dict with exactly its
    keys, a list, a dict, a union with None, a literal, or a plain str/int/float/bool."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if typing.is_typeddict(hint):
        fields = typing.get_type_hints(hint)
        assert isinstance(value, dict) and set(value) == set(fields), (hint.__name__, value)
        for key, field in fields.items():
            _conforms(value[key], field)
    elif origin is list:
        assert isinstance(value, list)
        for item in value:
            _conforms(item, args[0])
    elif origin is dict:
        assert isinstance(value, dict)
        for item in value.values():
            _conforms(item, args[1])
    elif origin in (typing.Union, types.UnionType):
        if value is not None:
            _conforms(value, next(a for a in args if a is not type(None)))
        else:
            assert type(None) in args
    elif origin is typing.Literal:
        assert value in args, (value, args)
    else:
        assert isinstance(value, hint) and not (hint is int and isinstance(value, bool)), (
            hint,
            value,
        )


@pytest.mark.parametrize("name", ["resnet18", "gpt", "dict_net", "broken"])
def test_to_dict_follows_the_typed_contract_in_graph_core(name):
    """The JSON the widget sends has exactly the fields written in nbviz/graph/core.py's
    typed dicts (GraphData, NodeData, EdgeData, ModuleData, ...), nested ones included."""
    from nbviz.graph import core
    from tests import models

    graph = trace(getattr(models, name)(), models.example_input(name))
    assert (graph.error is not None) == (name == "broken")
    assert graph.modules  # (fills the weight histograms)
    data = graph.to_dict()
    _conforms(data, core.GraphData)
    assert data["nodes"] and data["edges"] and data["modules"]  # an empty graph proves nothing
    json.dumps(data)  # plain JSON, as the trait sends it
