"""nbviz.integrations.huggingface.NbvizCallback in real Hugging Face ``Trainer`` runs on
the CPU, with tiny models built from configs (no weights): what the views show against the
Trainer's own logs and evaluation predictions, bitwise the same weights with and without
the callback, the run directory, the messages for what is missing, and a two-process
``torchrun`` job."""

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
from run_helpers import failure
from sklearn.metrics import confusion_matrix

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    Trainer,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from nbviz.confusion.runlog import RecordedConfusion  # noqa: E402
from nbviz.integrations.huggingface import NbvizCallback  # noqa: E402
from nbviz.monitor.runlog import RecordedRun  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAMES = ["neg", "mid", "pos"]
SEQ = 12


@pytest.fixture(autouse=True)
def _quiet(one_thread):
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        # The Trainer's own advice is not what these tests are about; nbviz's warnings still
        # fail a test that does not expect them.
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


class Texts(torch.utils.data.Dataset):
    """Token ids whose first two tokens decide the class (3 classes); ``tokens=True``:
    a label per token (-100 on the padding at the end), for token classification."""

    def __init__(self, n: int, seed: int, tokens: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 60, (n, SEQ), generator=g)
        self.y = (self.ids[:, 0] > 32).long() + (self.ids[:, 1] > 45).long()
        self.mask = torch.ones(n, SEQ, dtype=torch.long)
        self.mask[:, -3:] = 0
        self.tokens = tokens

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.tokens:
            labels = (self.ids[i] % 3).masked_fill(self.mask[i] == 0, -100)
        else:
            labels = self.y[i]
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": labels}


class Images(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 16, 16, generator=g)
        self.y = (self.x[:, 0].mean((1, 2)) > 0.5).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def bert(cls=BertForSequenceClassification, **kw):
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=SEQ,
        num_labels=3,
        id2label=dict(enumerate(NAMES)),
        label2id={n: i for i, n in enumerate(NAMES)},
        **kw,
    )
    torch.manual_seed(0)
    return cls(config)


class Reference:
    """compute_metrics: the confusion matrix of the Trainer's own gathered predictions,
    once per evaluation (the independent reference)."""

    def __init__(self, k: int = 3):
        self.k, self.matrices = k, []

    def __call__(self, pred):
        logits, labels = pred.predictions, pred.label_ids
        keep = labels.reshape(-1) >= 0
        preds = logits.reshape(-1, logits.shape[-1]).argmax(-1)[keep]
        m = confusion_matrix(labels.reshape(-1)[keep], preds, labels=range(self.k))
        self.matrices.append(m)
        return {"accuracy": float(np.trace(m) / m.sum())}


def train(model, cb, tmp_path, *, train_ds=None, eval_ds=None, metrics=None, **kw):
    options = dict(
        num_train_epochs=2,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=5e-3,
        eval_strategy="epoch",
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    options.update(kw)
    args = TrainingArguments(str(tmp_path / "out"), **options)
    trainer = Trainer(
        model,
        args,
        train_dataset=train_ds if train_ds is not None else Texts(128, 1),
        eval_dataset=eval_ds if eval_ds is not None else Texts(64, 2),
        compute_metrics=metrics,
        callbacks=[cb] if cb is not None else [],
    )
    trainer.train()
    return trainer


def test_train_shows_the_trainers_logs_gradients_and_confusion_matrix(tmp_path):
    model, ref = bert(), Reference()
    cb = NbvizCallback(every=2, hist_every=4)
    trainer = train(model, cb, tmp_path, metrics=ref)
    snap = cb.monitor.recorder.snapshot()
    assert snap["steps"] == trainer.state.global_step == 16
    assert len(snap["grad_norm"][1]) == 16 and "classifier" in snap["layers"]
    # Training curves: the Trainer's logs, at the step they describe.
    logged = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    assert set(snap["scalars"]) == {"loss", "grad_norm", "learning_rate"}
    for name in snap["scalars"]:
        s, v = snap["scalars"][name]
        assert s.tolist() == [h["step"] - 1 for h in logged]
        np.testing.assert_allclose(v, [h[name] for h in logged])
    # Validation points: the evaluation's logs without "eval_", on the same charts.
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert set(snap["val"]) == {"loss", "accuracy"}
    s, v = snap["val"]["loss"]
    assert s.tolist() == [h["step"] - 1 for h in evals] == [7, 15]
    np.testing.assert_allclose(v, [h["eval_loss"] for h in evals])
    # The confusion matrix: one epoch per evaluation, equal to the Trainer's own predictions.
    cm = cb.confusion
    assert cm.classes == NAMES
    assert [m.tolist() for m in cm.history] == [m.tolist() for m in ref.matrices]
    assert cm.history[-1].sum() == 64
    # Reachable after train(); the model carries no hook of nbviz's.
    assert list(cb.view.children) == [cb.monitor, cb.confusion]
    assert all(not m._forward_hooks for m in model.modules())


def test_the_confusion_matrix_needs_no_compute_metrics(tmp_path):
    ref, plain = Reference(), NbvizCallback()
    train(bert(), plain, tmp_path / "a")
    train(bert(), NbvizCallback(), tmp_path / "b", metrics=ref)
    assert [m.tolist() for m in plain.confusion.history] == [m.tolist() for m in ref.matrices]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_training_with_the_callback_gives_bitwise_the_same_weights(tmp_path, accumulate):
    probe = {k: v[:4] for k, v in Texts(4, 9)[:4].items() if k != "labels"}
    cb = NbvizCallback(probe=probe, every=1, hist_every=1, features_every=1)
    trained = []
    for i, callback in enumerate([None, cb]):
        model = bert()
        train(model, callback, tmp_path / str(i), gradient_accumulation_steps=accumulate)
        trained.append(model.state_dict())
    without, with_cb = trained
    assert without.keys() == with_cb.keys()
    for name in without:
        assert torch.equal(without[name], with_cb[name]), name
    assert cb.monitor.recorder.steps == 16 // accumulate  # one step per optimizer step
    # Dropout really drew random numbers: another data seed trains to other weights.
    other = bert()
    train(other, None, tmp_path / "other", gradient_accumulation_steps=accumulate, seed=1)
    assert not torch.equal(other.state_dict()["classifier.weight"], without["classifier.weight"])


def test_token_classification_counts_every_labelled_token(tmp_path):
    ref = Reference()
    cb = NbvizCallback()
    train(
        bert(BertForTokenClassification),
        cb,
        tmp_path,
        train_ds=Texts(64, 1, tokens=True),
        eval_ds=Texts(32, 2, tokens=True),
        metrics=ref,
        num_train_epochs=1,
    )
    assert [m.tolist() for m in cb.confusion.history] == [m.tolist() for m in ref.matrices]
    assert cb.confusion.history[0].sum() == 32 * (SEQ - 3)  # not the -100 padding


def test_an_image_classifier_shows_feature_maps_and_examples(tmp_path):
    config = ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config)
    ref = Reference(2)
    cb = NbvizCallback(probe={"pixel_values": Images(4, 7).x}, features_every=4)
    train(model, cb, tmp_path, train_ds=Images(64, 1), eval_ds=Images(32, 2), metrics=ref)
    assert cb.confusion.classes == ["LABEL_0", "LABEL_1"]
    assert [m.tolist() for m in cb.confusion.history] == [m.tolist() for m in ref.matrices]
    t, p = np.argwhere(cb.confusion.history[-1] > 0)[0]
    assert cb.confusion.examples(int(t), int(p)).shape[1:] == (16, 16, 3)
    snap = cb.monitor.recorder.snapshot()
    assert list(snap["features"]) == ["vit.embeddings.patch_embeddings.projection"]
    assert snap["features"]["vit.embeddings.patch_embeddings.projection"].shape[:2] == (4, 16)


def test_a_model_that_is_not_a_classifier_gets_no_matrix_and_no_message(tmp_path):
    class Masked(Texts):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["labels"] = item["input_ids"].masked_fill(item["attention_mask"] == 0, -100)
            return item

    cb = NbvizCallback()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train(bert(BertForMaskedLM), cb, tmp_path, train_ds=Masked(64, 1), eval_ds=Masked(32, 2))
    assert cb.confusion is None and cb.monitor.recorder.steps == 8
    assert set(cb.monitor.recorder.snapshot()["val"]) == {"loss"}


def test_a_run_directory_holds_what_the_views_show(tmp_path):
    cb = NbvizCallback(logdir=tmp_path / "run", every=2)
    train(bert(), cb, tmp_path)
    run = RecordedRun(tmp_path / "run")
    run.update()
    snap, live = run.snapshot(), cb.monitor.recorder.snapshot()
    assert snap["steps"] == live["steps"] == 16
    for kind in ("scalars", "val"):
        assert set(snap[kind]) == set(live[kind])
        for name, (s, v) in live[kind].items():
            np.testing.assert_array_equal(snap[kind][name][0], s)
            np.testing.assert_allclose(snap[kind][name][1], v)
    recorded = RecordedConfusion(tmp_path / "run")
    recorded.update()
    assert recorded.classes == NAMES and len(recorded.history) == 2


def test_a_trainer_without_evaluation_gets_a_message_and_trains_on(tmp_path):
    model = bert()
    before = model.classifier.weight.detach().clone()
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="the confusion matrix needs evaluation") as caught:
        train(model, cb, tmp_path, eval_strategy="no", eval_ds=None)
    message = str(caught[0].message)
    assert "eval_strategy='epoch'" in message and "eval_dataset=" in message
    assert not torch.equal(model.classifier.weight, before)  # trained
    assert cb.confusion.history == [] and cb.monitor.recorder.steps == 16


def test_logging_that_draws_no_loss_gets_a_message(tmp_path):
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="logs every 500 steps but trains 16"):
        train(bert(), cb, tmp_path, logging_steps=500)
    assert cb.monitor.recorder.steps == 16
    assert "loss" not in cb.monitor.recorder.snapshot()["scalars"]


def test_labels_taken_out_before_the_forward_get_a_message(tmp_path):
    cb = NbvizCallback()
    with pytest.warns(UserWarning, match="counted nothing in this evaluation") as caught:
        train(bert(), cb, tmp_path, label_smoothing_factor=0.1)
    assert len([w for w in caught if "counted nothing" in str(w.message)]) == 1  # once
    assert cb.confusion.history == [] and cb.monitor.recorder.steps == 16


def test_bad_arguments_are_refused_when_the_callback_is_made():
    with pytest.raises(ValueError, match="hist_every must be an int >= 1"):
        NbvizCallback(hist_every=0)
    with pytest.raises(TypeError, match="classes must be a sequence of class names"):
        NbvizCallback(classes=3)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        NbvizCallback(logging_steps=10)


DDP_JOB = """
import json, sys, warnings
import torch
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_integration_huggingface import Reference, Texts, bert, train
from nbviz.integrations.huggingface import NbvizCallback

warnings.filterwarnings("ignore")
ref = Reference()
cb = NbvizCallback(logdir={run!r})
trainer = train(bert(), cb, Path({tmp!r}), metrics=ref)
rank = trainer.args.process_index
with open({out!r} + f".{{rank}}", "w") as f:
    json.dump({{
        "history": [h.tolist() for h in cb.confusion.history],
        "reference": [m.tolist() for m in ref.matrices],
        "steps": cb.monitor.recorder.steps,
        "world": trainer.args.world_size,
    }}, f)
"""


def test_a_two_process_torchrun_job(tmp_path):
    job = tmp_path / "job.py"
    run, out = tmp_path / "run", tmp_path / "result.json"
    job.write_text(
        DDP_JOB.format(tests=str(REPO / "tests"), run=str(run), tmp=str(tmp_path), out=str(out))
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*launch, str(job)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, failure(done)
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    # Each process counted its share of the evaluation set; every closed epoch sums both,
    # equal to the Trainer's own gathered predictions.
    assert ranks[0]["history"] == ranks[1]["history"] == ranks[0]["reference"]
    assert sum(map(sum, ranks[0]["history"][-1])) == 64
    assert ranks[0]["steps"] == ranks[1]["steps"] == 8  # 64 samples a process, batches of 16
    recorded = RecordedConfusion(run)
    recorded.update()
    assert len(recorded.reader.segments()) == 1 and len(recorded.history) == 2
    monitor = RecordedRun(run)
    monitor.update()
    assert monitor.snapshot()["steps"] == 8
