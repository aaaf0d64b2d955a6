"""The training monitor's core (`nbviz.monitor.core.TrainingRecorder`) and the `nbviz.watch`
dashboard around it, against direct computations and its own contract (the histories,
`Bins` and `RowHistory`, have test_monitor_history.py).

Covers: per-layer gradient norms and max |g| in forward order; update-to-weight ratios;
dead ReLU fractions; histograms equal to ``torch.histc`` (also after the range doubles,
and for layers followed by an in-place ReLU); probe feature maps; hooks removed on every exit path;
bitwise-identical training with and without the monitor; bounded memory over 10,000
steps; the NaN/Inf watch; clear errors for bad input (the widget's state and throttling:
test_monitor_widget.py).
"""

from __future__ import annotations

import gc
import math
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monitor_helpers import (  # tests/ is on the path (pytest's rootdir-relative import)
    CNN_LAYERS,
    direct_grad_stats,
    flat,
    hook_state,
    mlp,
    modules,
    own_params,
    randn,
    shapes_data,
    small_cnn,
    tiny,
    train_step,
)
from torch import nn

import nbviz
from nbviz import _widget
from nbviz.monitor import Monitor, TrainingRecorder

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return shapes_data()


# --- 1. gradient flow: norms, max |g|, forward order --------------------------------------------


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_grad_norms_and_max_equal_direct_computation(kind, data):
    if kind == "cnn":
        model, x, y = small_cnn(), data.images[:16], data.labels[:16]
    else:
        model, x, y = mlp(), randn(16, 12), torch.arange(16) % 3
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    w = TrainingRecorder(model, every=1)
    if kind == "cnn":
        assert w.layers == CNN_LAYERS  # registration order is the forward order here
    expected_norms = []
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        w.step()
        layers = w.snapshot()["layers"]
        norms, maxes = direct_grad_stats(model, layers)
        assert (norms > 0).all()
        latest = w.snapshot()["latest"]
        np.testing.assert_allclose(latest["grad_norm"], norms, rtol=1e-5)
        np.testing.assert_allclose(latest["grad_max"], maxes, rtol=1e-6)
        expected_norms.append(norms)
        opt.step()
    snap = w.snapshot()
    rows, spans = snap["grad_norm"]
    np.testing.assert_allclose(rows, np.stack(expected_norms), rtol=1e-5)
    assert spans.tolist() == [[s, s] for s in range(4)]
    assert snap["grad_max"][0].shape == (4, len(snap["layers"]))
    w.detach()


class Reordered(nn.Module):
    """Registered head, body, stem; run stem, body, head."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.act = nn.ReLU()
        self.body = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(6)
        self.stem = nn.Linear(4, 6)
        self.frozen = nn.Linear(3, 3)  # registered last, runs last, gets no gradient

    def forward(self, x):
        x = self.act(self.body(self.norm(self.act(self.stem(x)))))
        return self.frozen(self.head(x))


def test_max_gradient_is_taken_on_sampled_steps_and_says_which():
    """The norm every step; max |g| (a second pass over every gradient) every `every` steps,
    with its step, equal to the direct computation at that step."""
    model, x, y = mlp(), randn(16, 12), torch.arange(16) % 3
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    w = TrainingRecorder(model, every=3)
    expected = {}
    for step in range(7):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        w.step()
        expected[step] = direct_grad_stats(model, w.layers)
        opt.step()
    snap = w.snapshot()
    rows, spans = snap["grad_max"]
    assert spans.tolist() == [[0, 0], [3, 3], [6, 6]]
    np.testing.assert_allclose(rows, np.stack([expected[s][1] for s in (0, 3, 6)]), rtol=1e-6)
    assert snap["grad_max_step"] == 6 and len(snap["grad_norm"][0]) == 7
    np.testing.assert_allclose(snap["latest"]["grad_max"], expected[6][1], rtol=1e-6)
    np.testing.assert_allclose(snap["latest"]["grad_norm"], expected[6][0], rtol=1e-5)
    w.detach()


def test_layers_are_in_forward_order_not_registration_order():
    torch.manual_seed(0)
    model = Reordered()
    model.frozen.requires_grad_(False)
    w = TrainingRecorder(model, every=1)
    x, y = randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    w.step()
    snap = w.snapshot()
    assert snap["layers"] == ["stem", "norm", "body", "head", "frozen"]
    norms, maxes = direct_grad_stats(model, snap["layers"][:-1])
    np.testing.assert_allclose(snap["latest"]["grad_norm"][:-1], norms, rtol=1e-5)
    np.testing.assert_allclose(snap["latest"]["grad_max"][:-1], maxes, rtol=1e-6)
    # A layer without gradients: norm 0, max -1 (the "no gradient" mark).
    assert snap["latest"]["grad_norm"][-1] == 0 and snap["latest"]["grad_max"][-1] == -1
    # The order stays fixed (and aligned with the rows) on later steps.
    model.zero_grad()
    F.cross_entropy(model(x * 2), y).backward()
    w.step()
    snap = w.snapshot()
    assert snap["layers"] == ["stem", "norm", "body", "head", "frozen"]
    norms, _ = direct_grad_stats(model, snap["layers"][:-1])
    np.testing.assert_allclose(snap["grad_norm"][0][-1][:-1], norms, rtol=1e-5)
    w.detach()


# --- 2. update ratios, dead units, histograms, feature maps -------------------------------------


@pytest.mark.parametrize("every", [1, 3])
def test_update_ratios_equal_direct_computation(every, data):
    model, x, y = small_cnn(), data.images[:16], data.labels[:16]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    w = TrainingRecorder(model, every=every, hist_every=1000, features_every=1000)
    by_path = modules(model)
    expected = {}
    for step in range(7):
        before = {n: flat(own_params(by_path[n])).clone() for n in CNN_LAYERS}
        train_step(model, opt, x, y, w)
        after = {n: flat(own_params(by_path[n])) for n in CNN_LAYERS}
        expected[step] = [
            float(
                torch.linalg.vector_norm(after[n] - before[n]) / torch.linalg.vector_norm(before[n])
            )
            for n in w.layers
        ]
    w.step()  # the ratio of step k is measured at step k + 1
    rows, spans = w.snapshot()["ratio"]
    recorded = [s for s in range(7) if s % every == 0]
    assert spans.tolist() == [[s, s] for s in recorded]
    np.testing.assert_allclose(rows, [expected[s] for s in recorded], rtol=1e-4)
    np.testing.assert_allclose(w.snapshot()["latest"]["ratio"], expected[recorded[-1]], rtol=1e-4)
    assert (rows > 0).all()
    w.detach()


class DeadNet(nn.Module):
    """conv channels 0 and 2 and fc1 units 1 and 4 are dead for every non-negative input;
    conv channel 3 is alive only where the first input channel exceeds 0.9."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        self.relu1 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(5, 6)
        self.relu2 = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(6, 2)
        with torch.no_grad():
            self.conv.weight.abs_()
            self.conv.bias.fill_(0.1)
            for c in (0, 2):
                self.conv.weight[c].zero_()
                self.conv.bias[c] = -1.0
            self.conv.weight[3].zero_()
            self.conv.weight[3, 0] = 1.0
            self.conv.bias[3] = -0.9
            self.fc1.weight.abs_()
            self.fc1.bias.fill_(0.1)
            for u in (1, 4):
                self.fc1.weight[u].zero_()
                self.fc1.bias[u] = -1.0

    def forward(self, x):
        return self.fc2(self.relu2(self.fc1(self.flatten(self.pool(self.relu1(self.conv(x)))))))


def test_dead_unit_fractions_equal_direct_computation():
    torch.manual_seed(0)
    model = DeadNet()
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    outputs = {}
    mine = [
        model.relu1.register_forward_hook(lambda m, a, o: outputs.__setitem__("relu1", o.clone())),
        model.relu2.register_forward_hook(lambda m, a, o: outputs.__setitem__("relu2", o.clone())),
    ]
    w = TrainingRecorder(model, every=1)
    model(x).sum().backward()
    w.step()
    snap = w.snapshot()
    assert snap["relus"] == ["relu1", "relu2"]
    direct = [
        1 - (outputs["relu1"] > 0).any(dim=(0, 2, 3)).float().mean(),  # dead over batch and space
        1 - (outputs["relu2"] > 0).any(dim=0).float().mean(),
    ]
    assert 0 < (outputs["relu1"][:, 3] > 0).float().mean() < 0.5  # partly active: alive
    np.testing.assert_allclose(snap["latest"]["dead"], [2 / 5, 2 / 6])
    np.testing.assert_allclose(snap["latest"]["dead"], [float(d) for d in direct])
    rows, spans = snap["dead"]
    assert rows.shape == (1, 2) and spans.tolist() == [[0, 0]]
    w.detach()
    for h in mine:
        h.remove()


def test_histograms_equal_histc_over_recorded_range(data):
    model, x, y = small_cnn(), data.images[:16], data.labels[:16]
    layers = ["features.block2.conv", "features.block3.bn", "classifier.fc"]
    acts = {}
    mine = [
        modules(model)[p].register_forward_hook(
            lambda m, a, o, p=p: acts.__setitem__(p, o.detach().clone())
        )
        for p in layers
    ]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    w = TrainingRecorder(model, layers=layers, hist_every=2, every=1)
    for step in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        w.step()
        if step % 2 == 0:
            snap = w.snapshot()["histograms"]
            for p in layers:
                module = modules(model)[p]
                values = {
                    "weights": flat(module.parameters()),
                    "gradients": flat(q.grad for q in module.parameters()),
                    "activations": acts[p].reshape(-1),
                }
                for kind, v in values.items():
                    edges, rows, spans = snap[(p, kind)]
                    r = float(edges[-1])
                    assert edges[0] == -r and len(edges) == 65
                    assert r > 0 and math.log2(r) == round(math.log2(r))  # a power of two
                    assert float(v.abs().max()) <= r
                    counts = torch.histc(v.float(), bins=64, min=-r, max=r).numpy()
                    np.testing.assert_array_equal(rows[-1], counts / v.numel())
                    assert spans[-1].tolist() == [step, step]
                    assert rows.sum(axis=1) == pytest.approx(1.0)
        opt.step()
    assert {k for k, _ in w.snapshot()["histograms"]} == set(layers)
    w.detach()
    for h in mine:
        h.remove()


def test_activation_histograms_and_features_before_an_inplace_relu():
    """Conv -> ReLU(inplace=True), as in torchvision's VGG: the histogram and feature maps
    of the conv must show its own output, negatives included, not the ReLU's."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    x, probe = randn(4, 3, 8, 8, seed=1), randn(2, 3, 8, 8, seed=2)
    w = TrainingRecorder(model, probe, layers=["0"], hist_every=1, features_every=1, max_channels=5)
    with torch.no_grad():
        conv0 = model[0](x)
        probe_maps = {"0": model[0](probe), "2": model[2](F.relu(model[0](probe)))}
    model(x).sum().backward()
    w.step()
    edges, rows, _ = w.snapshot()["histograms"][("0", "activations")]
    r = float(edges[-1])
    assert (conv0 < 0).float().mean() > 0.2
    expected = torch.histc(conv0.reshape(-1), bins=64, min=-r, max=r).numpy() / conv0.numel()
    np.testing.assert_array_equal(rows[-1], expected)
    assert w.feature_layers == ["0", "2"]
    for path, out in probe_maps.items():
        maps = out[:, :5]
        lo, hi = maps.amin(dim=(2, 3), keepdim=True), maps.amax(dim=(2, 3), keepdim=True)
        scaled = ((maps - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)
        got = w.features[path]
        assert got.shape == (2, min(5, out.shape[1]), 8, 8) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, scaled.numpy())
    w.detach()


def test_a_large_activation_is_binned_from_a_uniform_sample():
    """Past ACTIVATION_SAMPLE values, a uniform sample is binned: each bin within 0.005 of the
    whole activation's fraction, the range still fits its largest value, and training's
    random numbers are not drawn from."""
    from nbviz.monitor.core import ACTIVATION_SAMPLE

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Flatten(), nn.Linear(16 * 64, 2))
    x = randn(600, 3, 8, 8, seed=3)
    x[7, 0, 3, 3] = 40.0  # one far value: the range must take it in, sample or not
    w = TrainingRecorder(model, layers=["0"], hist_every=1)
    with torch.no_grad():
        conv = model[0](x)
    assert conv.numel() > 2 * ACTIVATION_SAMPLE
    rng = torch.random.get_rng_state()
    model(x).sum().backward()
    assert torch.equal(torch.random.get_rng_state(), rng)
    w.step()
    edges, rows, _ = w.snapshot()["histograms"][("0", "activations")]
    r = float(edges[-1])
    assert float(conv.abs().max()) < r <= 2 * float(conv.abs().max())
    exact = torch.histc(conv.reshape(-1), bins=64, min=-r, max=r).numpy() / conv.numel()
    assert np.abs(rows[-1] - exact).max() < 0.005
    assert rows[-1].sum() == pytest.approx(1.0)
    w.detach()


def test_feature_maps_bounded_and_probe_forward_leaves_model_as_found(data):
    model = small_cnn()
    model.train()
    probe = data.images[:3]
    w = TrainingRecorder(model, probe, features_every=2, max_feature_layers=2, max_channels=3)
    assert w.feature_layers == ["features.block1.conv", "features.block4.conv"]
    bn = model.features.block1.bn
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        model(data.images[:8]).sum().backward()
        stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
        grads = [p.grad.clone() for p in model.parameters()]
        w.step()
        # The probe forward (eval mode, no grad) changes neither stats nor mode nor grads.
        assert all(torch.equal(a, b) for a, b in zip(stats, bn._buffers.values(), strict=True))
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
        assert model.training and all(m.training for m in model.modules())
        opt.step()
    snap = w.snapshot()
    assert snap["features_step"] == 2
    assert set(snap["features"]) == {"features.block1.conv", "features.block4.conv"}
    assert snap["features"]["features.block1.conv"].shape == (3, 3, 32, 32)
    assert snap["features"]["features.block4.conv"].shape == (3, 3, 4, 4)
    w.detach()


def test_range_doubling_keeps_mass_and_equals_direct_histogram():
    model = tiny()
    layer = model[0]
    w = TrainingRecorder(model, layers=["0"], hist_every=1)
    x = randn(8, 4)
    kept = []
    for step in range(4):
        if step == 2:
            with torch.no_grad():
                layer.weight.mul_(9.0)  # the range doubles (at least) three times
        model.zero_grad()
        model(x).sum().backward()
        w.step()
        kept.append(flat(layer.parameters()).clone())
    edges, rows, spans = w.snapshot()["histograms"][("0", "weights")]
    r = float(edges[-1])
    assert r >= 8 * float(kept[0].abs().max())
    assert spans.tolist() == [[s, s] for s in range(4)]
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    for step, v in enumerate(kept):  # every row as if binned over the final range
        counts = torch.histc(v, bins=64, min=-r, max=r).numpy()
        np.testing.assert_array_equal(np.round(rows[step] * v.numel()), counts)
        np.testing.assert_allclose(rows[step], counts / v.numel(), rtol=1e-6)
    w.detach()


# --- 3. hooks go away on every exit path ----------------------------------------------------------


def user_hooked_model():
    model = small_cnn()
    calls = []
    model.features.block1.conv.register_forward_hook(lambda m, a, o: calls.append(1))
    model.classifier.fc.register_forward_pre_hook(lambda m, a: calls.append(2))
    return model, calls


@pytest.mark.parametrize("exit_path", ["detach", "with", "raise_in_with", "monitor_error"])
def test_hooks_removed_on_every_exit_path(exit_path, data):
    model, calls = user_hooked_model()
    before = hook_state(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data.images[:8], data.labels[:8]
    probe = data.images[:2]
    kw = dict(probe=probe, every=1, hist_every=1, features_every=1)
    if exit_path == "detach":
        mon = nbviz.watch(model, **kw)
        assert hook_state(model) != before  # attached
        train_step(model, opt, x, y, mon)
        mon.detach()
        mon.detach()  # idempotent
    elif exit_path == "with":
        with nbviz.watch(model, **kw) as mon:
            assert isinstance(mon, Monitor) and mon.recorder.attached
            train_step(model, opt, x, y, mon)
    elif exit_path == "raise_in_with":
        with pytest.raises(KeyError, match="boom"):
            with nbviz.watch(model, **kw) as mon:
                train_step(model, opt, x, y, mon)
                raise KeyError("boom")
    else:  # the monitor itself raises (a bad metric) inside the block
        with pytest.raises(ValueError, match="acc must be"):
            with nbviz.watch(model, **kw) as mon:
                train_step(model, opt, x, y, mon)
                mon.step(acc=torch.ones(8))
    assert hook_state(model) == before
    assert not mon.recorder.attached and mon.view.detached
    assert mon.view.steps == mon.recorder.steps == 1  # the final state was pushed
    with pytest.raises(RuntimeError, match="detached"):
        mon.step(loss=1.0)
    n = len(calls)
    model(x)
    assert len(calls) == n + 2  # the user's own hooks survive and still run


def hook_counts(model: nn.Module) -> dict:
    return {key: len(ids) for key, ids in hook_state(model).items()}


def test_probe_forward_hooks_are_temporary(data):
    model = small_cnn()
    # Every forward sampled: the activation hooks stay armed, so the counts compare.
    w = TrainingRecorder(model, data.images[:2], every=1, hist_every=1, features_every=1)
    model(data.images[:4]).sum().backward()  # (the first forward drops the leaf hooks)
    w.step()
    attached = hook_counts(model)
    model(data.images[:4]).sum().backward()
    w.step()
    assert w.features and hook_counts(model) == attached


def test_activation_hooks_exist_only_while_a_sampled_forward_is_due(data):
    """Dead-unit and histogram hooks are armed for sampled forwards only: the others pay
    for the model's own hook alone."""
    model = small_cnn()
    w = TrainingRecorder(model, every=3, hist_every=6)
    relu = model.features.block1.relu
    hist = model.get_submodule(w.hist_layers[0])
    counts = []
    for _ in range(7):
        counts.append((len(relu._forward_hooks), len(hist._forward_hooks)))
        model(data.images[:4]).sum().backward()
        w.step()
    # steps 0 and 6: both; 3: dead units only; others: neither (the conv has its NaN hook
    # for the first forward only: the CPU check replays a bad forward instead)
    leaf = [0 if isinstance(hist, nn.ReLU) else int(i == 0) for i in range(7)]
    assert [c[0] for c in counts] == [1, 0, 0, 1, 0, 0, 1]
    assert [c[1] - k for c, k in zip(counts, leaf, strict=True)] == [1, 0, 0, 0, 0, 0, 1]
    assert len(w.dead.steps()) == 3 and len(w.hist[(w.hist_layers[0], "weights")][1].steps()) == 2
    w.detach()
    assert len(relu._forward_hooks) == len(hist._forward_hooks) == 0
    w.detach()


def test_a_failing_constructor_leaves_no_hooks(data):
    model, _ = user_hooked_model()
    before = hook_state(model)
    with pytest.raises(ValueError):
        TrainingRecorder(model, probe=torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError):
        nbviz.watch(model, layers=["nope"])
    assert hook_state(model) == before


def test_watch_leaves_no_hooks_when_the_widget_cannot_be_built(monkeypatch, tmp_path):
    model = small_cnn()
    before = hook_state(model)
    monkeypatch.setattr(_widget, "STATIC", tmp_path)  # no bundles: MonitorPanels raises
    with pytest.raises(_widget.BundleMissingError):
        nbviz.watch(model)
    assert hook_state(model) == before


# --- 4. the monitor changes nothing the model computes --------------------------------------------


def run_cnn(data, watched: bool) -> tuple[dict, torch.Tensor, Monitor | None]:
    model = small_cnn(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mon = None
    if watched:
        mon = nbviz.watch(
            model, probe=data.images[40:44], every=2, hist_every=3, features_every=5, max_rate=None
        )
    torch.manual_seed(11)
    for step in range(30):
        i = (step * 8) % 40
        train_step(model, opt, data.images[i : i + 8], data.labels[i : i + 8], mon, lr=0.05)
        if mon is not None and step % 10 == 9:
            with torch.no_grad():
                model.eval()
                v = model(data.images[40:])
                model.train()
            mon.log_val(loss=F.cross_entropy(v, data.labels[40:]))
    if mon is not None:
        mon.detach()
    return model.state_dict(), torch.get_rng_state(), mon


def run_mlp(watched: bool) -> tuple[dict, torch.Tensor, TrainingRecorder | None]:
    model = mlp(seed=4, dropout=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g)
    w = TrainingRecorder(model, x[:4], every=1, hist_every=2, features_every=1) if watched else None
    torch.manual_seed(12)
    for step in range(30):
        i = (step * 16) % 64
        train_step(model, opt, x[i : i + 16], y[i : i + 16], w)
    if w is not None:
        w.snapshot()
        w.detach()
    return model.state_dict(), torch.get_rng_state(), w


def test_training_is_bitwise_identical_with_and_without_the_monitor(data):
    for run in (lambda w: run_cnn(data, w), run_mlp):
        plain, rng_plain, _ = run(False)
        watched, rng_watched, mon = run(True)
        recorder = mon.recorder if isinstance(mon, Monitor) else mon
        snap = recorder.snapshot()
        # Every sampled path ran: ratios, dead units, histograms, feature maps (CNN).
        assert len(snap["ratio"][0]) and len(snap["dead"][0]) and snap["histograms"]
        assert snap["features"] or recorder.probe is not None and not recorder.feature_layers
        assert plain.keys() == watched.keys()
        for name in plain:
            assert torch.equal(plain[name], watched[name]), name
        assert torch.equal(rng_plain, rng_watched)


# --- 5. bounded memory over 10,000 steps ----------------------------------------------------------


def live_tensors() -> int:
    gc.collect()
    return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())


def snapshot_arrays_nbytes(snap: dict) -> int:
    """Bytes of every array in a snapshot except the per-step scalar series."""
    total = 0
    for key in ("grad_norm", "grad_max", "ratio", "dead"):
        total += sum(a.nbytes for a in snap[key])
    total += sum(v.nbytes for v in snap["latest"].values())
    for edges, rows, spans in snap["histograms"].values():
        total += edges.nbytes + rows.nbytes + spans.nbytes
    return total


def series_bytes(series: dict) -> int:
    """Bytes of the scalar series (lists of (step, value) points), each object once."""
    seen, total = set(), 0
    for points in series.values():
        for obj in (points, *points, *(x for p in points for x in p)):
            if id(obj) not in seen:
                seen.add(id(obj))
                total += sys.getsizeof(obj)
    return total


def test_memory_is_bounded_over_ten_thousand_steps():
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = randn(8, 4), torch.arange(8) % 2
    capacity = 16
    w = TrainingRecorder(model, every=5, hist_every=20, capacity=capacity)

    def histories():
        return [w.grad_norm, w.grad_max, w.ratio, w.dead] + [r for _, r in w.hist.values()]

    # Bound: capacity rows of every history, plus its spans and the small latest values.
    n_layers, n_relu = len(w.layers), len(w.relus)
    bound = capacity * (3 * n_layers + n_relu + 6 * 64) * 8 + capacity * 7 * 16 + 4096
    sizes = []
    for step in range(10_000):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if step < 6000:
            w.step(loss=loss, lr=0.01)  # a tensor and a number
        else:  # no scalars while traced: they are kept per step, all else must stay flat
            w.step()
        opt.step()
        if step % 500 == 499:
            assert all(len(h) <= capacity for h in histories())
            sizes.append(snapshot_arrays_nbytes(w.snapshot()))
        if step == 1999:
            tensors = live_tensors()
        if step == 5999:  # traced from here: tracemalloc slows every allocation down
            gc.collect()
            tracemalloc.start()
            traced = tracemalloc.get_traced_memory()[0]
    w.snapshot()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - traced
    tracemalloc.stop()
    assert max(sizes) <= bound, (max(sizes), bound)
    assert w.grad_norm.stride >= 512 and w.ratio.stride >= 64  # it did merge, many times
    # (~30 kB of it is torch's own warming up, shrinking with every later window.)
    assert grown < 64_000, f"{grown} bytes more after 4,000 more steps"
    assert live_tensors() - tensors < 1000, "tensors pile up with the steps"
    # The scalars: one point per step, numbers (the tensors read), ~100 bytes a point.
    steps, values = w.snapshot()["scalars"]["loss"]
    assert len(steps) == len(values) == len(w.scalars["lr"]) == 6000 and w.steps == 10_000
    assert all(type(v) is float for _, v in w.scalars["loss"])
    assert series_bytes(w.scalars) < 6000 * 2 * 150
    w.detach()


def test_headless_watcher_does_not_pile_up_tensors():
    """Without snapshot() (no widget), pending statistics and tensor scalars stay bounded."""
    model = tiny()
    x, y = randn(8, 4), torch.arange(8) % 2
    w = TrainingRecorder(model, every=1000, hist_every=1000)
    for _ in range(100):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        w.step(loss=loss)
    tensors = live_tensors()
    for _ in range(1500):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        w.step(loss=loss)
    assert live_tensors() - tensors < 1000
    steps, values = w.snapshot()["scalars"]["loss"]
    assert len(values) == 1600 and np.isfinite(values).all()
    w.detach()


# --- 7. bad input -------------------------------------------------------------------------------


def test_bad_metrics_raise_and_record_nothing():
    model = tiny()
    w = TrainingRecorder(model)
    model(randn(2, 4)).sum().backward()
    with pytest.raises(ValueError, match=r"loss must be a number or a one-element tensor.*\(8,\)"):
        w.step(loss=torch.ones(8))
    with pytest.raises(ValueError, match="acc must be a number or a one-element tensor.*'high'"):
        w.step(loss=1.0, acc="high")
    with pytest.raises(ValueError, match="flag must be a number"):
        w.step(flag=True)
    with pytest.raises(ValueError, match="z must be real"):
        w.step(z=torch.tensor(1 + 2j))
    with pytest.raises(ValueError, match=r"loss must be a number.*\(2, 2\)"):
        w.log_val(loss=torch.ones(2, 2))
    assert w.steps == 0 and w.scalars == {} and w.val == {}
    w.step(loss=torch.tensor([0.5]), acc=np.float32(0.25), n=3)  # (1,) tensors and numpy are fine
    steps, values = w.snapshot()["scalars"]["loss"]
    assert steps.tolist() == [0] and values.tolist() == [0.5]
    w.detach()


def test_bad_constructor_arguments_name_what_was_expected(data):
    model = small_cnn()
    with pytest.raises(
        ValueError, match=r"probe must be a batch the model accepts.*\(2, 1, 32, 32\)"
    ):
        TrainingRecorder(model, probe=torch.rand(2, 1, 32, 32))
    with pytest.raises(TypeError, match="probe must be a batch of inputs as a tensor, got list"):
        TrainingRecorder(model, probe=[[0.0]])
    with pytest.raises(
        ValueError, match="'features.block1.cnv' does not exist.*'features.block1.conv'"
    ):
        TrainingRecorder(model, layers=["features.block1.cnv"])
    with pytest.raises(ValueError, match="'features.block1.relu' has no parameters"):
        TrainingRecorder(model, layers="features.block1.relu")
    for name in ("every", "hist_every", "features_every", "max_feature_layers", "max_channels"):
        for bad in (0, 1.5, True, "3"):
            with pytest.raises(ValueError, match=rf"{name} must be an int >= 1"):
                TrainingRecorder(model, **{name: bad})
    with pytest.raises(ValueError, match="on_nan must be 'warn', 'raise' or 'ignore', got 'stop'"):
        TrainingRecorder(model, on_nan="stop")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        TrainingRecorder(lambda x: x)
    with pytest.raises(TypeError, match="graph must be an nbviz.ModelGraph"):
        nbviz.watch(model, graph=object())
    # A numpy probe is accepted and moved to the model's dtype.
    w = TrainingRecorder(model, probe=data.images[:2].double().numpy())
    assert w.probe.dtype == torch.float32
    w.detach()


# --- 8. warnings ------------------------------------------------------------------------------


def test_step_before_backward_warns_once_naming_the_order():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    w = TrainingRecorder(model)
    with pytest.warns(RuntimeWarning, match=r"after loss\.backward\(\) and before optimizer\.step"):
        w.step()  # no backward yet: no gradients
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w.step()  # said once
        model(torch.rand(2, 4)).sum().backward()
        w.step()
    w.detach()


def test_gradient_stats_read_in_one_batch_equal_per_step_values():
    """Per-parameter norms and maxima are summed into layers when read: many pending steps
    (some sampled, one with a layer lacking gradients) give the values of each step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    w = TrainingRecorder(model, every=2)
    expected = []
    for step in range(5):
        model.zero_grad(set_to_none=True)
        out = model(torch.randn(8, 4))
        if step == 3:  # only the last layer gets gradients: the first layer's norm is 0
            out = model[2](model[1](model[0](torch.randn(8, 4)).detach()))
        out.square().sum().backward()
        layer = [
            [p.grad for p in m.parameters() if p.grad is not None] for m in (model[0], model[2])
        ]
        norms = [
            float(torch.cat([g.reshape(-1) for g in gs]).norm()) if gs else 0.0 for gs in layer
        ]
        maxes = [
            float(torch.cat([g.reshape(-1) for g in gs]).abs().max()) if gs else -1.0
            for gs in layer
        ]
        expected.append((norms, maxes))
        w.step()
    snap = w.snapshot()
    rows, steps = snap["grad_norm"]
    np.testing.assert_allclose(rows, [e[0] for e in expected], rtol=1e-6)
    max_rows, max_steps = snap["grad_max"]
    assert max_steps[:, 0].tolist() == [0, 2, 4]
    np.testing.assert_allclose(max_rows, [expected[s][1] for s in (0, 2, 4)], rtol=1e-6)
    w.detach()


def test_histograms_use_the_bins_asked_for_and_bad_bins_are_refused():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    w = TrainingRecorder(model, bins=16, hist_every=1)
    model(torch.rand(5, 4)).sum().backward()
    w.step()
    edges, rows, _ = next(iter(w.snapshot()["histograms"].values()))
    assert rows.shape[1] == 16 and len(edges) == 17
    w.detach()
    for bad in (10, 0, 2.0, True):
        with pytest.raises(ValueError, match="bins must be"):
            TrainingRecorder(model, bins=bad)
    assert not any(m._forward_hooks for m in model.modules())  # refused before any hook


# --- statistics helpers and layer choice ------------------------------------------------------


def test_abs_max_equals_the_inf_norm_for_every_kind_of_tensor():
    from nbviz.monitor.core import _abs_max

    torch.manual_seed(0)
    cases = [
        [randn(3, 4), randn(7), -randn(2, 2, 2).abs()],
        [randn(5), torch.tensor([1.0, float("nan"), -3.0])],
        [torch.tensor([-float("inf"), 2.0]), randn(4)],
        [randn(3), torch.empty(0)],  # an empty gradient: 0
        [torch.empty(0)],
        [torch.randn(3, dtype=torch.complex64), randn(2)],
        [randn(3).double(), randn(2).double()],
    ]
    for tensors in cases:  # the inf-norm of each (torch's refuses an empty tensor)
        expected = torch.stack([t.abs().amax() if t.numel() else t.new_zeros(()) for t in tensors])
        torch.testing.assert_close(_abs_max(tensors), expected, equal_nan=True)


class Tokens(nn.Module):
    """A root that owns a parameter and has children, as a timm ViT (cls_token, pos_embed)."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 4, 8))
        self.embed = nn.Linear(3, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head((self.embed(x) + self.pos).mean(1))


def test_models_whose_root_owns_parameters():
    torch.manual_seed(0)
    model = Tokens()
    w = TrainingRecorder(model, hist_every=1)
    assert w.hist_layers == ["embed", "head"]  # not the root: its histogram is everything
    model(randn(5, 4, 3)).sum().backward()
    w.step()
    snap = w.snapshot()
    # A module with children and parameters of its own comes after the leaves (its place in
    # the forward is not observed).
    assert snap["layers"] == ["embed", "head", "Tokens"]
    np.testing.assert_allclose(
        snap["latest"]["grad_norm"][-1], float(torch.linalg.vector_norm(model.pos.grad)), rtol=1e-5
    )
    assert {k for k, _ in snap["histograms"]} == {"embed", "head"}
    w.detach()
    single = nn.Linear(3, 2)  # the model is one layer: its path is ""
    w = TrainingRecorder(single, hist_every=1)
    assert w.layers == ["Linear"] and w.hist_layers == [""]
    single(randn(2, 3)).sum().backward()
    w.step()
    assert ("", "weights") in w.snapshot()["histograms"]
    w.detach()


def test_repeated_histogram_layer_is_recorded_once():
    model = tiny()
    w = TrainingRecorder(model, layers=["0", "0"], hist_every=1)
    assert w.hist_layers == ["0"]
    model(randn(2, 4)).sum().backward()
    w.step()
    _, rows, spans = w.snapshot()["histograms"][("0", "weights")]
    assert spans.tolist() == [[0, 0]]
    w.detach()
