"""What the framework callbacks share: the views of one fit, showing them, their messages.

`LiveViews` holds the training monitor (`nbviz.watch`) and the confusion matrix
(`nbviz.ConfusionMatrix`) of one ``fit``/``train``, made by a callback when training
begins; the callback only translates its framework's hooks into ``monitor.step()``,
``monitor.log_val()``, ``count()`` and ``end_epoch()``.

Processes: in a distributed job every rank makes the views, as a ``torchrun`` script calls
``watch`` and ``ConfusionMatrix`` on every rank (rank 0 writes the run directory, every
rank reports where a NaN began, ``end_epoch()`` sums the ranks' counts); only rank zero
shows them and says what is missing. A process forked or spawned from a notebook kernel
(Lightning's ``ddp_notebook``, accelerate's ``notebook_launcher``) makes none: widgets
there would write into the kernel's sockets from another process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from .._checks import int_at_least, positive_seconds
from .._outputs import pick_scores, structured
from ..confusion.widget import _class_names

ON_NAN = ("warn", "raise", "ignore")


def in_kernel() -> bool:
    """Whether this process is an IPython kernel (a notebook can show its widgets)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipywidgets brings IPython
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveViews:
    """The training monitor and the confusion matrix of one fit, and how they are made.

    Args:
        who: the callback's name, for messages ("NbvizCallback").
        probe: passed to `nbviz.watch` (a few fixed inputs whose feature maps are shown).
        classes: class names of the confusion matrix, or None.
        num_classes: K without names, or None (with neither, the callback finds the
            classes itself or makes no matrix).
        confusion: False: no confusion matrix (and no message about one).
        logdir: a run directory both views record to (rank zero writes it).
        display: True/False: show the views when training begins, or not; None: show
            them in a notebook kernel, not in a script.
        every, hist_every, features_every, on_nan, title, log_every, max_rate: as in
            `nbviz.watch`.
    """

    def __init__(
        self,
        who: str,
        probe: Any,
        *,
        classes: Any,
        num_classes: Any,
        confusion: bool,
        logdir: Any,
        display: bool | None,
        every: int,
        hist_every: int,
        features_every: int,
        on_nan: str,
        title: str,
        log_every: float,
        max_rate: float,
    ) -> None:
        for name, value in (
            ("every", every),
            ("hist_every", hist_every),
            ("features_every", features_every),
        ):
            int_at_least(name, value)
        positive_seconds("log_every", log_every)
        if on_nan not in ON_NAN:
            raise ValueError(f"on_nan must be 'warn', 'raise' or 'ignore', got {on_nan!r}")
        if display not in (None, True, False):
            raise ValueError(f"display must be True, False or None (automatic), got {display!r}")
        if not isinstance(confusion, bool):
            raise TypeError(f"confusion must be True or False, got {type(confusion).__name__}")
        if not isinstance(title, str):
            raise TypeError(f"title must be a str, got {type(title).__name__}")
        if classes is not None or num_classes is not None:
            # Checked now, with ConfusionMatrix's own messages, not when training begins.
            _class_names(classes, num_classes)
        self.who = who
        self.probe = probe
        self.classes, self.num_classes, self.want_confusion = classes, num_classes, confusion
        self.logdir, self.display = logdir, display
        self.watch_options = {
            "every": every,
            "hist_every": hist_every,
            "features_every": features_every,
            "on_nan": on_nan,
            "title": title,
            "max_rate": max_rate,
            "log_every": log_every,
        }
        self.monitor: Any = None
        self.confusion: Any = None
        self.view: Any = None
        self.loud = True  # says what is missing (rank zero only)
        self._made_in = (os.getpid(), in_kernel())
        self._said: set[str] = set()
        self._counting = True  # False once a batch could not be counted (said why, once)
        self.counted = 0  # batches counted since the last end_epoch()

    # --- making and closing ----------------------------------------------------------------

    @property
    def away_from_kernel(self) -> bool:
        """Whether this is another process than the notebook kernel that made the callback."""
        pid, kernel = self._made_in
        return kernel and os.getpid() != pid

    def start(self, model: torch.nn.Module, *, rank_zero: bool, classes: Any = None) -> bool:
        """New views of ``model`` for a fit (the last fit's stop updating); shown when asked.
        ``classes``: the class names the framework knows (a model's ``id2label``), used
        when the callback was given none. False when no views can be made here."""
        self.stop()
        self.loud = rank_zero
        self._said.clear()
        if self.away_from_kernel:
            self.say(
                "subprocess",
                f"nbviz: {self.who} shows nothing: this fit runs in processes started from "
                "the notebook's kernel (a forked or spawned strategy such as 'ddp_notebook'), "
                "and widgets live in the kernel's own process. Train in the kernel's process "
                "(one device), or run the fit as a script with logdir= and show it here "
                "with nbviz.follow(logdir).",
            )
            return False
        import ipywidgets

        from ..monitor.widget import watch

        self.monitor = watch(model, self.probe, logdir=self.logdir, **self.watch_options)
        self.view = ipywidgets.VBox([self.monitor])
        self._counting, self.counted = True, 0
        if self.want_confusion and (self.classes is not None or self.num_classes is not None):
            self.make_confusion(self.classes, self.num_classes)
        elif self.want_confusion and classes is not None:
            self.make_confusion(classes, None)
        show = self.display if self.display is not None else in_kernel()
        if show and rank_zero:
            from IPython.display import display

            display(self.view)
        return True

    def make_confusion(self, classes: Any, num_classes: Any) -> None:
        """The confusion matrix (recording to ``logdir``), below the monitor."""
        from ..confusion.widget import ConfusionMatrix

        title = self.watch_options["title"]
        self.confusion = ConfusionMatrix(
            classes,
            num_classes=num_classes,
            title=f"{title}: validation" if title else "validation",
            logdir=self.logdir,
            log_every=self.watch_options["log_every"],
        )
        self.view.children = (*self.view.children, self.confusion)

    def stop(self) -> None:
        """The fit ended: detach the monitor, write the rest of the run (both views); the
        views keep what they show."""
        if self.monitor is not None and self.monitor.recorder.attached:
            self.monitor.detach()
        if self.confusion is not None:
            self.confusion.close_log()
            self.confusion.flush()

    # --- the confusion matrix -----------------------------------------------------------------

    def count(self, scores: Any, target: Any, inputs: Any, source: str) -> None:
        """Count one validation batch: class scores ``(N, K)`` or labels ``(N,)`` (or, for
        token classification, ``(N, T, K)`` scores with ``(N, T)`` labels, where a label
        below 0 is ignored, as Hugging Face's -100), the true labels, optional images.
        A batch that cannot be counted stops the matrix for this fit, with a message
        naming ``source``; training goes on."""
        if not self._counting or not self.want_confusion:
            return
        try:
            if structured(scores):  # a ModelOutput, a dict...: its logits
                scores = pick_scores(scores, what="class scores")
            scores, target, inputs = _flatten_tokens(scores, target, inputs)
            if self.confusion is None:
                k = (
                    scores.shape[-1]
                    if isinstance(scores, torch.Tensor) and scores.ndim == 2
                    else None
                )
                if k is None or k < 2:
                    raise ValueError(
                        "the number of classes is unknown: the scores are not of shape (N, K) "
                        f"with K >= 2 (got {_shape(scores)}); pass classes=[names] or "
                        f"num_classes=K to {self.who}"
                    )
                self.make_confusion(None, int(k))
            self.confusion.update(scores, target, inputs)
            self.counted += 1
        except (TypeError, ValueError) as exc:
            self._counting = False
            self.say(
                "count",
                f"nbviz: the confusion matrix stopped counting ({source}): {exc}. "
                "Training goes on.",
            )

    def end_epoch(self) -> None:
        """Close the matrix's epoch (in a distributed job: every rank, one collective)."""
        if self.confusion is not None:
            self.confusion.end_epoch()
        self.counted = 0

    # --- messages -------------------------------------------------------------------------

    def say(self, key: str, message: str) -> None:
        """Warn once per fit (on rank zero): what a view needs and how to provide it."""
        if key in self._said or not self.loud:
            return
        self._said.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def first_key(outputs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first of ``keys`` that ``outputs`` holds (not None), or None."""
    for k in keys:
        v = outputs.get(k)
        if v is not None:
            return v
    return None


def _flatten_tokens(scores: Any, target: Any, inputs: Any) -> tuple[Any, Any, Any]:
    """Token classification's ``(N, T, K)`` scores and ``(N, T)`` labels as ``(M, K)`` and
    ``(M,)``, without the positions whose label is below 0 (padding, -100); anything
    else as it is."""
    if (
        isinstance(scores, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and scores.ndim >= 3
        and target.ndim == scores.ndim - 1
        and tuple(scores.shape[:-1]) == tuple(target.shape)
    ):
        keep = target.reshape(-1) >= 0
        return scores.reshape(-1, scores.shape[-1])[keep], target.reshape(-1)[keep], None
    return scores, target, inputs


def _shape(x: Any) -> str:
    return f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
