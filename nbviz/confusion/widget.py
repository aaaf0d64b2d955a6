"""``ConfusionMatrix``: a live confusion matrix widget.

Python counts and keeps the epoch history; the browser receives sparse counts
(non-zero cells only, so K = 1,000 stays cheap) and does everything else
itself: normalization, hover, the epoch slider, the example gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from .._checks import positive_seconds
from .._dist import DEFAULT_TIMEOUT, rank_and_world
from .._images import example_images
from .._outputs import Output, check_output, pick_scores, structured
from .._widget import Array, LiveWidget, Throttle
from .core import ArrayLike, ConfusionCounter, accuracy, batch_cells, per_class_metrics
from .reservoir import ExampleReservoir
from .runlog import ConfusionLog

NORMALIZE = ("none", "true", "pred")


class ConfusionMatrix(LiveWidget):
    """A confusion matrix that updates live while a training cell runs.

    >>> import nbviz, torch
    >>> cm = nbviz.ConfusionMatrix(classes=["cat", "dog", "bird"])
    >>> cm.update(torch.tensor([[2.0, 0.1, 0.3], [0.2, 0.1, 3.0]]), torch.tensor([0, 1]))
    >>> cm.matrix.tolist()
    [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    >>> cm.end_epoch()  # doctest: +SKIP

    Rows are true classes, columns predicted classes (sklearn's convention).
    ``update`` may be called on every batch; the view refreshes at most
    ``max_rate`` times a second, at ``end_epoch()`` and when the cell ends.

    In a ``torch.distributed`` job (``torchrun``), each rank counts its own batches and
    ``end_epoch()`` sums the counts of every rank (one collective: call it on every rank),
    so the closed epoch's matrix is the one a single process would count over all the
    data; ``sync_ranks=False`` keeps each rank's own. Example thumbnails stay per rank.
    """

    _bundle = "confusion"

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    normalize = traitlets.Enum(NORMALIZE, default_value="none").tag(sync=True)
    # The epoch in progress (or, right after end_epoch, the epoch just closed).
    counts_index = Array()
    counts_value = Array()
    epoch = traitlets.Int(1).tag(sync=True)  # 1-based number of the epoch shown live
    epoch_open = traitlets.Bool(False).tag(sync=True)
    # Closed epochs, concatenated sparse: epoch e owns [offsets[e], offsets[e+1]).
    history_index = Array()
    history_value = Array()
    history_offsets = Array()
    # Example thumbnails of the current epoch: examples_images[i] landed in cell examples_cells[i].
    examples_cells = Array()
    examples_images = Array()

    def __init__(
        self,
        classes: Sequence[str] | None = None,
        *,
        num_classes: int | None = None,
        normalize: str = "none",
        title: str = "",
        examples_per_cell: int = 16,
        max_examples: int = 4096,
        thumbnail_size: int = 32,
        max_rate: float | None = 5.0,  # a push costs ~1 ms of the training loop's time
        examples_interval: float = 2.0,
        seed: int = 0,
        sync_ranks: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        logdir: Any = None,
        log_every: float = 1.0,
        end_of_cell_flush: bool = True,
        output: Output = None,
        layout: Any = None,
    ):
        names = _class_names(classes, num_classes)
        self._output = check_output(output)
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
        self._counter = ConfusionCounter(len(names))
        self._examples = ExampleReservoir(examples_per_cell, max_examples, thumbnail_size, seed)
        self._examples_throttle = Throttle(1.0 / examples_interval if examples_interval else None)
        self._history: list[tuple[np.ndarray, np.ndarray]] = []
        self._closed = False
        self._history_dirty = self._examples_dirty = False
        self._sync_ranks, self._timeout = bool(sync_ranks), float(timeout)
        positive_seconds("log_every", log_every)
        self._examples_version = 0  # counts changes of the kept examples (for the run log)
        # Rank 0 writes the run (the others' counts reach it at end_epoch).
        self._log = (
            ConfusionLog(logdir, names, log_every)
            if logdir is not None and rank_and_world()[0] == 0
            else None
        )
        super().__init__(
            max_rate=max_rate,
            layout=layout,
            classes=names,
            normalize=normalize,
            title=title,
            end_of_cell_flush=end_of_cell_flush,
        )
        self.mark_changed(force=True)  # initial empty state in the first message

    # ---------------------------------------------------------------- data in
    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return self._counter.num_classes

    def update(self, outputs: ArrayLike, targets: ArrayLike, inputs: ArrayLike | None = None):
        """Count one batch.

        ``outputs``: logits or probabilities ``(N, K)`` or predicted labels
        ``(N,)``, or what the model returned (a Hugging Face ``ModelOutput``: its
        ``logits``; the constructor's ``output=`` chooses where that is ambiguous);
        ``targets``: integer labels ``(N,)``; ``inputs`` (optional):
        the batch's images ``(N, C, H, W)``, sampled into each cell's gallery.
        Torch tensors on any device, or numpy arrays. Bad input raises before
        anything is counted; an empty batch changes nothing.
        """
        if self._output is not None or structured(outputs):  # a ModelOutput, a dict, ...
            outputs = pick_scores(outputs, self._output, what="class scores")
        cells = batch_cells(outputs, targets, self.num_classes)
        if cells is None:
            return
        images = None
        if inputs is not None:
            images = example_images(inputs, len(cells))
            self._examples.check(images)
        if self._closed:  # the first batch of a new epoch
            self._counter.reset()
            self._examples.reset()
            self._examples_dirty = True  # the view drops the closed epoch's examples
            self._examples_version += 1
            self._closed = False
        self._counter.count_cells(cells)
        if images is not None:
            if isinstance(cells, torch.Tensor):
                cells = cells.cpu().numpy()
            # Pushed (every examples_interval s) only when a thumbnail entered: once the
            # cells are full most batches change nothing, and all of them weigh ~1.8 MB.
            entered = self._examples.add(cells, images)
            self._examples_dirty |= entered
            self._examples_version += entered
        self.mark_changed()
        if self._log is not None and self._log.due():
            self._write_log()

    def end_epoch(self) -> np.ndarray:
        """Close the epoch: store its matrix in ``history`` and push the view.

        The next ``update()`` starts a fresh count; until then ``matrix`` still
        holds the closed epoch. Calling it again without updates does nothing. In a
        distributed job it first sums the counts of every rank (see the class docstring).
        """
        if not self._closed and self._sync_ranks and rank_and_world()[1] > 1:
            self._counter.sum_over_ranks("ConfusionMatrix.end_epoch()", self._timeout)
        if not self._closed and self._counter.samples > 0:
            self._history.append(self._counter.sparse())
            self._closed = True
            self._history_dirty = True
            self.mark_changed(force=True)
            if self._log is not None:
                self._log.epoch(len(self._history), self._history[-1])
                self._write_log()
        return self.matrix

    def reset(self) -> None:
        """Forget all counts, the history and the examples."""
        self._counter.reset()
        self._examples.reset()
        self._history.clear()
        self._closed = False
        self._history_dirty = self._examples_dirty = True
        self._examples_version += 1
        self.mark_changed(force=True)
        if self._log is not None:
            self._log.reset()
            self._write_log()

    def close_log(self) -> None:
        """Write the epoch in progress and close the run log (``logdir``); idempotent. A
        script's end does it too."""
        if self._log is not None and not self._log.writer.closed:
            self._write_log()
            self._log.close()

    def _write_log(self) -> None:
        """Queue the epoch in progress and changed examples (the log's thread writes)."""
        epoch = len(self._history) + (0 if self._closed else 1)
        self._log.current(
            self._counter.sparse(), epoch, not self._closed and self._counter.samples > 0
        )
        self._log.examples(self._examples_version, self._examples.arrays)

    def show_recorded(
        self,
        history: list[tuple[np.ndarray, np.ndarray]],
        current: tuple[np.ndarray, np.ndarray] | None,
        epoch_open: bool,
        examples: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        """Show a recorded state (``nbviz.follow`` does): closed epochs as sparse
        ``(index, value)``, the epoch in progress (or None), whether it has counts, and
        its example thumbnails ``(cells, images)`` (or None)."""
        self._history = list(history)
        self._counter.load_sparse(*(current or (np.zeros(0, np.int64),) * 2))
        self._closed = not epoch_open
        if examples is not None:
            self._examples.load(*examples)
        self._history_dirty = self._examples_dirty = True
        self.mark_changed()

    # --------------------------------------------------------------- data out
    @property
    def matrix(self) -> np.ndarray:
        """``(K, K)`` int64 counts of the epoch in progress (rows true, columns predicted)."""
        return self._counter.compute()

    @property
    def history(self) -> list[np.ndarray]:
        """Dense ``(K, K)`` matrices of the closed epochs, oldest first."""
        K = self.num_classes
        out = []
        for idx, val in self._history:
            m = np.zeros(K * K, np.int64)
            m[idx] = val
            out.append(m.reshape(K, K))
        return out

    @property
    def accuracy(self) -> float:
        """The epoch in progress' accuracy (the diagonal's share; NaN before any sample)."""
        return accuracy(self.matrix)

    def per_class(self) -> dict[str, np.ndarray]:
        """Per-class ``precision``, ``recall``, ``f1`` and ``support`` arrays (index = class)."""
        return per_class_metrics(self.matrix)

    def examples(self, true: int, predicted: int) -> np.ndarray:
        """The sampled thumbnails ``(M, h, w, 3)`` uint8 of one cell."""
        K = self.num_classes
        if not (0 <= true < K and 0 <= predicted < K):
            raise ValueError(
                f"true and predicted must be class indices in [0, {K}), got ({true}, {predicted})"
            )
        store = self._examples.slots.get(true * K + predicted, [])
        if not store:
            return np.zeros((0, 1, 1, 3), np.uint8)
        return np.stack(store)

    # ---------------------------------------------------------------- syncing
    def _push(self, final: bool) -> bool:
        idx, val = self._counter.sparse()
        self.counts_index, self.counts_value = idx, val
        self.epoch = len(self._history) + (0 if self._closed else 1)
        self.epoch_open = not self._closed and self._counter.samples > 0
        if self._history_dirty:
            self._history_dirty = False
            sizes = [len(i) for i, _ in self._history]
            self.history_offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
            self.history_index = np.concatenate(
                [i for i, _ in self._history] or [np.zeros(0, np.int64)]
            )
            self.history_value = np.concatenate(
                [v for _, v in self._history] or [np.zeros(0, np.int64)]
            )
        if self._examples_dirty and (final or self._examples_throttle.ready()):
            self._examples_dirty = False
            self._examples_throttle.mark()
            self.examples_cells, self.examples_images = self._examples.arrays()
        return self._examples_dirty  # held back by their own, slower throttle


def _class_names(classes, num_classes) -> list[str]:
    if classes is None and num_classes is None:
        raise ValueError("ConfusionMatrix needs classes=[names...] or num_classes=K")
    if classes is not None:
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            raise TypeError(
                f"classes must be a sequence of class names, got the int {classes}; "
                f"for {classes} unnamed classes pass num_classes={classes}"
            )
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence | np.ndarray):
            raise TypeError(
                f"classes must be a sequence of class names, got {type(classes).__name__}"
            )
        names = [str(c) for c in classes]
        if num_classes is not None and num_classes != len(names):
            given = "1 class name was" if len(names) == 1 else f"{len(names)} class names were"
            raise ValueError(f"num_classes={num_classes} but {given} given")
    else:
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        names = [str(i) for i in range(num_classes)]
    if len(names) < 2:
        raise ValueError(f"a confusion matrix needs at least 2 classes, got {len(names)}")
    return names
