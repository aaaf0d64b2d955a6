"""What nbviz's framework callbacks cost a training loop, beside the frameworks' own
TensorBoard logging.

Two loops, each in three modes over the same steps, in rounds whose order rotates
(medians of the per-round ratios, which cancels most of a shared machine's drift):

- **Lightning**: a small CNN on nbviz's shapes (32x32, batch 32) that logs
  ``train_loss`` and ``train_acc`` every step and ``val_loss`` each validation, with
  ``Trainer(logger=False)`` (``bare``), with ``callbacks=[NbvizCallback()]`` (``nbviz``,
  its defaults: gradient norms every step, update ratios every 20, histograms every
  100, the live confusion matrix of the validation set) and with Lightning's
  ``TensorBoardLogger`` writing every logged value every step (``log_every_n_steps=1``)
  (``tensorboard``).
- **Hugging Face**: a 2-layer BERT (hidden 128, sequence 64, batch 16, built from a
  config) for 3-class sequence classification, logging every 5 steps and evaluating
  each epoch; ``report_to="none"`` (``bare``), ``callbacks=[NbvizCallback()]``
  (``nbviz``) and ``report_to="tensorboard"`` (``tensorboard``: the Trainer's
  ``TensorBoardCallback`` writes the same logs).

Both nbviz modes also run with ``logdir=`` (``nbviz+logdir``), recording to a run
directory as TensorBoard writes its event file. Views are made but not displayed (no
kernel: the widgets' messages go nowhere; ``monitor_overhead`` measures a displayed
dashboard in a real kernel). Besides the wall time of ``fit``/``train``, each mode
reports the seconds spent inside its callback's or logger's hooks on the training
thread, measured around every hook call: the cost a step sees, steady on a busy machine.

    python -m benchmarks.integrations_overhead            # the table in docs/benchmarks.md
    python -m benchmarks.integrations_overhead --quick
    python -m benchmarks.integrations_overhead --only lightning --rounds 8
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

med = statistics.median
MODES = ("bare", "nbviz", "nbviz+logdir", "tensorboard", "tensorboard+grad_norm")


# Hooks that run once per fit (making the views, closing the run), apart from the per-step cost.
ONCE = {"on_fit_start", "on_fit_end", "on_train_begin", "on_train_end", "on_init_end", "finalize"}


class HookTimer:
    """CPU seconds spent inside the wrapped methods of some objects (the calling thread's
    own: steady while other processes share the cores): ``seconds`` in the hooks that run
    during training, ``once`` in those of `ONCE`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.once = 0.0

    def wrap(self, obj: object, names: list[str], base: type | None = None) -> None:
        """Time ``obj``'s methods of these names (only those its class defines over
        ``base``'s: a hook it inherits does nothing and would time only the wrapper)."""
        for name in names:
            method = getattr(obj, name, None)
            if method is None or (base is not None and _inherited(obj, name, base)):
                continue

            @functools.wraps(method)
            def timed(*args, __m=method, **kwargs):
                t0 = time.thread_time()
                try:
                    return __m(*args, **kwargs)
                finally:
                    spent = time.thread_time() - t0
                    if __m.__name__ in ONCE:
                        self.once += spent
                    else:
                        self.seconds += spent

            setattr(obj, name, timed)


def _inherited(obj: object, name: str, base: type) -> bool:
    return getattr(type(obj), name, None) is getattr(base, name, None)


@dataclass
class Pass:
    """One pass: wall seconds of the fit, CPU seconds of the process over it (every thread:
    the writers' too), CPU seconds inside the hooks during training and in those that run
    once, optimizer steps."""

    seconds: float
    cpu: float
    hooks: float
    once: float
    steps: int


# --- Lightning -----------------------------------------------------------------------------------


def lightning_pass(
    mode: str, epochs: int, workdir: Path, *, width: int, size: int, batch: int, n: int
) -> Pass:
    """One ``fit`` in ``mode``: SmallCNN of ``width`` on ``n`` shapes of ``size``."""
    import lightning.pytorch as L
    import torch.nn.functional as F
    from lightning.pytorch.utilities import grad_norm
    from torch.utils.data import DataLoader, TensorDataset

    from nbviz.examples import SmallCNN
    from nbviz.integrations.lightning import NbvizCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = SmallCNN(num_classes=6, width=width)
            self.grad_norms = mode == "tensorboard+grad_norm"

        def on_before_optimizer_step(self, optimizer):
            # Lightning's documented way to track gradient norms: every parameter's, every step.
            if self.grad_norms:
                self.log_dict(grad_norm(self, norm_type=2))

        def forward(self, x):
            return self.model(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self(x)
            loss = F.cross_entropy(out, y)
            self.log("train_loss", loss)
            self.log("train_acc", (out.argmax(1) == y).float().mean())
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            out = self(x)
            self.log("val_loss", F.cross_entropy(out, y))
            return {"preds": out, "target": y}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    data = _shapes(n + 256, size)
    train = DataLoader(TensorDataset(data.images[:n], data.labels[:n]), batch_size=batch)
    val = DataLoader(TensorDataset(data.images[n:], data.labels[n:]), batch_size=64)
    torch.manual_seed(0)
    module = Module()
    timer = HookTimer()
    callbacks, logger = [], False
    if mode.startswith("nbviz"):
        logdir = workdir / f"nbviz-{time.monotonic_ns()}" if mode == "nbviz+logdir" else None
        cb = NbvizCallback(classes=data.classes, logdir=logdir, display=False)
        timer.wrap(cb, [n for n in dir(L.Callback) if n.startswith("on_")], L.Callback)
        callbacks = [cb]
    elif mode.startswith("tensorboard"):
        logger = L.loggers.TensorBoardLogger(str(workdir), name=f"tb-{time.monotonic_ns()}")
        timer.wrap(logger, ["log_metrics", "log_hyperparams", "save", "finalize"])
        if module.grad_norms:
            timer.wrap(module, ["on_before_optimizer_step"])
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        log_every_n_steps=1,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(module, train, val)
    t, c = time.perf_counter() - t0, time.process_time() - c0
    return Pass(t, c, timer.seconds, timer.once, trainer.global_step)


@functools.cache
def _shapes(n: int, size: int):
    import nbviz

    return nbviz.datasets.shapes(n=n, size=size, seed=0)


# --- Hugging Face --------------------------------------------------------------------------------


class _Texts(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 1000, (n, 64), generator=g)
        self.y = (self.ids[:, 0] > 500).long() + (self.ids[:, 1] > 750).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.y[i]}


def layer_norms_callback(logdir: Path):
    """What a Trainer user writes to log each parameter's gradient norm to TensorBoard
    (the Trainer logs only the global one): the logging comparable to nbviz's gradient
    flow, beside the Trainer's own ``TensorBoardCallback``."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers import TrainerCallback

    class LayerNorms(TrainerCallback):
        def __init__(self) -> None:
            self.writer = SummaryWriter(str(logdir))

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            for name, p in model.named_parameters():
                if p.grad is not None:
                    self.writer.add_scalar(
                        f"grad_norm/{name}", p.grad.norm().item(), state.global_step
                    )

        def on_train_end(self, args, state, control, **kwargs):
            self.writer.close()

    return LayerNorms()


def huggingface_pass(mode: str, epochs: int, workdir: Path) -> Pass:
    """One ``train()`` in ``mode``."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.integrations import TensorBoardCallback

    from nbviz.integrations.huggingface import NbvizCallback

    config = BertConfig(
        vocab_size=1024,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    out = workdir / f"hf-{mode}-{time.monotonic_ns()}"
    args = TrainingArguments(
        str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        eval_strategy="epoch",
        logging_steps=5,
        save_strategy="no",
        report_to="tensorboard" if mode.startswith("tensorboard") else "none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    timer = HookTimer()
    callbacks = []
    if mode.startswith("nbviz"):
        logdir = out / "nbviz" if mode == "nbviz+logdir" else None
        cb = NbvizCallback(logdir=logdir, display=False)
        callbacks = [cb]
    norms = layer_norms_callback(out / "grad_norm") if mode == "tensorboard+grad_norm" else None
    if norms is not None:
        callbacks = [norms]
    trainer = Trainer(
        model, args, train_dataset=_Texts(512, 1), eval_dataset=_Texts(128, 2), callbacks=callbacks
    )
    trainer.remove_callback(PrinterCallback)  # no printing of the logs, in every mode
    for c in trainer.callback_handler.callbacks:
        if c is norms or isinstance(c, (NbvizCallback, TensorBoardCallback)):
            timer.wrap(c, [n for n in dir(c) if n.startswith("on_")], TrainerCallback)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    t, c = time.perf_counter() - t0, time.process_time() - c0
    return Pass(t, c, timer.seconds, timer.once, trainer.state.global_step)


# --- the table -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="lightning or huggingface")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epochs", type=int, help="epochs a pass (default: per loop)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import lightning.pytorch  # noqa: F401 - sets its loggers' levels first; then quiet them

    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rounds = 2 if args.quick else args.rounds
    classroom = functools.partial(lightning_pass, width=8, size=32, batch=32, n=4096)
    demo = functools.partial(lightning_pass, width=16, size=64, batch=64, n=1024)
    cases = [
        ("Lightning: SmallCNN width 8 (classroom), 32x32, batch 32", "lightning", classroom, 3),
        ("Lightning: SmallCNN (demo), 64x64, batch 64", "lightning", demo, 2),
        ("HF Trainer: BERT 2x128, seq 64, batch 16", "huggingface", huggingface_pass, 2),
    ]
    # The Trainer logs its global grad_norm to TensorBoard by itself; per-layer norms need a
    # callback of one's own (_LayerNorms), as a user would write it.
    modes_of = {"lightning": MODES, "huggingface": MODES}
    if args.only:
        cases = [c for c in cases if c[1] in args.only.split(",")]
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"{rounds} rounds, mode order rotated each round; OMP_WAIT_POLICY={policy}")
    print("modes: nbviz / nbviz + logdir / TensorBoard / TensorBoard + per-layer grad norms")
    print(
        "| loop | steps | bare step (fit time / steps) | wall time | CPU time, all threads | "
        "inside the hooks, CPU per step (% of a bare step) | once per fit |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, kind, run, epochs in cases:
            modes = modes_of[kind]
            if args.quick or args.epochs:
                epochs = args.epochs or 1
            for mode in modes:  # warm-up: imports (bqplot, tensorboard), first calls
                run(mode, 1, Path(tmp))
            res: dict[str, list[Pass]] = {m: [] for m in modes}
            for r in range(rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    res[mode].append(run(mode, epochs, Path(tmp)))
            steps = res["bare"][0].steps
            bare = med(p.seconds for p in res["bare"]) / steps

            def overhead(mode: str, field: str = "seconds", res=res) -> str:
                ratios = [
                    getattr(m, field) / getattr(b, field)
                    for m, b in zip(res[mode], res["bare"], strict=True)
                ]
                return f"{100 * (med(ratios) - 1):+.1f} %"

            def inside(mode: str, res=res, steps=steps, bare=bare) -> str:
                per_step = med(p.hooks for p in res[mode]) / steps
                return f"{1e3 * per_step:.2f} ms ({100 * per_step / bare:.1f} %)"

            def once(mode: str, res=res) -> str:
                return f"{1e3 * med(p.once for p in res[mode]):.0f} ms"

            shown = modes[1:]
            print(
                f"| {label} | {steps} | {1e3 * bare:.1f} ms | "
                + " / ".join(overhead(m) for m in shown)
                + " | "
                + " / ".join(overhead(m, "cpu") for m in shown)
                + " | "
                + " / ".join(inside(m) for m in shown)
                + " | "
                + " / ".join(once(m) for m in shown)
                + " |",
                flush=True,
            )
            for mode in modes:
                print(
                    f"  {mode}: " + " ".join(f"{p.seconds:.2f}s" for p in res[mode]),
                    file=sys.stderr,
                )


if __name__ == "__main__":
    main()
