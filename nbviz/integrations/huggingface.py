"""Hugging Face ``Trainer``: the training monitor and a live confusion matrix from a callback.

>>> from transformers import Trainer, TrainingArguments
>>> from nbviz.integrations.huggingface import NbvizCallback
>>> cb = NbvizCallback()
>>> args = TrainingArguments("out", eval_strategy="epoch", logging_steps=10)  # doctest: +SKIP
>>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
...                   callbacks=[cb])  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
>>> cb.confusion.matrix  # doctest: +SKIP

What it reads (nothing has to change in your model or data):

- **Training curves**: the Trainer's logs (``on_log``): ``loss``, ``grad_norm``,
  ``learning_rate`` and any other number it logs while training, at the step they were
  logged (every ``logging_steps``; HF's default of 500 draws little of a short run:
  ``TrainingArguments(logging_steps=10)``).
- **Validation points**: the evaluation's logs (``eval_loss``, and what your
  ``compute_metrics`` returns: ``eval_accuracy``...), drawn on the same charts without
  ``eval_`` (``eval_loss`` on ``loss``).
- **Gradients**: ``on_pre_optimizer_step``, after the backward of every accumulated
  batch (and the Trainer's clipping) and before the optimizer's step: gradient flow,
  update ratios, histograms, the NaN/Inf watch, as `nbviz.watch`.
- **Confusion matrix** of a classification model (``...ForSequenceClassification``,
  ``...ForImageClassification``, ``...ForTokenClassification``..., or any model given
  ``classes=``): counted during each evaluation from what the model computes, batch by
  batch, so it fills in while the evaluation runs. A forward hook on the model sees the
  evaluation's forwards (eval mode, no gradients, with ``labels=``), reads the
  ``logits`` and the ``labels`` they were given; each evaluation is an epoch of the
  matrix. It needs no ``compute_metrics`` and no gathered predictions (the Trainer's
  ``EvalPrediction`` reaches only ``compute_metrics``). Class names come from
  ``model.config.id2label``. Token classification counts every token whose label is not
  -100. The hook is on the model only while ``train()`` runs.

A Trainer that does not evaluate, logging that would draw no loss, or an evaluation
whose forwards carry no labels gets one message (a ``UserWarning``, on the main process)
saying what the view needs; training goes on.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from ._common import LiveViews

if not hasattr(TrainerCallback, "on_pre_optimizer_step"):  # pragma: no cover - old transformers
    raise ImportError(
        "nbviz.integrations.huggingface needs transformers >= 4.45 (TrainerCallback's "
        "on_pre_optimizer_step): pip install -U 'nbviz[huggingface]'"
    )

# Bookkeeping in the Trainer's logs, not curves.
_NOT_CURVES = ("epoch", "total_flos", "num_input_tokens_seen", "train_loss")
_NOT_CURVE_ENDINGS = ("_runtime", "_per_second", "_model_preparation_time")


class NbvizCallback(TrainerCallback):
    """Show and record a Hugging Face ``Trainer`` run: `nbviz.watch`'s dashboard and a
    live `nbviz.ConfusionMatrix` of the evaluation set.

    Add it to ``Trainer(callbacks=[...])``. When training begins its views are made and,
    in a notebook, displayed below the cell (``display=False``: not; ``display(cb.view)``
    shows them again anywhere). After ``train()`` they stay readable: ``cb.monitor``
    (the dashboard, ``cb.monitor.recorder.snapshot()`` its numbers), ``cb.confusion``
    (the matrix: ``.matrix``, ``.history``, ``.per_class()``; None for a model that is
    not a classifier), ``cb.view`` (both). Each ``train()`` makes new views.

    In a script nothing is displayed; ``logdir=`` records both views to a run directory
    that ``nbviz.follow(logdir)`` shows in a notebook, live. Under ``torchrun`` or
    ``accelerate launch`` every process watches its model and counts its share of the
    evaluation set (the closed epoch sums every process's counts); the main process
    (``state.is_world_process_zero``) shows the views, writes ``logdir`` and says what is
    missing.

    Args:
        probe: a few fixed inputs the model accepts (a tensor, or a dict of keyword
            inputs such as ``{"pixel_values": x}``), whose feature maps the dashboard
            shows (conv models); optional.
        classes: the class names of the confusion matrix (default: the model's
            ``config.id2label``, for a classification model).
        num_classes: K, for classes without names.
        confusion: False: no confusion matrix (and no message about one).
        logdir: a run directory to record to as well (``nbviz.follow(logdir)``).
        display: show the views when training begins: None (default) in a notebook and
            not in a script; True or False to decide.
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
        self._live = False  # views were made for the training in progress
        self._hook: Any = None  # the forward hook that counts evaluation batches
        self._label_name = "labels"
        self._stepping = False  # inside monitor.step() (its probe's forward is not evaluation)

    # --- what the callback shows -------------------------------------------------------------

    @property
    def monitor(self) -> Any:
        """The training dashboard (`nbviz.Monitor`) of the last run, or None before one."""
        return self._views.monitor

    @property
    def confusion(self) -> Any:
        """The evaluation set's `nbviz.ConfusionMatrix`, or None (not a classifier, or
        none asked)."""
        return self._views.confusion

    @property
    def view(self) -> Any:
        """Both views in one box (``display(cb.view)`` shows them again), or None."""
        return self._views.view

    # --- training ------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Make the views of the model (on its device by now) and say what is missing."""
        model = kwargs.get("model")
        if model is None:  # pragma: no cover - the Trainer always passes it
            return
        views = self._views
        classes = _classifier_classes(model) if views.want_confusion else None
        self._live = views.start(model, rank_zero=state.is_world_process_zero, classes=classes)
        if not self._live:
            return
        names = list(getattr(args, "label_names", None) or [])
        self._label_name = names[0] if len(names) == 1 else "labels"
        if views.confusion is not None:
            self._hook = model.register_forward_hook(self._count_batch, with_kwargs=True)
            if _value(args.eval_strategy) == "no":
                views.say(
                    "no-evaluation",
                    "nbviz: the confusion matrix needs evaluation, and this Trainer does "
                    "not evaluate (TrainingArguments(eval_strategy='no')), so it stays "
                    "empty and the curves get no validation points. Pass eval_dataset= "
                    "to the Trainer and TrainingArguments(eval_strategy='epoch') (or "
                    "'steps' with eval_steps=N); confusion=False goes without. Training "
                    "goes on.",
                )
        logging = _value(args.logging_strategy)
        steps = args.logging_steps
        if logging == "no" or (
            logging == "steps"
            and steps >= 1
            and steps > state.max_steps > 0
            and not args.logging_first_step
        ):
            views.say(
                "no-logs",
                "nbviz: the training curves come from the Trainer's logs, and this run "
                + (
                    "logs nothing (logging_strategy='no')"
                    if logging == "no"
                    else f"logs every {steps:g} steps but trains {state.max_steps}"
                )
                + ": set TrainingArguments(logging_steps=10) (a number of steps, or a "
                "fraction of the run below 1). Gradient flow and histograms are shown "
                "meanwhile; training goes on.",
            )

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """One monitor step: the gradients are this step's, the weights not yet updated."""
        if not self._live:
            return
        self._stepping = True
        try:
            self._views.monitor.step()
        finally:
            self._stepping = False

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs
    ) -> None:
        """Training logs become points of the curves at the step they describe; evaluation
        logs (``eval_*``) validation points on the same charts."""
        monitor = self._views.monitor
        if monitor is None or not logs or "train_runtime" in logs:  # (the closing summary)
            return
        train, val = {}, {}
        for name, value in logs.items():
            if (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or name in _NOT_CURVES
                or name.endswith(_NOT_CURVE_ENDINGS)
            ):
                continue
            if name.startswith("eval_"):
                val[name[len("eval_") :]] = float(value)
            else:
                train[name] = float(value)
        if val:
            monitor.log_val(**val)
        if train:
            monitor.log(**train)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the confusion matrix's epoch (on every process: the counts are summed)."""
        views = self._views
        if not self._live or views.confusion is None:
            return
        if views.counted == 0:
            views.say(
                "no-labels",
                "nbviz: the confusion matrix counted nothing in this evaluation: it reads "
                f"the logits the model returns for forwards given {self._label_name}=, "
                f"and no evaluation forward was given {self._label_name}= (label "
                "smoothing and compute_loss_func take the labels out before the forward). "
                "Evaluate with labels in the eval_dataset, or pass confusion=False. "
                "Training goes on.",
            )
        views.end_epoch()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Detach the monitor (its run directory gets the rest) and the counting hook."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._views.stop()
        self._live = False

    # --- counting ----------------------------------------------------------------------------

    def _count_batch(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        """An evaluation forward (eval mode, no gradients, labels given): count its batch."""
        if module.training or torch.is_grad_enabled() or self._stepping:
            return
        labels = kwargs.get(self._label_name)
        if not isinstance(labels, torch.Tensor):
            return
        images = kwargs.get("pixel_values")
        if not (
            isinstance(images, torch.Tensor) and images.ndim == 4 and len(images) == len(labels)
        ):
            images = None
        self._views.count(output, labels, images, "the model's evaluation outputs")


def _classifier_classes(model: Any) -> list[str] | None:
    """A classification model's class names (``config.id2label``), or None for a model
    that is not one (a language model, a regression or multi-label head)."""
    config = getattr(model, "config", None)
    if config is None or "Classification" not in type(model).__name__:
        return None
    if getattr(config, "problem_type", None) not in (None, "single_label_classification"):
        return None
    k = getattr(config, "num_labels", 0) or 0
    if k < 2:
        return None
    names = getattr(config, "id2label", None) or {}
    return [str(names.get(i, names.get(str(i), i))) for i in range(k)]


def _value(option: Any) -> str:
    """An option as its string ("no", "steps"): TrainingArguments keeps enums."""
    return str(getattr(option, "value", option))


__all__ = ["NbvizCallback"]
