"""The non-finite watch of `nbviz.watch` (nbviz/monitor/nonfinite.py): the first step and
layer where a NaN or an infinity began, in activations or gradients, with both checks (the
CPU's read of the output with a replay, and the device flags); what a model masks itself
is not reported; on_nan="raise" and "ignore"; hooks and model state left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monitor_helpers import hook_state, randn, small_cnn  # tests/ is on the path
from torch import nn

from nbviz.monitor import TrainingRecorder

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- the NaN / Inf watch -----------------------------------------------------------------------


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class PoisonGrad(nn.Module):
    """Identity forward; when ``on``, a NaN gradient backward (finite activations)."""

    def __init__(self):
        super().__init__()
        self.on = False

    def forward(self, x):
        return _NaNGrad.apply(x) if self.on else x


def nan_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 8),  # 0
        nn.ReLU(),  # 1
        nn.Linear(8, 8),  # 2
        nn.ReLU(),  # 3
        PoisonGrad(),  # 4
        nn.Linear(8, 8),  # 5
        nn.ReLU(),  # 6
        nn.Linear(8, 2),  # 7
    )


def run_with_fault(w, model, fault, at, steps=8):
    """Train ``steps`` steps; before the forward of step ``at``, inject ``fault``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = randn(6, 4), torch.arange(6) % 2
    for step in range(steps):
        if step == at:
            if fault == "weight":
                with torch.no_grad():
                    model[2].weight[0, 0] = float("nan")
            elif fault == "input":
                x = x.clone()
                x[1, 2] = float("nan")
            elif fault == "grad":
                model[4].on = True
            elif fault == "inf":
                with torch.no_grad():
                    model[2].bias[3] = float("inf")
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        w.step(loss=loss)
        opt.step()


def checked_recorder(model: nn.Module, eager: bool, **kwargs) -> TrainingRecorder:
    """A recorder whose activation check is the CPU one (read the model's output, scan the
    modules only when it is bad) or the one for other devices (a flag per module output on
    the device, read later), so that both run here."""
    w = TrainingRecorder(model, **kwargs)
    w.nan.eager = eager
    return w


@pytest.mark.parametrize(
    ("fault", "every", "where", "layer"),
    [
        ("weight", 1, "activations", "2"),  # the NaN weight's own output
        ("inf", 1, "activations", "2"),
        ("input", 1, "activations", "0"),  # the first layer to see the input
        ("grad", 1, "gradients", "2"),  # the deepest layer the NaN gradient reached
        ("grad", 100, "gradients", "2"),
        ("weight", 100, "activations", "2"),  # activations are checked at every step
    ],
)
@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_nonfinite_reports_first_step_and_layer(fault, every, where, layer, eager):
    model = nan_net()
    w = checked_recorder(model, eager, every=every)
    said = rf"^nbviz.watch: non-finite {where} at step 3 in '{layer}'"
    with pytest.warns(RuntimeWarning, match=said) as caught:  # (device flags: when read)
        run_with_fault(w, model, fault, at=3)  # training goes on after the fault
        bad = w.snapshot()["nonfinite"]
    assert len(caught) == 1  # said once, not at every later step
    assert w.steps == 8
    assert bad == {"step": 3, "where": where, "layer": layer}
    if fault == "grad":  # at that step, the layers after the poison stayed finite
        norms = w.snapshot()["grad_norm"][0]
        assert np.isfinite(norms[:4, w.layers.index("5") :]).all()
        assert not np.isfinite(norms[3, : w.layers.index("2") + 1]).any()
    w.detach()


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_nonfinite_step_is_the_first_even_when_read_late(eager):
    """A NaN at an unsampled step, read only at the end: the first step is reported, and at
    that step the forward (activations) came before the gradients."""
    model = nan_net()
    w = checked_recorder(model, eager, every=10)
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 5 in '2'"):
        run_with_fault(w, model, "weight", at=5, steps=12)  # no snapshot() until the end
        bad = w.snapshot()["nonfinite"]
    assert bad == {"step": 5, "where": "activations", "layer": "2"}, bad


@pytest.mark.parametrize(("every", "where"), [(1, "activations"), (100, "activations")])
@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_on_nan_raise_stops_at_that_step_and_can_still_detach(every, where, eager):
    model = nan_net()
    before = hook_state(model)
    w = checked_recorder(model, eager, every=every, on_nan="raise")
    with pytest.raises(FloatingPointError, match=rf"non-finite {where} at step 3 in '"):
        run_with_fault(w, model, "weight", at=3)
    assert w.nonfinite["step"] == 3
    assert w.nonfinite["layer"] == "2"  # the NaN weight's layer, whatever `every` is
    w.detach()
    assert hook_state(model) == before


class MaskedScores(nn.Module):
    """Scores with -inf where masked, as attention masks are; `clean` makes them finite."""

    def __init__(self):
        super().__init__()
        self.score = nn.Linear(4, 6)
        self.head = nn.Linear(6, 2)
        self.after = False  # when True, a NaN is made by the forward's own code, after `head`

    def forward(self, x):
        s = self.score(x).masked_fill(torch.arange(6) >= 4, float("-inf"))
        out = self.head(torch.where(torch.isinf(s), torch.zeros_like(s), s))
        return out * float("nan") if self.after else out


def train_steps(w: TrainingRecorder, model: nn.Module, steps: int, forward=None) -> None:
    x, y = randn(5, 4), torch.arange(5) % 2
    for _ in range(steps):
        model.zero_grad()
        F.cross_entropy((forward or model)(x), y).backward()
        w.step()


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_nonfinite_values_the_model_masks_itself_are_not_reported(eager):
    model = MaskedScores()
    w = checked_recorder(model, eager, every=1)
    train_steps(w, model, 3)
    snap = w.snapshot()
    assert snap["nonfinite"] is None and np.isfinite(snap["grad_norm"][0]).all()
    w.detach()


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_nonfinite_made_after_the_last_module_names_the_model(eager):
    """Every module's output is finite (the masked -inf aside), the model's is not."""
    model = MaskedScores()
    w = checked_recorder(model, eager)
    train_steps(w, model, 2)
    model.after = True
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 2 in 'MaskedScores'"):
        train_steps(w, model, 2)
        bad = w.snapshot()["nonfinite"]
    assert bad == {"step": 2, "where": "activations", "layer": "MaskedScores"}
    w.detach()


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_nonfinite_found_when_the_model_is_run_piecewise(eager):
    """The loop calls the layers one by one: the model's own forward never ends, so every
    module output is checked at step()."""
    model = nan_net()
    w = checked_recorder(model, eager)

    def piecewise(x):
        for layer in model:
            x = layer(x)
        return x

    train_steps(w, model, 2, piecewise)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="at step 2 in '2'"):
        train_steps(w, model, 2, piecewise)
        assert w.snapshot()["nonfinite"] == {"step": 2, "where": "activations", "layer": "2"}
    assert w.nan.outputs == []
    w.detach()


def test_modules_where_no_nonfinite_value_can_begin_are_not_hooked_for_it():
    """ReLU, max pooling and Flatten turn finite inputs into finite outputs: the watch skips
    them (a ReLU keeps its dead-unit hook), and every other module gets one hook."""
    model = small_cnn()
    w = TrainingRecorder(model, layers=["classifier.fc"])
    hooks = {p: len(m._forward_hooks) for p, m in model.named_modules()}
    kinds = {p: type(m) for p, m in model.named_modules()}
    for path, n in hooks.items():
        if kinds[path] is nn.ReLU:
            assert n == 1, path  # dead units only
        elif kinds[path] in (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Flatten):
            assert n == 0, path
        elif kinds[path] in (nn.Conv2d, nn.BatchNorm2d):
            assert n == 1, path
    assert hooks["classifier.fc"] == 2 and hooks[""] == 1  # + its histogram; the model
    w.detach()
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check", "device-flags"])
def test_leaf_hooks_serve_the_first_forward_only_when_checked_on_the_cpu(eager):
    """An empty hook on every module costs a classroom model 2-3 % of its step: the CPU
    check keeps the model's own hook alone after the first forward (which fixes the layer
    order); device flags need a hook per module, and keep them."""
    model = nan_net()
    w = checked_recorder(model, eager, every=1000, hist_every=1000)
    hooked = [m for m in model if not isinstance(m, nn.ReLU)]
    assert all(len(m._forward_hooks) >= 1 for m in hooked)  # (+ histograms: first forward)
    train_steps(w, model, 2)
    assert all(len(m._forward_hooks) == (0 if eager else 1) for m in hooked)
    assert len(model._forward_hooks) == 1 and w.layers == ["0", "2", "5", "7"]
    w.detach()
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


class NormedDropout(nn.Module):
    """Batch norm and dropout, as a forward replay must leave them; a keyword input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 2)

    def forward(self, x, *, scale=1.0):
        return self.head(self.drop(self.bn(self.fc(x * scale))))


def test_the_replay_of_a_bad_forward_leaves_rng_and_buffers_as_found():
    """A non-finite output on the CPU is traced by running that forward once more: the RNG
    stream, the batch-norm statistics and the weights then equal those of a run without
    the recorder, bit for bit."""

    def train(watch: bool):
        torch.manual_seed(0)
        model = NormedDropout()
        w = TrainingRecorder(model, every=1000, hist_every=1000) if watch else None
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(6, 4), torch.arange(6) % 2
        for step in range(4):
            scale = float("inf") if step == 2 else 1.0  # inf * 0 inputs: NaN at `fc`
            out = model(x, scale=scale)
            opt.zero_grad()
            F.cross_entropy(out, y).backward()
            if w is not None:
                w.step()
            opt.step()
        return model, w, torch.get_rng_state()

    bare, _, rng = train(False)
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 2 in 'fc'"):
        watched, w, watched_rng = train(True)
    assert w.nonfinite == {"step": 2, "where": "activations", "layer": "fc"}
    assert torch.equal(rng, watched_rng)
    for a, b in zip(bare.state_dict().values(), watched.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    w.detach()


def test_no_module_output_is_held_after_the_forward():
    """The CPU check holds this forward's module outputs only until the model's output is
    read: nothing outlives the forward (it would keep activations through the backward)."""
    model = nan_net()
    w = checked_recorder(model, True)
    out = model(randn(3, 4))
    assert w.nan.outputs == []
    out.sum().backward()
    w.step()
    with torch.no_grad():  # a validation pass is not looked at at all
        model(randn(3, 4))
    assert w.nan.outputs == []
    w.detach()


def test_on_nan_raise_on_a_nonfinite_scalar():
    model = nan_net()
    w = TrainingRecorder(model, on_nan="raise")
    model(randn(2, 4)).sum().backward()
    with pytest.raises(FloatingPointError, match="non-finite scalar at step 0 in 'loss'"):
        w.step(loss=torch.tensor(float("inf")))
    w.detach()


def test_on_nan_ignore_records_nothing():
    model = nan_net()
    w = TrainingRecorder(model, every=1, on_nan="ignore")
    run_with_fault(w, model, "weight", at=2)
    snap = w.snapshot()
    assert snap["nonfinite"] is None and snap["steps"] == 8
    assert not np.isfinite(snap["grad_norm"][0][2:]).all()  # still visible in the rows
    w.detach()


def test_nonfinite_in_a_model_that_is_one_layer_names_it_as_the_layers_do():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    w = TrainingRecorder(model, every=1)
    x = randn(4, 3)
    x[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 0 in 'Linear'"):
        model(x).sum().backward()
        w.step()
    assert w.snapshot()["nonfinite"] == {"step": 0, "where": "activations", "layer": "Linear"}
    assert w.layers == ["Linear"]
    w.detach()


def test_nonfinite_values_left_out_of_histograms():
    model = nan_net()
    w = TrainingRecorder(model, every=1, hist_every=1, layers=["2"])
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 2 in '2'"):
        run_with_fault(w, model, "inf", at=2, steps=3)
    edges, rows, _ = w.snapshot()["histograms"][("2", "weights")]
    assert np.isfinite(edges).all() and np.isfinite(rows).all()
    assert rows[-1].sum() == pytest.approx(1.0)  # fractions of the finite values
    w.detach()


def test_on_nan_warn_says_so_once():
    model = nan_net()
    w = TrainingRecorder(model, every=100)
    with pytest.warns(RuntimeWarning, match="non-finite activations at step 3") as caught:
        run_with_fault(w, model, "weight", at=3)
        w.snapshot()
        w.snapshot()
    assert len([c for c in caught if "nbviz.watch" in str(c.message)]) == 1
    w.detach()


def test_integer_outputs_are_not_reported_and_a_hookless_model_still_is():
    """A model whose output holds no floating values has nothing to report; a model with no
    hooked module (a bare ReLU) still has its output checked."""

    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x).argmax(1)

    model = Argmax()
    w = TrainingRecorder(model)
    model(torch.tensor([[float("nan"), 0.0, 1.0]]))
    with pytest.warns(RuntimeWarning, match="found no gradients"):  # (no backward here)
        w.step()
    assert w.snapshot()["nonfinite"] is None
    w.detach()
    relu = nn.ReLU()
    w = TrainingRecorder(relu)
    with pytest.warns(RuntimeWarning, match="non-finite activations"):
        relu(torch.tensor([float("nan")], requires_grad=True))
    w.detach()
