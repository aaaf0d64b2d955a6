"""``Embeddings``: a data set's layer embeddings as a zoomable scatter, epoch by epoch.

The kernel embeds (`core.embed`), projects (`geometry.pca`, 2-D), finds each item's
nearest neighbours in the layer's own space (`geometry.neighbours`) and makes one
thumbnail per item; the browser draws the points with WebGL (regl-scatterplot) and does
everything else itself (hover, colour, search, lasso gallery, neighbours, the epoch
slider), so nothing a person does there asks the kernel.

Each `Embeddings.update` re-embeds with the model's current weights and appends a
*frame*; its PCA is aligned to the previous frame's (`geometry.procrustes_align`), so
the slider moves points instead of flipping and rotating the cloud.

UMAP and t-SNE run in the browser, in a web worker (js/src/lib/projection.js): the kernel
only sends, per frame, a fixed sample's vectors reduced by PCA to at most `SAMPLE_DIMS`
dimensions (`_reduce`), so the kernel stays free and needs no UMAP package.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import traitlets
from torch import nn

from .._checks import int_at_least
from .._images import thumbnails
from .._outputs import check_output, pick_scores
from .._text import plural
from .._widget import Array, LiveWidget
from .core import Embedded, _count, embed
from .geometry import PCA, neighbours, pca, procrustes_align

# All thumbnails together take at most this much (N x size x size x 3 bytes): a large
# data set gets smaller thumbnails (100,000 items: 14 px), never fewer.
THUMBNAIL_BYTES = 64 * 2**20
# Per-class log-probabilities kept for the loss while embedding (N x K x 4 bytes); beyond
# this the view colours by confidence only.
LOSS_BYTES = 64 * 2**20
# Up to this many items a frame's nearest neighbours are found before it is shown (about
# 2 s at 20,000 on two cores); above, in a background thread after (the search grows with
# the square: about a minute at 100,000), so the view and the kernel are free meanwhile.
NEIGHBOURS_NOW = 20_000
# The items the browser's UMAP and t-SNE see: a uniform sample (fixed seed, the same in
# every frame) of at most this many (t-SNE, Barnes-Hut in the browser, takes the first
# 10,000 of them: about 20 s), each frame's vectors reduced by PCA to at most SAMPLE_DIMS dims. 20,000 x 50
# float32 is 4 MB a frame.
SAMPLE = 20_000
SAMPLE_DIMS = 50
SAMPLE_SEED = 0
# Up to this many dims the reduction is an exact PCA (the covariance's eigenvectors);
# above, a randomised SVD with a fixed seed (`torch.svd_lowrank`).
EXACT_DIMS = 256


@dataclass
class Frame:
    """One embedding of the data set (one epoch): ``embedded`` as `embed` returned it,
    ``coords`` ``(M, 2)`` float32 its PCA aligned to the frame before, ``coords3``
    ``(M, 3)`` its first three principal components aligned (in 3-D) to the frame
    before, ``explained`` the three axes' variance shares, ``neighbours`` ``(M, k)`` row
    numbers of each kept item's nearest items in the layer's space (None while a search
    runs in the background, `NEIGHBOURS_NOW`; ``neighbours_error`` says why one failed),
    ``confidence`` ``(M,)`` the softmax probability
    of the predicted class, ``loss`` ``(M,)`` the cross-entropy of the true class (None
    where the model gives no class scores, or without labels), ``label`` its name;
    ``sample_vectors`` ``(S, d)`` float32 the sampled items' vectors reduced by PCA for
    the browser's UMAP and t-SNE, NaN rows for items left out (None: no sample)."""

    embedded: Embedded
    coords: np.ndarray
    explained: np.ndarray
    neighbours: np.ndarray | None
    confidence: np.ndarray | None
    loss: np.ndarray | None
    label: str
    sample_vectors: np.ndarray | None = None
    coords3: np.ndarray | None = None
    neighbours_error: str = ""


class Embeddings(LiveWidget):
    """A data set's embeddings at one layer of a live model, drawn as a 2-D scatter.

    >>> import nbviz, torch
    >>> from nbviz.examples import SmallCNN
    >>> data = nbviz.datasets.shapes(n=200, size=32)
    >>> model = SmallCNN(num_classes=len(data.classes))
    >>> emb = nbviz.Embeddings(model, data.images, data.labels, classes=data.classes)
    >>> emb  # doctest: +SKIP
    >>> train(model, ...); emb.update()  # doctest: +SKIP

    ``labels`` ``(N,)`` class numbers (optional), named by ``classes``; ``layer``: a
    module path (default: the layer feeding the model's head, `core.default_layer`);
    ``neighbours``: how many nearest items a click shows (cosine, in the layer's space);
    ``thumbnail_size``: the longest side of the hover and gallery pictures, made smaller
    for large data sets so that all thumbnails take at most 64 MiB (`THUMBNAIL_BYTES`);
    ``sample``: how many items the browser's UMAP and t-SNE see, a uniform random sample
    with a fixed seed, the same in every frame (default `SAMPLE`, 20,000; t-SNE takes
    the first 10,000 of it; ``0``: PCA only, nothing sent for them);
    ``batch_size``, ``output``, ``forward_kwargs``, ``pool``: as in `core.embed`.

    Items whose activations are not finite are left out of a frame and counted in the
    status line. The model is left as found (train/eval mode, gradients, buffers).

    Synced traits (read as-is by the frontend; ``F`` frames, ``N`` items, ``k``
    neighbours): ``classes`` list of str; ``layer`` str; ``status`` str;
    ``frame_labels`` list of str; ``explained`` list of ``[pc1, pc2, pc3]`` per frame;
    ``labels`` ``(N,)`` int32 or None; ``thumbnails`` ``(N, h, w, 3)`` uint8;
    ``coords`` ``(F, N, 2)`` float32, NaN where an item was left out; ``coords3``
    ``(F, N, 3)`` float32 the same for the 3-D view;
    ``predicted`` ``(F, N)`` int32 (-1: left out) or None; ``confidence`` and ``loss``
    ``(F, N)`` float32 (NaN: left out) or None; ``neighbours`` ``(F, N, k)`` int32 item
    numbers (-1: none, or not found yet: above `NEIGHBOURS_NOW` items they are found in a
    background thread, the status line saying how far, and sent when found); ``sample`` ``(S,)`` int32 the item numbers UMAP and t-SNE see,
    in the sample's random order (None when ``sample=0``); ``sample_vectors``
    ``(F, S, d)`` float32 those items' vectors in each frame, centred and reduced by that
    frame's PCA (fitted on the sample) to ``d = min(50, D)`` dims, NaN rows where an item
    was left out (None when ``sample=0``).
    """

    _bundle = "projector"

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    layer = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    frame_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    explained = traitlets.List().tag(sync=True)
    labels = Array()
    thumbnails = Array()
    coords = Array()
    coords3 = Array()
    predicted = Array()
    confidence = Array()
    loss = Array()
    neighbours = Array()
    sample = Array()
    sample_vectors = Array()
    # Shared with a linked `ConfusionMatrix` (`link`): the views talk in the browser.
    link_channel = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        images: Any,
        labels: Any = None,
        *,
        layer: str | nn.Module | None = None,
        classes: Sequence[str] | None = None,
        title: str = "",
        neighbours: int = 10,
        thumbnail_size: int = 32,
        sample: int = SAMPLE,
        batch_size: int = 256,
        output: Any = None,
        forward_kwargs: Any = None,
        pool: Any = "mean",
        layout: Any = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self._k = int_at_least("neighbours", neighbours)
        thumbnail_size = int_at_least("thumbnail_size", thumbnail_size)
        check_output(output)
        n = _count(model, images, forward_kwargs)
        self._n = n
        self._labels = _check_labels(labels, n)
        names = _class_names(classes, self._labels)
        self._sample = _sample_items(n, int_at_least("sample", sample, 0))
        self._model, self._images = model, images
        self._args = dict(
            layer=layer,
            batch_size=batch_size,
            output=output,
            forward_kwargs=forward_kwargs,
            pool=pool,
        )
        self._output = output
        self.frames: list[Frame] = []
        self._searches: ThreadPoolExecutor | None = None
        self._searching = ""  # how far a background neighbour search got ("": none runs)
        self._closing = False
        self._sent: dict[str, Any] = {}  # per trait: what it was last set from
        first = self._embed("initial")  # a bad layer raises here, before the view exists
        self._thumbs = _thumbnails(images, n, thumbnail_size)
        super().__init__(max_rate=None, layout=layout, title=title, classes=names)
        self.frames.append(first)
        self._args["layer"] = first.embedded.layer  # each update embeds the same layer
        self.layer = first.embedded.layer
        self.labels = self._labels
        self.thumbnails = self._thumbs
        self.sample = self._sample
        self.mark_changed(force=True)
        self._search_later(first)

    # ---------------------------------------------------------------- computing
    def _embed(self, label: str) -> Frame:
        scores = _ScoreTap(self._model, self._output, self._labels, self._n)
        with scores:
            e = embed(self._model, self._images, **self._args)
        if len(e.index) < 3:
            raise ValueError(
                f"{plural(len(e.index), 'item')} left to project ({e.summary()}); a "
                "projection needs at least 3"
            )
        p = _pca3(e.vectors)
        coords, coords3 = p.coords[:, :2].copy(), p.coords
        if self.frames:  # each view turned onto the frame before, in its own dims
            prev = self.frames[-1]
            coords = procrustes_align(prev.coords, coords, prev.embedded.index, e.index)
            coords3 = procrustes_align(prev.coords3, coords3, prev.embedded.index, e.index)
        confidence, loss = scores.result(e.index)
        reduced = _sample_vectors(e, self._sample)
        frame = Frame(e, coords, p.explained, None, confidence, loss, label, reduced, coords3)
        if len(e.index) <= NEIGHBOURS_NOW:
            frame.neighbours = neighbours(e.vectors, k=min(self._k, len(e.index) - 1))
        return frame

    def _search_later(self, frame: Frame) -> None:
        """Finds a large frame's neighbours in a background thread (one search at a time,
        in order) and sends them when found; the status line shows how far it got."""
        if frame.neighbours is not None:
            return
        if self._searches is None:
            self._searches = ThreadPoolExecutor(1, thread_name_prefix="nbviz-neighbours")
        self._searches.submit(self._search, frame)

    def _search(self, frame: Frame) -> None:
        _yield_cpu()
        e = frame.embedded
        step = [0.1]

        def progress(done: int, rows: int) -> None:
            if self._closing:
                raise _Closed
            if done / rows >= step[0] and done < rows:
                step[0] += 0.1
                with self._lock:
                    self._searching = f"{done / rows:.0%}"
                    self.status = _status(self.frames[-1], self._searching)

        try:
            with self._lock:
                self._searching = "0%"
                self.status = _status(self.frames[-1], self._searching)
            near = neighbours(e.vectors, k=min(self._k, len(e.index) - 1), progress=progress)
        except _Closed:
            return
        except Exception as err:  # shown in the view, never raised into the user's cell
            frame.neighbours_error = f"{type(err).__name__}: {err}"
            near = None
        with self._lock:
            frame.neighbours = near
            self._searching = ""
            self.mark_changed(force=True)

    def update(self, label: str | None = None) -> None:
        """Embed again with the model's current weights and append the frame (aligned to
        the last one); ``label`` names it on the slider (default ``"update <i>"``)."""
        frame = self._embed(label if label is not None else f"update {len(self.frames)}")
        with self._lock:
            self.frames.append(frame)
            self.mark_changed(force=True)
        self._search_later(frame)

    def close(self) -> None:
        """Close the view and stop a background neighbour search."""
        self._closing = True
        searches = getattr(self, "_searches", None)  # absent if __init__ raised early
        if searches is not None:
            searches.shutdown(wait=False, cancel_futures=True)
        super().close()

    def link(self, confusion: Any) -> None:
        """Link this projector to a `nbviz.ConfusionMatrix` shown in the same page:
        selecting a cell there selects the items here that the model puts in that cell
        (by the predictions of the frame shown), and points selected here (a lasso, or
        a point and its neighbours) are outlined in their cells there. The views talk
        in the browser, so the link works while the kernel is busy. Both must name the
        same classes in the same order. ``link(None)`` unlinks.

        >>> emb.link(cm)  # doctest: +SKIP
        """
        from ..confusion.widget import ConfusionMatrix

        if confusion is None:
            self.link_channel = ""
            return
        if not isinstance(confusion, ConfusionMatrix):
            raise TypeError(
                f"link takes an nbviz.ConfusionMatrix (or None), got {type(confusion).__name__}"
            )
        theirs, ours = list(confusion.classes), list(self.classes)
        if theirs != ours:
            raise ValueError(_class_mismatch(ours, theirs))
        if not confusion.link_channel:
            confusion.link_channel = uuid.uuid4().hex
        self.link_channel = confusion.link_channel

    # ---------------------------------------------------------------- data out
    @property
    def embedded(self) -> Embedded:
        """The latest frame's `Embedded` (vectors, index, dropped, predictions)."""
        return self.frames[-1].embedded

    def _push(self, final: bool) -> bool:
        frames = self.frames
        ids = tuple(id(fr) for fr in frames)
        # A trait is set (and sent) only when what it is made from changed: a neighbour
        # search that ends sends the neighbours, not the frames again.
        n = self._n
        self._set("coords", ids, lambda: _per_item([fr.coords for fr in frames], frames, n, np.nan))
        self._set(
            "coords3", ids, lambda: _per_item([fr.coords3 for fr in frames], frames, n, np.nan)
        )
        found = tuple((id(fr), fr.neighbours is not None) for fr in frames)
        self._set("neighbours", found, self._neighbour_items)
        self._set(
            "predicted",
            ids,
            lambda: _per_item([fr.embedded.predicted for fr in frames], frames, n, -1, np.int32),
        )
        self._set(
            "confidence",
            ids,
            lambda: _per_item([fr.confidence for fr in frames], frames, n, np.nan),
        )
        self._set("loss", ids, lambda: _per_item([fr.loss for fr in frames], frames, n, np.nan))
        if self._sample is not None:
            self._set("sample_vectors", ids, lambda: np.stack([fr.sample_vectors for fr in frames]))
        self.explained = [[float(v) for v in fr.explained] for fr in frames]
        self.frame_labels = [fr.label for fr in frames]
        self.status = _status(frames[-1], self._searching)
        return False

    def _set(self, name: str, key: Any, make: Any) -> None:
        if self._sent.get(name) != key:
            setattr(self, name, make())
            self._sent[name] = key

    def _neighbour_items(self) -> np.ndarray:
        """``(F, N, k)`` int32 item numbers of each item's neighbours, -1 where none (an
        item left out, or a search still running)."""
        near = np.full((len(self.frames), self._n, self._k), -1, np.int32)
        for i, fr in enumerate(self.frames):
            if fr.neighbours is not None:
                idx = fr.embedded.index.numpy()
                near[i, idx, : fr.neighbours.shape[1]] = idx[fr.neighbours]
        return near


# --- helpers -------------------------------------------------------------------------------------


class _ScoreTap:
    """Per-item softmax confidence (and loss against ``labels``) from the forwards `embed`
    runs anyway: a hook on the model's root records each call's class scores; the batches
    are the last calls (after `embed`'s probes), one item range after another."""

    def __init__(self, model: nn.Module, output: Any, labels: np.ndarray | None, n: int):
        self.model, self.output, self.labels, self.n = model, output, labels, n
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.handle = None

    def __enter__(self) -> _ScoreTap:
        def hook(_module, _args, out):
            try:
                s = pick_scores(out, self.output)
            except ValueError:
                return
            if s.ndim != 2:
                return
            lp = torch.log_softmax(s.detach().float(), dim=1).cpu()
            keep = self.labels is not None and self.n * s.shape[1] * 4 <= LOSS_BYTES
            self.calls.append((lp.max(1).values.exp(), lp if keep else None))

        self.handle = self.model.register_forward_hook(hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def result(self, index: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray | None]:
        total, calls = 0, []
        for conf, lp in reversed(self.calls):  # the batches: the last calls covering n
            calls.insert(0, (conf, lp))
            total += len(conf)
            if total >= self.n:
                break
        if total != self.n:
            return None, None
        idx = index.numpy()
        confidence = torch.cat([c for c, _ in calls]).numpy()[idx]
        if self.labels is None or any(lp is None for _, lp in calls):
            return confidence, None
        lp = torch.cat([lp for _, lp in calls])
        labels = torch.from_numpy(self.labels.astype(np.int64))
        if int(labels.max()) >= lp.shape[1]:
            return confidence, None
        loss = -lp.gather(1, labels[:, None])[:, 0].numpy()[idx]
        return confidence, loss


def _sample_items(n: int, size: int) -> np.ndarray | None:
    """``min(n, size)`` distinct item numbers, int32, in a uniformly random order fixed
    by `SAMPLE_SEED` (any prefix is itself a uniform sample); None when ``size`` is 0."""
    if size == 0:
        return None
    order = np.random.default_rng(SAMPLE_SEED).permutation(n)
    return order[:size].astype(np.int32)


def _sample_vectors(e: Embedded, sample: np.ndarray | None) -> np.ndarray | None:
    """The sampled items' vectors in this frame, centred and reduced by a PCA fitted on
    them (`_reduce`): ``(S, d)`` float32, NaN rows for items left out (non-finite)."""
    if sample is None:
        return None
    index = e.index.numpy()
    at = np.minimum(np.searchsorted(index, sample), len(index) - 1)
    kept = index[at] == sample
    d = min(SAMPLE_DIMS, e.dim)
    out = np.full((len(sample), d), np.nan, np.float32)
    if kept.sum() >= 2:
        out[kept] = _reduce(e.vectors[torch.from_numpy(at[kept])], d)
    return out


def _reduce(x: torch.Tensor, dims: int) -> np.ndarray:
    """``x`` ``(M, D)`` centred and, when ``D > dims``, projected on its first ``dims``
    principal axes: float32 ``(M, dims)``. Distances between rows are kept when
    ``D <= dims``, else those in the top principal subspace. Exact (the covariance's
    eigenvectors, in float64) up to `EXACT_DIMS` dims; above, a randomised SVD with a
    fixed seed (`torch.svd_lowrank`, 4 power iterations). Deterministic."""
    x = x.float()
    m, d = x.shape
    mean = x.double().mean(0)
    if d <= dims:
        return (x.double() - mean).float().numpy()
    if d <= EXACT_DIMS:
        cov = torch.zeros(d, d, dtype=torch.float64)
        for i in range(0, m, 4096):
            c = x[i : i + 4096].double() - mean
            cov += c.T @ c
        _, vecs = torch.linalg.eigh(cov)  # ascending
        axes = vecs.flip(1)[:, :dims]
    elif m <= 4 * dims:  # few rows: the exact SVD is small
        axes = torch.linalg.svd(x.double() - mean, full_matrices=False)[2][:dims].T
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SAMPLE_SEED)
            _, _, v = torch.svd_lowrank(x, q=dims + 10, niter=4, M=mean.float()[None])
        axes = v[:, :dims].double()
    out = torch.cat([(x[i : i + 4096].double() - mean) @ axes for i in range(0, m, 4096)])
    if out.shape[1] < dims:  # fewer rows than dims: the rest of the axes carry nothing
        out = torch.cat([out, out.new_zeros(m, dims - out.shape[1])], 1)
    return out.float().numpy()


def _per_item(values, frames, n, fill, dtype=np.float32) -> np.ndarray | None:
    """Per-frame values of the kept items (``(M,)`` or ``(M, d)``) -> ``(F, N)`` or
    ``(F, N, d)`` with ``fill`` for the others; None when a frame has none."""
    if any(v is None for v in values):
        return None
    out = np.full((len(frames), n, *np.shape(values[0])[1:]), fill, dtype)
    for i, (v, fr) in enumerate(zip(values, frames, strict=True)):
        out[i, fr.embedded.index.numpy()] = np.asarray(v)
    return out


def _status(frame: Frame, searching: str = "") -> str:
    e = frame.embedded
    pcs = " + ".join(f"{v:.0%}" for v in frame.explained[:2])
    text = (
        f"{plural(len(e.index), 'item')} at {e.layer!r} ({plural(e.dim, 'dim')}); "
        f"PCA explains {pcs} of the variance"
    )
    if len(e.dropped):
        text += f"; {plural(len(e.dropped), 'item')} left out: non-finite activations"
    if searching:
        text += f"; finding each item's nearest items in the layer's space: {searching}"
    elif frame.neighbours_error:
        text += f"; the nearest items could not be found ({frame.neighbours_error})"
    return text


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux: per thread; the threads torch starts from
    it inherit it), so that a background search gives way to the browser drawing the view
    and to the kernel's own work. Where the system does not allow it, nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
    except (AttributeError, OSError):
        pass


class _Closed(Exception):
    """Stops a background neighbour search when the widget closes."""


def _pca3(vectors: torch.Tensor) -> PCA:
    """The first three principal components (a zero third axis for 2-dim vectors)."""
    if vectors.shape[1] >= 3:
        return pca(vectors, dims=3)
    p = pca(vectors, dims=2)
    coords = np.concatenate([p.coords, np.zeros((len(p.coords), 1), np.float32)], 1)
    return PCA(coords, np.append(p.explained, 0.0), p.components, p.mean)


def _class_mismatch(ours: list[str], theirs: list[str]) -> str:
    if len(ours) != len(theirs):
        return (
            f"the confusion matrix has {plural(len(theirs), 'class', 'classes')} and the "
            f"projector {len(ours)}: link views of the same classes"
        )
    i = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
    return (
        f"class {i} is {theirs[i]!r} in the confusion matrix but {ours[i]!r} in the "
        "projector: give both the same class names, in the same order (Embeddings(..., "
        "classes=...))"
    )


def _check_labels(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels must be one class number per item, shape ({n},) integers; got "
            f"{arr.dtype} of shape {arr.shape}"
        )
    if len(arr) != n:
        raise ValueError(
            f"labels must hold one class per item: {plural(n, 'item')} given but "
            f"{plural(len(arr), 'label')}"
        )
    if len(arr) and int(arr.min()) < 0:
        raise ValueError(f"labels must be class numbers >= 0, got {int(arr.min())}")
    return arr.astype(np.int32)


def _class_names(classes: Any, labels: np.ndarray | None) -> list[str]:
    if classes is None:
        k = int(labels.max()) + 1 if labels is not None and len(labels) else 0
        return [str(i) for i in range(k)]
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence | np.ndarray):
        raise TypeError(f"classes must be a sequence of class names, got {type(classes).__name__}")
    names = [str(c) for c in classes]
    if labels is not None and len(labels) and int(labels.max()) >= len(names):
        raise ValueError(
            f"labels go up to {int(labels.max())} but {plural(len(names), 'class name')} were given"
        )
    return names


def _thumbnails(images: Any, n: int, size: int) -> np.ndarray:
    """One thumbnail per item, at most `THUMBNAIL_BYTES` together (smaller for large
    ``n``), made a chunk at a time so no full-size float copy of the data set is held."""
    size = max(4, min(size, int((THUMBNAIL_BYTES / (3 * n)) ** 0.5)))
    x = images.get("pixel_values") if isinstance(images, Mapping) else images
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        return np.zeros((n, 1, 1, 3), np.uint8)
    chunks = [thumbnails(x[i : i + 1024], size) for i in range(0, n, 1024)]
    return np.concatenate(chunks)
