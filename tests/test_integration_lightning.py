"""nbviz.integrations.lightning.NbvizCallback in real PyTorch Lightning fits on the CPU:
what the views show against what the module itself computed, bitwise the same weights
with and without the callback, the run directory, the messages for what is missing, and a
two-process ``ddp`` fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from run_helpers import failure
from sklearn.metrics import confusion_matrix
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning.pytorch")

from nbviz.confusion.runlog import RecordedConfusion  # noqa: E402
from nbviz.integrations.lightning import NbvizCallback  # noqa: E402
from nbviz.monitor.runlog import RecordedRun  # noqa: E402

K = 3
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet(one_thread):
    """Lightning's advice for real runs (more dataloader workers, a logger) is not what
    these tests are about; nbviz's own warnings still fail a test that does not expect them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        yield


def data(n: int = 192, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return TensorDataset(x, y)


def loader(ds: TensorDataset, batch_size: int = 32, shuffle: bool = False) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g)


class Train(L.LightningModule):
    """A small MLP with dropout (training draws random numbers) and no validation; it keeps
    what it computed itself, the reference the callback's views are checked against."""

    def __init__(self, *, returns: str = "dict", log_train: bool = True, lr: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, K))
        self.returns, self.log_train, self.lr = returns, log_train, lr
        self.losses: list[float] = []  # each training batch's loss
        self.val_preds: list[list[int]] = []  # per validation run (fit's, not the sanity check's)
        self.val_targets: list[list[int]] = []
        self.val_losses: list[float] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        self.losses.append(loss.item())
        if self.log_train:
            self.log("train_acc", (out.argmax(1) == y).float().mean())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Net(Train):
    """Train, with a validation_step that returns what the confusion matrix reads."""

    def on_validation_epoch_start(self):
        if not self.trainer.sanity_checking:
            self.val_preds.append([])
            self.val_targets.append([])
            self._val = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        self.log("val_loss", loss)
        if not self.trainer.sanity_checking:
            self.val_preds[-1] += out.argmax(1).tolist()
            self.val_targets[-1] += y.tolist()
            self._val.append((loss.item(), len(y)))
        if self.returns == "dict":
            return {"loss": loss, "preds": out, "target": y, "inputs": x.reshape(-1, 1, 2, 4)}
        return loss

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            total = sum(n for _, n in self._val)
            self.val_losses.append(sum(v * n for v, n in self._val) / total)


def trainer(callbacks=(), **kw) -> L.Trainer:
    options = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    options.update(kw)
    return L.Trainer(callbacks=list(callbacks), **options)


def fit(module, cb=None, *, val=True, **kw):
    t = trainer([cb] if cb is not None else [], **kw)
    t.fit(module, loader(data(), shuffle=True), loader(data(96, seed=5)) if val else None)
    return t


def test_import_nbviz_imports_neither_framework():
    code = (
        "import sys, nbviz, nbviz.integrations; "
        "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers', "
        "'accelerate') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_fit_shows_its_curves_validation_points_and_confusion_matrix():
    torch.manual_seed(0)
    module = Net()
    cb = NbvizCallback(classes=["a", "b", "c"], every=2, hist_every=4)
    fit(module, cb)
    steps = 2 * 6  # 192 samples in batches of 32, two epochs
    snap = cb.monitor.recorder.snapshot()
    assert snap["steps"] == steps
    # "loss": what training_step returned (the module logs no loss of its own), at every
    # step; "acc": what it logged as train_acc.
    assert set(snap["scalars"]) == {"loss", "acc"}
    s, v = snap["scalars"]["loss"]
    assert s.tolist() == list(range(steps))
    np.testing.assert_allclose(v, module.losses, rtol=1e-6)
    assert len(snap["grad_norm"][1]) == steps and snap["layers"] == ["net.0", "net.3"]
    # Validation points: Lightning's epoch mean of val_loss, drawn on the "loss" chart at
    # the last step of each epoch.
    s, v = snap["val"]["loss"]
    assert s.tolist() == [5, 11]
    np.testing.assert_allclose(v, module.val_losses, rtol=1e-5)
    # One closed epoch per validation run, each what the module predicted (not the sanity
    # check's batches), with example images kept per cell.
    cm = cb.confusion
    assert cm.classes == ["a", "b", "c"] and len(cm.history) == 2
    for got, preds, targets in zip(cm.history, module.val_preds, module.val_targets, strict=True):
        assert got.tolist() == confusion_matrix(targets, preds, labels=range(K)).tolist()
        assert got.sum() == 96
    t, p = np.argwhere(cm.history[-1] > 0)[0]
    assert len(cm.examples(int(t), int(p))) > 0
    # The views stay reachable, hooks are gone from the model.
    assert list(cb.view.children) == [cb.monitor, cb.confusion]
    assert not cb.monitor.recorder.attached
    assert all(not m._forward_hooks for m in module.modules())


def test_the_classes_are_found_from_the_scores_when_not_given():
    torch.manual_seed(0)
    cb = NbvizCallback()
    fit(Net(), cb, max_epochs=1)
    assert cb.confusion.classes == ["0", "1", "2"]
    assert cb.confusion.history[0].sum() == 96
    assert cb.confusion.title == "validation"


@pytest.mark.parametrize("accumulate", [1, 3])
def test_training_with_the_callback_gives_bitwise_the_same_weights(accumulate):
    def weights(cb):
        torch.manual_seed(0)
        module = Net()
        fit(module, cb, accumulate_grad_batches=accumulate)
        return module.state_dict()

    probe = data(8, seed=9).tensors[0]
    cb = NbvizCallback(probe=probe, every=1, hist_every=1, features_every=1)
    without, with_cb = weights(None), weights(cb)
    assert without.keys() == with_cb.keys()
    for name in without:
        assert torch.equal(without[name], with_cb[name]), name
    # Dropout really drew random numbers: another seed trains to other weights.
    torch.manual_seed(1)
    other = Net()
    fit(other, None, accumulate_grad_batches=accumulate)
    assert not torch.equal(other.state_dict()["net.0.weight"], without["net.0.weight"])
    # One monitor step per optimizer step.
    assert cb.monitor.recorder.steps == 2 * -(-6 // accumulate)


def test_gradient_accumulation_draws_the_mean_loss_of_each_optimizer_step():
    torch.manual_seed(0)
    module = Net()
    cb = NbvizCallback()
    fit(module, cb, accumulate_grad_batches=2, max_epochs=1)
    s, v = cb.monitor.recorder.snapshot()["scalars"]["loss"]
    assert s.tolist() == [0, 1, 2]
    expected = np.asarray(module.losses).reshape(3, 2).mean(1)
    np.testing.assert_allclose(v, expected, rtol=1e-6)


def test_a_logged_loss_is_drawn_once_with_its_validation_points():
    class LogsLoss(Net):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

    torch.manual_seed(0)
    module = LogsLoss()
    cb = NbvizCallback()
    fit(module, cb, max_epochs=1)
    snap = cb.monitor.recorder.snapshot()
    assert set(snap["scalars"]) == {"loss", "acc"}  # train_loss(_step): no second copy
    np.testing.assert_allclose(snap["scalars"]["loss"][1], module.losses, rtol=1e-6)
    assert set(snap["val"]) == {"loss"}


def test_a_run_directory_holds_what_the_views_show(tmp_path):
    torch.manual_seed(0)
    cb = NbvizCallback(classes=["a", "b", "c"], logdir=tmp_path / "run", every=2)
    fit(Net(), cb)
    run = RecordedRun(tmp_path / "run")
    run.update()
    snap, live = run.snapshot(), cb.monitor.recorder.snapshot()
    assert snap["steps"] == live["steps"] == 12
    for kind in ("scalars", "val"):
        for name, (s, v) in live[kind].items():
            np.testing.assert_array_equal(snap[kind][name][0], s)
            np.testing.assert_allclose(snap[kind][name][1], v)
    recorded = RecordedConfusion(tmp_path / "run")
    recorded.update()
    assert recorded.classes == ["a", "b", "c"]
    dense = []
    for index, value in recorded.history:
        m = np.zeros(K * K, np.int64)
        m[index] = value
        dense.append(m.reshape(K, K).tolist())
    assert dense == [h.tolist() for h in cb.confusion.history]


def test_a_module_that_gives_no_loss_gets_a_message_and_trains_on():
    class ManualNoLoss(Net):
        """Manual optimization, backward called directly, nothing logged."""

        def __init__(self):
            super().__init__(log_train=False)
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    torch.manual_seed(0)
    module = ManualNoLoss()
    before = module.net[0].weight.detach().clone()
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="the training curves have no loss") as caught:
        fit(module, cb, max_epochs=1)
    message = str(next(w.message for w in caught if "no loss" in str(w.message)))
    assert 'self.log("train_loss", loss)' in message and "manual_backward" in message
    assert not torch.equal(module.net[0].weight, before)  # trained
    snap = cb.monitor.recorder.snapshot()
    assert snap["steps"] == 6 and len(snap["grad_norm"][1]) == 6  # gradients still shown


def test_manual_backward_reaches_the_curves():
    class Manual(Net):
        def __init__(self):
            super().__init__(log_train=False)
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.losses.append(loss.item())
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

    torch.manual_seed(0)
    module = Manual()
    cb = NbvizCallback()
    fit(module, cb, max_epochs=1)
    s, v = cb.monitor.recorder.snapshot()["scalars"]["loss"]
    np.testing.assert_allclose(v, module.losses, rtol=1e-6)


def test_validation_that_returns_no_predictions_gets_a_message_and_trains_on():
    torch.manual_seed(0)
    module = Net(returns="loss")
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="needs validation_step to return") as caught:
        fit(module, cb)
    messages = [str(w.message) for w in caught if str(w.message).startswith("nbviz")]
    assert len(messages) == 1  # once per fit
    assert '"preds": logits' in messages[0] and "a tensor of shape ()" in messages[0]
    assert cb.confusion is None
    assert len(module.val_losses) == 2 and cb.monitor.recorder.steps == 12
    assert set(cb.monitor.recorder.snapshot()["val"]) == {"loss"}  # logged values still drawn


def test_a_fit_without_validation_gets_a_message_and_trains_on():
    torch.manual_seed(0)
    module = Train()
    cb = NbvizCallback(classes=["a", "b", "c"])
    with pytest.warns(UserWarning, match="the confusion matrix needs validation"):
        fit(module, cb, val=False)
    assert cb.monitor.recorder.steps == 12
    assert cb.confusion.history == []
    # confusion=False: no matrix, no message.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        quiet = NbvizCallback(confusion=False)
        fit(Train(), quiet, val=False, max_epochs=1)
    assert quiet.confusion is None and quiet.monitor.recorder.steps == 6


def test_predicted_labels_need_the_number_of_classes():
    class Labels(Net):
        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            return {"preds": out["preds"].argmax(1), "target": out["target"]}

    torch.manual_seed(0)
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="pass classes=\\[names\\] or num_classes=K"):
        fit(Labels(), cb, max_epochs=1)
    assert cb.confusion is None
    cb = NbvizCallback(num_classes=K)
    fit(Labels(), cb, max_epochs=1)
    assert cb.confusion.history[0].sum() == 96


def test_a_failing_fit_leaves_no_hook_on_the_model():
    class Diverges(Net):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if batch_idx == 2 else loss

    torch.manual_seed(0)
    module = Diverges()
    cb = NbvizCallback(on_nan="raise")
    with pytest.raises(FloatingPointError):
        fit(module, cb, max_epochs=1)
    assert not cb.monitor.recorder.attached
    assert all(not m._forward_hooks for m in module.modules())


def test_each_fit_makes_new_views():
    torch.manual_seed(0)
    cb = NbvizCallback()
    module = Net()
    fit(module, cb, max_epochs=1)
    first = cb.monitor
    fit(module, cb, max_epochs=1)
    assert cb.monitor is not first and cb.monitor.recorder.steps == 6
    assert first.recorder.steps == 6 and not first.recorder.attached


def test_display_shows_the_views_when_asked(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    torch.manual_seed(0)
    fit(Net(), NbvizCallback(), max_epochs=1)  # not a notebook kernel: nothing shown
    assert shown == []
    cb = NbvizCallback(display=True)
    fit(Net(), cb, max_epochs=1)
    assert shown == [cb.view]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"every": 0}, "every must be an int >= 1"),
        ({"on_nan": "stop"}, "on_nan must be 'warn', 'raise' or 'ignore'"),
        ({"display": "yes"}, "display must be True, False or None"),
        ({"classes": ["only"]}, "at least 2 classes"),
        ({"classes": ["a", "b"], "num_classes": 3}, "num_classes=3 but 2 class names"),
        ({"log_every": 0}, "log_every must be a number of seconds > 0"),
    ],
)
def test_bad_arguments_are_refused_when_the_callback_is_made(kwargs, error):
    with pytest.raises(ValueError, match=error):
        NbvizCallback(**kwargs)
    with pytest.raises(TypeError, match="unexpected keyword argument 'classe'"):
        NbvizCallback(classe=["a", "b"])


DDP_JOB = """
import json, sys, warnings
import torch
import lightning.pytorch as L
sys.path.insert(0, {tests!r})
from test_integration_lightning import Net, data, loader
from nbviz.integrations.lightning import NbvizCallback

warnings.filterwarnings("ignore")
torch.manual_seed(0)
module = Net()
cb = NbvizCallback(classes=["a", "b", "c"], logdir={run!r})
t = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", callbacks=[cb],
              logger=False,
              enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False)
t.fit(module, loader(data(), shuffle=True), loader(data(96, seed=5)))
result = {{
    "rank": t.global_rank,
    "history": [h.tolist() for h in cb.confusion.history],
    "own": [[int(p), int(y)] for ps, ys in zip(module.val_preds, module.val_targets)
            for p, y in zip(ps, ys)],
    "steps": cb.monitor.recorder.steps,
}}
with open({out!r} + f".{{t.global_rank}}", "w") as f:
    json.dump(result, f)
"""


def test_a_two_process_ddp_fit(tmp_path):
    job = tmp_path / "job.py"
    run, out = tmp_path / "run", tmp_path / "result.json"
    job.write_text(DDP_JOB.format(tests=str(REPO / "tests"), run=str(run), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(job)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, failure(done)
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    # Each rank validated its half; the closed epochs sum both ranks' counts, on both.
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 2
    own = np.zeros((K, K), np.int64)  # both ranks' own predictions in the last epoch
    for r in ranks:
        pairs = np.asarray(r["own"]).reshape(2, -1, 2)[-1]  # (epoch, sample, [pred, true])
        np.add.at(own, (pairs[:, 1], pairs[:, 0]), 1)
    assert ranks[0]["history"][-1] == own.tolist()
    assert np.asarray(ranks[0]["history"][-1]).sum() == 96
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * 3  # 96 samples a rank
    # Rank zero wrote the run: its steps and the summed matrices.
    recorded = RecordedRun(run)
    recorded.update()
    assert recorded.snapshot()["steps"] == 6
    confusion = RecordedConfusion(run)
    confusion.update()
    assert len(confusion.reader.segments()) == 1 and len(confusion.history) == 2
