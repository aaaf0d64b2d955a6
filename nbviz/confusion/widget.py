"""``ConfusionMatrix``: a live confusion matrix widget.

Python counts and keeps the epoch history; the browser receives sparse counts
(non-zero cells only, so K = 1,000 stays cheap) and does everything else
itself: normalization, hover, the epoch slider, the example gallery.

Given the model, the kept examples also get their Grad-CAM maps for the true and the
predicted class (`explain.ExampleMaps`), computed when the kernel is free (the end of
a cell, ``explain()``, or a click in a followed run's view) and sent ahead, so the
gallery shows where the model looked without asking the kernel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from .._checks import positive_seconds
from .._dist import DEFAULT_TIMEOUT, rank_and_world
from .._images import display_images, display_masks, example_images
from .._outputs import Output, check_output, pick_scores, structured
from .._widget import Array, LiveWidget, Throttle
from ..cam.agreement import check_masks
from .core import ArrayLike, ConfusionCounter, accuracy, batch_cells, per_class_metrics
from .explain import ExampleMaps, examples_within_budget
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

    With ``model``, a click on a kept example shows where the model looked: its Grad-CAM
    maps (``cam_method``, any of :data:`nbviz.cam.METHODS`, at ``cam_layers``, default
    every conv layer and block) for the true class and the predicted one, side by side,
    with a layer slider (and the outline of the human mask, for ``update(..., masks=)``).
    The kept examples' inputs are kept for this (copies, at most 256 MiB: fewer examples
    per cell for large inputs), and their maps are computed when the kernel is free: at
    the end of each cell, or now with :meth:`explain`. ``keep_inputs=True`` keeps the
    inputs without a model: a run directory (``logdir``) then records them with each
    closed epoch's examples, and ``nbviz.follow``'s matrix, given a model with
    ``explain(model)``, computes the maps of a clicked cell's examples.
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
    examples_ids = Array()  # the id of each kept example (the key of its maps)
    # Where the model looked: "" (no model), "end of cell" (maps come when the running
    # cell ends), "on click" (the view asks for a cell's maps; the kernel is free), "no
    # inputs" (a followed run recorded none) or "error" (cam_error says why).
    cam_status = traitlets.Unicode("").tag(sync=True)
    cam_method = traitlets.Unicode("gradcam").tag(sync=True)
    cam_error = traitlets.Unicode("").tag(sync=True)  # why maps stopped ("error" status)
    cam_ids = Array()  # (E,) the examples with maps
    cam_maps = Array()  # flat uint8: per layer (E, 2, h, w) from its offset; 2 = true, predicted
    cam_index = traitlets.List().tag(sync=True)  # {layer, h, w, offset} per layer
    cam_probs = Array()  # (E, 2) the model's probabilities of the true and predicted class
    cam_images = Array()  # (E, H, W, 3) uint8: the inputs at display size
    cam_masks = Array()  # (E, H, W) uint8 human masks at display size, or None
    # Shared with linked projectors (`Embeddings.link`): the views talk in the browser.
    link_channel = traitlets.Unicode("").tag(sync=True)

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
        model: Any = None,
        cam_layers: Sequence[Any] | None = None,
        cam_method: str = "gradcam",
        keep_inputs: bool = False,
        layout: Any = None,
    ):
        names = _class_names(classes, num_classes)
        self._output = check_output(output)
        self._maps = (
            None if model is None else ExampleMaps(model, cam_layers, cam_method, output=output)
        )
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
        self._counter = ConfusionCounter(len(names))
        self._examples = ExampleReservoir(examples_per_cell, max_examples, thumbnail_size, seed)
        self._examples.keep_inputs = bool(keep_inputs) or self._maps is not None
        self._cam_dirty = self._budgeted = False
        self._maps_shown: list[int] | None = None  # the ids whose maps the view has
        self._busy = end_of_cell_flush  # maps wait for the cell's end (else: computed on click)
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
            cam_method=cam_method,
        )
        self._set_cam_status()
        self.on_msg(self._on_message)
        self.mark_changed(force=True)  # initial empty state in the first message

    # ---------------------------------------------------------------- data in
    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return self._counter.num_classes

    def update(
        self,
        outputs: ArrayLike,
        targets: ArrayLike,
        inputs: ArrayLike | None = None,
        masks: ArrayLike | None = None,
    ):
        """Count one batch.

        ``outputs``: logits or probabilities ``(N, K)`` or predicted labels
        ``(N,)``, or what the model returned (a Hugging Face ``ModelOutput``: its
        ``logits``; the constructor's ``output=`` chooses where that is ambiguous);
        ``targets``: integer labels ``(N,)``; ``inputs`` (optional):
        the batch's images ``(N, C, H, W)``, sampled into each cell's gallery (with a
        ``model``: as the model takes them); ``masks`` (optional, with ``inputs``): human
        masks ``(N, H, W)``, outlined over the examples' maps.
        Torch tensors on any device, or numpy arrays. Bad input raises before
        anything is counted; an empty batch changes nothing.
        """
        if self._output is not None or structured(outputs):  # a ModelOutput, a dict, ...
            outputs = pick_scores(outputs, self._output, what="class scores")
        cells = batch_cells(outputs, targets, self.num_classes)
        if cells is None:
            return
        images = None
        if masks is not None and inputs is None:
            raise ValueError("masks are outlined over the examples: pass inputs= with them")
        if inputs is not None:
            images = example_images(inputs, len(cells))
            self._examples.check(images)
            if masks is not None:
                masks = check_masks(masks, len(cells), tuple(images.shape[-2:]))
            if self._examples.keep_inputs and not self._budgeted:
                self._budgeted = True
                self._examples.max_total = examples_within_budget(
                    tuple(images.shape[1:]), images.element_size(), self._examples.max_total
                )
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
            entered = self._examples.add(cells, images, masks)
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
                self._write_log(closing=True)
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

    # ------------------------------------------------------- where the model looked
    def explain(
        self,
        model: Any = None,
        *,
        layers: Sequence[Any] | None = None,
        method: str | None = None,
    ) -> int:
        """Compute the maps of every kept example that has none yet, now, and send them;
        return how many were computed. ``model`` (with ``layers`` and ``method``) sets or
        replaces the model to explain (its maps are computed afresh); a matrix made
        without one keeps the inputs of the examples kept from then on."""
        if model is not None:
            method = method or self.cam_method
            self._maps = ExampleMaps(model, layers, method, output=self._output)
            self.cam_method = method
            self._cam_dirty = True
        elif self._maps is None:
            raise ValueError(
                "explain() needs the model: cm.explain(model), or ConfusionMatrix(model=...)"
            )
        elif layers is not None or method is not None:
            raise ValueError("layers= and method= come with a model: cm.explain(model, layers=...)")
        self._examples.keep_inputs = True
        self._set_cam_status()
        done = self._compute_maps(None)
        self.mark_changed(force=True)
        return done

    def _set_cam_status(self) -> None:
        self.cam_error = ""
        if self._maps is None:
            self.cam_status = ""
        else:
            self.cam_status = "end of cell" if self._busy else "on click"

    def _compute_maps(self, cell: int | None) -> int:
        """Maps for the kept examples without them (of one cell, or all); how many."""
        with self._lock:  # a followed run's reader thread replaces the examples
            return self._compute_maps_locked(cell)

    def _compute_maps_locked(self, cell: int | None) -> int:
        if self._maps is None:
            return 0
        todo = [
            (i, c, x, m)
            for i, c, x, m in self._examples.inputs()
            if (cell is None or c == cell) and i not in self._maps.maps
        ]
        if not todo:
            return 0
        ids = [i for i, *_ in todo]
        self._maps.compute(
            ids,
            torch.stack([x for _, _, x, _ in todo]),
            torch.tensor([c for _, c, _, _ in todo]),
            self.num_classes,
        )
        self._cam_dirty = True
        return len(ids)

    def cell_ended(self) -> None:
        """The kernel is about to be free: the new examples' maps first, then the push."""
        if self._maps is not None and self.cam_status != "error" and self._maps_or_error(None):
            self._dirty = True
        super().cell_ended()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The view asks for the maps of a cell's examples (``{"explain": cell}``)."""
        if not isinstance(content, dict) or "explain" not in content:
            return
        cell = content["explain"]
        if isinstance(cell, int) and 0 <= cell < self.num_classes**2:
            if self._maps_or_error(cell):
                self.mark_changed(force=True)

    def _maps_or_error(self, cell: int | None) -> int:
        """`_compute_maps` where nobody waits for an exception (a cell's end, a click): a
        failure is said in the view and as a warning, once, and maps stop until the next
        ``explain()``; the kernel goes on."""
        try:
            return self._compute_maps(cell)
        except Exception as e:
            self.cam_error = f"the maps could not be computed: {type(e).__name__}: {e}"
            self.cam_status = "error"
            warnings.warn(f"ConfusionMatrix: {self.cam_error}", RuntimeWarning, stacklevel=2)
            return 0

    def close_log(self) -> None:
        """Write the epoch in progress and close the run log (``logdir``); idempotent. A
        script's end does it too."""
        if self._log is not None and not self._log.writer.closed:
            self._write_log(closing=True)
            self._log.close()

    def _write_log(self, closing: bool = False) -> None:
        """Queue the epoch in progress and changed examples (the log's thread writes).
        Kept inputs are large: with them, the examples are written when an epoch closes
        (and at the log's close) only, the epoch's final sample."""
        epoch = len(self._history) + (0 if self._closed else 1)
        self._log.current(
            self._counter.sparse(), epoch, not self._closed and self._counter.samples > 0
        )
        if not self._examples.keep_inputs:
            self._log.examples(self._examples_version, self._examples.arrays)
        elif closing:
            self._log.examples(self._examples_version, self._examples.recorded)

    def show_recorded(
        self,
        history: list[tuple[np.ndarray, np.ndarray]],
        current: tuple[np.ndarray, np.ndarray] | None,
        epoch_open: bool,
        examples: tuple[np.ndarray, ...] | None,
    ) -> None:
        """Show a recorded state (``nbviz.follow`` does): closed epochs as sparse
        ``(index, value)``, the epoch in progress (or None), whether it has counts, and
        its example thumbnails ``(cells, images)`` (None: those shown stay), with their
        ``inputs`` and ``masks`` where recorded ``(cells, images, inputs, masks)``."""
        with self._lock:
            self._show_recorded(history, current, epoch_open, examples)

    def _show_recorded(self, history, current, epoch_open, examples) -> None:
        self._history = list(history)
        self._counter.load_sparse(*(current or (np.zeros(0, np.int64),) * 2))
        self._closed = not epoch_open
        if examples is not None:
            self._examples.load(*examples)
            if self._maps is not None:
                self._maps.keep_only(self._examples.ids())
            self._cam_dirty = True
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
            self.examples_ids = self._examples.ids()
            self._cam_dirty |= self._maps is not None and self._maps_shown != self._with_maps()
        if self._cam_dirty:
            self._cam_dirty = False
            self._push_maps()
        return self._examples_dirty

    def _with_maps(self) -> list[int]:
        """The kept examples that have maps (what the view shows maps of)."""
        maps = self._maps.maps if self._maps is not None else {}
        return [i for i, *_ in self._examples.inputs() if i in maps]

    def _push_maps(self) -> None:
        """The maps of the kept examples that have them, with their images and masks."""
        kept = {i: (x, m) for i, _, x, m in self._examples.inputs()}
        if self._maps is not None and not kept and len(self._examples):
            self.cam_status = "no inputs"  # a followed run that recorded none
        if self._maps is None:
            arrays = {"ids": np.zeros(0, np.int64), "maps": None, "index": [], "probs": None}
        else:
            self._maps.keep_only(list(kept))
            arrays = self._maps.arrays(list(kept))
        ids = arrays["ids"].tolist()
        self._maps_shown = ids  # pushes of the examples alone need not send these again
        x = [kept[i][0] for i in ids]
        masks = [kept[i][1] for i in ids]
        self.cam_ids, self.cam_maps, self.cam_probs = arrays["ids"], arrays["maps"], arrays["probs"]
        self.cam_index = arrays["index"]
        self.cam_images = display_images(torch.stack(x)) if x else None
        self.cam_masks = (
            display_masks(torch.stack(masks)) if x and all(m is not None for m in masks) else None
        )  # held back by their own, slower throttle


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
