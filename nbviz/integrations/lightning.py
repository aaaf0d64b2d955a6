"""PyTorch Lightning: the training monitor and a live confusion matrix from a callback.

>>> import lightning.pytorch as L
>>> from nbviz.integrations.lightning import NbvizCallback
>>> cb = NbvizCallback(classes=["cat", "dog", "bird"])
>>> trainer = L.Trainer(max_epochs=3, callbacks=[cb])  # doctest: +SKIP
>>> trainer.fit(model, train_loader, val_loader)  # doctest: +SKIP
>>> cb.confusion.matrix  # doctest: +SKIP

What it reads from your ``LightningModule`` (nothing has to change in it):

- **Training curves**: the loss that ``training_step`` returns (``return loss`` or
  ``{"loss": loss, ...}``: what Lightning back-propagates), as ``loss``, and every value
  ``training_step`` logs with ``self.log(name, value)``, one point per optimizer step.
  A leading ``train_`` / ``train/`` and a trailing ``_step`` are dropped from the names,
  so ``self.log("train_loss", loss)`` is the ``loss`` chart; when you log a loss
  yourself, the returned one is not drawn twice.
- **Validation points**: every value logged with ``self.log`` during validation (epoch
  means, as Lightning reduces them), on the same charts: ``val_loss`` / ``val/loss`` are
  drawn on ``loss``, ``val_acc`` on ``acc``.
- **Confusion matrix**: what ``validation_step`` returns, as a dict: class scores
  ``(N, K)`` or predicted labels ``(N,)`` under ``"preds"``, ``"logits"`` or ``"probs"``,
  the true labels ``(N,)`` under ``"target"``, ``"targets"`` or ``"labels"``, and,
  optionally, the images ``(N, C, H, W)`` under ``"inputs"`` (each cell's examples).
  ``return {"loss": loss, "preds": logits, "target": y}`` is enough. Each validation run
  is an epoch of the matrix (its history, the slider in the browser).
- **Gradients**: ``on_before_optimizer_step``, after the backward of every accumulated
  batch and before the optimizer's step (and before Lightning clips them): gradient
  flow, update ratios, histograms, the NaN/Inf watch, as `nbviz.watch`. One monitor
  step per optimizer step (with ``accumulate_grad_batches=4``, one per four batches;
  with two optimizers, two per batch).

The sanity check's validation batches are not counted. A module that gives no loss, a
``validation_step`` that returns nothing the matrix can read, or a fit without
validation gets one message (a ``UserWarning``, on rank zero) saying what the view needs;
training goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as L
import torch

from .._outputs import describe
from ._common import LiveViews, first_key

SCORE_KEYS = ("preds", "logits", "probs")
TARGET_KEYS = ("target", "targets", "labels")
INPUT_KEY = "inputs"
_TRAIN_PREFIXES = ("train_", "train/", "training_", "training/")
_VAL_PREFIXES = ("val_", "val/", "valid_", "valid/", "validation_", "validation/")


class NbvizCallback(L.Callback):
    """Show and record a Lightning fit: `nbviz.watch`'s dashboard and a live
    `nbviz.ConfusionMatrix` of the validation set.

    Add it to ``Trainer(callbacks=[...])``. When the fit starts, its views are made and,
    in a notebook, displayed below the cell (``display=False``: not; ``display(cb.view)``
    shows them again anywhere). After ``fit`` they stay readable: ``cb.monitor`` (the
    dashboard, ``cb.monitor.recorder.snapshot()`` its numbers), ``cb.confusion`` (the
    matrix: ``.matrix``, ``.history``, ``.per_class()``), ``cb.view`` (both). Each
    ``fit`` makes new views.

    In a script nothing is displayed; ``logdir=`` records both views to a run directory
    that ``nbviz.follow(logdir)`` shows in a notebook, live. Under a multi-process
    strategy (``ddp``), every rank watches its model and counts its share of the
    validation set (the closed epoch sums every rank's counts); rank zero shows the views,
    writes ``logdir`` and says what is missing.

    Args:
        probe: a few fixed inputs ``(N, ...)`` the module's ``forward`` accepts, whose
            feature maps the dashboard shows (conv models); optional.
        classes: the class names of the confusion matrix.
        num_classes: K, for classes without names. With neither, K is the width of the
            first validation batch's scores and the classes are named "0".."K-1".
        confusion: False: no confusion matrix (and no message about one).
        logdir: a run directory to record to as well (``nbviz.follow(logdir)``).
        display: show the views when the fit starts: None (default) in a notebook and not
            in a script; True or False to decide.
        every: steps between max |g|, update ratios and dead units (see `nbviz.watch`).
        hist_every: steps between histograms.
        features_every: steps between the probe's feature maps.
        on_nan: "warn", "raise" (stop at the first non-finite gradient, before the
            optimizer writes it into the weights) or "ignore".
        title: shown above the dashboard.
        log_every: seconds between writes to ``logdir``.
        max_rate: the dashboard's refreshes per second at most.
    """

    def __init__(
        self,
        probe: Any = None,
        *,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        confusion: bool = True,
        logdir: Any = None,
        display: bool | None = None,
        every: int = 20,
        hist_every: int = 100,
        features_every: int = 100,
        on_nan: str = "warn",
        title: str = "",
        log_every: float = 1.0,
        max_rate: float = 2.0,
    ) -> None:
        super().__init__()
        self._views = LiveViews(
            "NbvizCallback",
            probe,
            classes=classes,
            num_classes=num_classes,
            confusion=confusion,
            logdir=logdir,
            display=display,
            every=every,
            hist_every=hist_every,
            features_every=features_every,
            on_nan=on_nan,
            title=title,
            log_every=log_every,
            max_rate=max_rate,
        )
        self._live = False  # views were made for the fit in progress
        self._loss: torch.Tensor | None = None  # back-propagated since the last optimizer step
        # trainer.callback_metrics at the last optimizer step, an epoch's start, or the start
        # or end of validation: the values logged since are new objects.
        self._seen: dict[str, Any] = {}

    # --- what the callback shows -------------------------------------------------------------

    @property
    def monitor(self) -> Any:
        """The training dashboard (`nbviz.Monitor`) of the last fit, or None before one."""
        return self._views.monitor

    @property
    def confusion(self) -> Any:
        """The validation set's `nbviz.ConfusionMatrix`, or None (none asked, or none yet)."""
        return self._views.confusion

    @property
    def view(self) -> Any:
        """Both views in one box (``display(cb.view)`` shows them again), or None."""
        return self._views.view

    # --- the fit -------------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Make the views (the module is on its device, wrapped by the strategy)."""
        views = self._views
        self._live = views.start(pl_module, rank_zero=trainer.is_global_zero)
        self._loss, self._seen = None, {}
        if not self._live or not views.want_confusion:
            return
        if not _overrides(pl_module, "validation_step") or trainer.limit_val_batches == 0:
            views.say(
                "no-validation",
                "nbviz: the confusion matrix needs validation: this fit runs none "
                f"({type(pl_module).__name__} has no validation_step, or "
                "limit_val_batches=0). Give the fit validation data (trainer.fit(model, "
                "train_loader, val_loader)) and a validation_step that returns "
                '{"loss": loss, "preds": logits, "target": y}, or pass confusion=False. '
                "Training goes on with the training monitor.",
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Note what is logged so far (the last epoch's means too): what is new at an
        optimizer step was logged for that step."""
        if self._live:
            self._seen = dict(trainer.callback_metrics)

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        """Add up the loss back-propagated for this optimizer step (Lightning divides each
        accumulated batch's loss by ``accumulate_grad_batches``: the sum is their mean)."""
        if not self._live or trainer.sanity_checking:
            return
        loss = loss.detach()
        scaler = getattr(trainer.precision_plugin, "scaler", None)  # float16 loss scaling
        if scaler is not None and scaler.is_enabled():
            loss = loss / scaler.get_scale()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        """One monitor step: the gradients are this step's, the weights not yet updated."""
        if not self._live or trainer.sanity_checking:
            return
        loss, self._loss = self._loss, None
        if loss is None and pl_module.automatic_optimization:
            return  # training_step returned None: Lightning skips the step
        metrics = trainer.callback_metrics
        scalars = _renamed(_new_values(metrics, self._seen), _TRAIN_PREFIXES)
        self._seen = dict(metrics)  # what the next step logs will be new objects
        if loss is not None and not any("loss" in name for name in scalars):
            scalars["loss"] = loss
        if not scalars:
            self._views.say(
                "no-loss",
                f"nbviz: the training curves have no loss: {type(pl_module).__name__} "
                "neither returns one from training_step to Lightning's backward nor logs "
                'one. Return it (return loss, or {"loss": loss}) or log it '
                '(self.log("train_loss", loss)); with manual optimization, call '
                "self.manual_backward(loss). Gradient flow and histograms are shown "
                "meanwhile; training goes on.",
            )
        self._views.monitor.step(**scalars)

    # --- validation ------------------------------------------------------------------------

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Note what is logged so far (validation's own values are what changes)."""
        if self._live and not trainer.sanity_checking:
            self._seen = dict(trainer.callback_metrics)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Count what ``validation_step`` returned (see the module's docstring for the keys)."""
        views = self._views
        if not self._live or trainer.sanity_checking or not views.want_confusion:
            return
        scores = target = None
        if isinstance(outputs, Mapping):
            scores, target = first_key(outputs, SCORE_KEYS), first_key(outputs, TARGET_KEYS)
        if scores is None or target is None:
            views.say(
                "no-predictions",
                "nbviz: the confusion matrix needs validation_step to return the class "
                'scores and the true labels, e.g. return {"loss": loss, "preds": logits, '
                '"target": y} (scores or predicted labels under "preds", "logits" or '
                '"probs"; labels under "target", "targets" or "labels"; images under '
                f'"inputs" for examples); it returned {describe(outputs)}. Pass '
                "confusion=False to go without. Training goes on.",
            )
            return
        inputs = outputs.get(INPUT_KEY)
        views.count(scores, target, inputs, "validation_step's outputs")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the confusion matrix's epoch (on every rank: the counts are summed)."""
        if self._live and not trainer.sanity_checking:
            self._views.end_epoch()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Validation points: the values logged during validation, Lightning's epoch means."""
        if not self._live or trainer.sanity_checking or self._views.monitor is None:
            return
        metrics = trainer.callback_metrics
        values = _renamed(_new_values(metrics, self._seen), _VAL_PREFIXES)
        self._seen = dict(metrics)  # not new to the training steps that follow
        if values:
            self._views.monitor.log_val(**values)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Detach the monitor's hooks (its run directory gets the rest); the views stay."""
        self._views.stop()
        self._live = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """A fit that failed leaves no hook on the model either."""
        self.on_fit_end(trainer, pl_module)


def _overrides(module: Any, name: str) -> bool:
    """Whether the LightningModule's class defines ``name`` itself (``lightning`` or
    ``pytorch_lightning``)."""
    impl = getattr(type(module), name, None)
    for base in type(module).__mro__:
        if base.__name__ == "LightningModule" and base.__module__.startswith(
            ("lightning.", "pytorch_lightning.")
        ):
            return impl is not getattr(base, name, None)
    return impl is not None


def _new_values(metrics: Mapping[str, Any], seen: Mapping[str, Any]) -> dict[str, Any]:
    """The one-number values logged since ``seen`` was taken: Lightning keeps the last value
    of each name, and a new log is a new tensor (held in ``seen``, so never an old one's id)."""
    out = {}
    for name, value in metrics.items():
        if seen.get(name) is value:
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() == 1 and not value.is_complex():
                out[name] = value.detach().reshape(())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _renamed(values: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Chart names: ``train_loss``/``train_loss_step`` -> ``loss``, ``val/acc`` -> ``acc``
    (the first value of a name wins; ``_epoch`` means are left out of training steps)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if prefixes is _TRAIN_PREFIXES and name.endswith("_epoch"):
            continue
        short = name
        for p in prefixes:
            if short.startswith(p) and len(short) > len(p):
                short = short[len(p) :]
                break
        for suffix in ("_step", "_epoch"):
            if short.endswith(suffix) and len(short) > len(suffix):
                short = short[: -len(suffix)]
        out.setdefault(short, value)
    return out


__all__ = ["INPUT_KEY", "SCORE_KEYS", "TARGET_KEYS", "NbvizCallback"]
