"""Layer embeddings of a data set: one vector per item from any layer of a live model.

`embed` runs the model over the items once, batch by batch, in eval mode under
``torch.no_grad()``, and keeps one float32 vector per item from one layer's output,
pooled as `pool_output` says. What it guarantees:

- the model is left as found, on success and on error: every submodule's train/eval
  mode, every parameter's ``requires_grad`` and ``.grad``, every buffer's values, and no
  hook of ours stays registered (those the user had are untouched);
- the vectors are the layer's values as it produced them (pooled inside the hook, before
  a later in-place operation such as ``ReLU(inplace=True)`` can change them), in item
  order; items whose vector holds a NaN or an infinity are left out, listed in
  ``dropped`` and counted in `Embedded.summary`;
- memory is bounded: the vectors are written into one ``(N, D)`` buffer allocated
  after a forward of `PROBE` items has told ``D``; more than `MAX_BYTES` is refused with
  the figure before the full pass runs. Beyond that buffer, one batch is held at a time.

Inputs are what the Grad-CAM core takes (`nbviz.cam.inputs.model_inputs`): images
``(N, C, H, W)`` (or the rank the model's first convolution takes), a tensor or numpy
array, or a Hugging Face processor's dict holding ``pixel_values``; ``forward_kwargs``
go with them, split by item where their first dimension is ``N``.

The default layer (``layer=None``) is the one that feeds the model's head: see
`default_layer`.

>>> import torch
>>> from nbviz.examples import SmallCNN
>>> emb = embed(SmallCNN(num_classes=3, width=4), torch.rand(5, 3, 16, 16))
>>> emb.layer, tuple(emb.vectors.shape), emb.vectors.dtype
('classifier.flatten', (5, 32), torch.float32)
>>> print(emb.summary())
5 items embedded at 'classifier.flatten' (32 dims)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import int_at_least, submodule
from .._outputs import call_model, check_output, describe, fields, pick_scores
from .._state import preserved
from .._text import plural
from ..cam.inputs import Inputs, first_conv, model_inputs
from ..cam.layout import CHANNELS_FIRST

# The most memory the kept vectors may take (N x D x 4 bytes); more is refused with the
# figure. 2 GiB holds 100,000 items of up to 5,368 dimensions.
MAX_BYTES = 2 * 2**30
# Items in the first, small forward that finds the default layer and the vectors' size.
PROBE = 2
POOLS = ("mean", "max", "cls")
Pool = str | Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Embedded:
    """One layer's vectors for a data set, as `embed` returns them.

    ``vectors`` ``(M, D)`` float32 on the CPU, row ``i`` the vector of item
    ``index[i]``; ``index`` ``(M,)`` int64, ascending: the items kept; ``dropped``
    int64, ascending: the items left out because their vector was not finite; ``n``:
    the items given (``M + len(dropped)``); ``layer``: the module path the vectors come
    from; ``pool``: how its output became one vector per item; ``predicted`` ``(M,)``
    int64: the argmax of the model's class scores for the kept items, from the same
    forward (``None`` when the output holds no ``(N, K)`` scores)."""

    vectors: torch.Tensor
    index: torch.Tensor
    dropped: torch.Tensor
    n: int
    layer: str
    pool: str
    predicted: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        """``D``, the length of each vector."""
        return self.vectors.shape[1]

    def summary(self) -> str:
        """What was embedded and what was left out, in a sentence or two."""
        kept = self.n - len(self.dropped)
        text = f"{plural(kept, 'item')} embedded at {self.layer!r} ({plural(self.dim, 'dim')})"
        if len(self.dropped):
            shown = ", ".join(str(int(i)) for i in self.dropped[:10])
            more = ", ..." if len(self.dropped) > 10 else ""
            text += (
                f"; {plural(len(self.dropped), 'item')} of {self.n:,} left out: "
                f"non-finite activations (NaN or inf) at items {shown}{more}"
            )
        return text

    __str__ = summary


# --- pooling ---------------------------------------------------------------------------------------


def pool_output(t: torch.Tensor, pool: Pool = "mean", *, tokens: bool = True) -> torch.Tensor:
    """One vector per item from a layer's output ``t``, as a new float32 tensor ``(N, D)``.

    - ``(N, C)``: as it is (``pool`` is not used);
    - ``(N, C, *spatial)`` maps, 4-D or more: the mean (``"mean"``) or the maximum
      (``"max"``) over the spatial positions;
    - 3-D: tokens ``(N, T, C)`` when ``tokens`` (the mean or maximum over tokens, or
      ``"cls"``: the first token), else channels-first signals ``(N, C, L)`` (pooled
      over ``L``);
    - a callable ``pool`` gets ``t`` and returns ``(N, D)``, for any other layout
      (channels last, say).

    >>> pool_output(torch.ones(2, 8, 4, 4)).shape
    torch.Size([2, 8])
    >>> pool_output(torch.arange(12.0).reshape(1, 3, 4), "cls").tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    if callable(pool):
        v = pool(t)
        if not isinstance(v, torch.Tensor) or v.ndim != 2 or v.shape[0] != t.shape[0]:
            got = describe(v) if not isinstance(v, torch.Tensor) else f"shape {tuple(v.shape)}"
            raise ValueError(
                f"pool= must return one vector per item, shape ({t.shape[0]}, D), got {got}"
            )
        return v.detach().to(torch.float32, copy=True)
    t = t.detach()
    if t.ndim < 2:
        raise ValueError(
            f"the layer must output one row per item, (N, ...) with at least 2 dimensions, "
            f"got shape {tuple(t.shape)}"
        )
    if t.ndim == 2:
        return t.to(torch.float32, copy=True)
    if pool == "cls":
        if t.ndim != 3 or not tokens:
            raise ValueError(
                f"pool='cls' takes the first token of tokens (N, T, C); this layer outputs "
                f"{'channels-first ' if t.ndim == 3 else ''}shape {tuple(t.shape)}: use "
                f"pool='mean' or 'max'"
            )
        return t[:, 0].to(torch.float32, copy=True)
    x = t.movedim(1, -1) if t.ndim == 3 and tokens else t  # (N, C, T): tokens as positions
    x = x.flatten(2).float()
    return x.mean(2) if pool == "mean" else x.amax(2)


def _check_pool(pool: Any) -> Pool:
    if callable(pool) or pool in POOLS:
        return pool
    raise ValueError(
        f"pool must be one of {', '.join(map(repr, POOLS))} or a callable returning (N, D), "
        f"got {pool!r}"
    )


def _tensor_of(out: Any) -> torch.Tensor | None:
    """A layer's output tensor: the output itself, or the first part of a tuple, list or
    dict that is a tensor (Hugging Face blocks return ``(hidden_states, ...)``)."""
    if isinstance(out, torch.Tensor):
        return out
    return next((v for _, v in fields(out) if isinstance(v, torch.Tensor)), None)


# --- the default layer -----------------------------------------------------------------------------


def default_layer(model: nn.Module, images: Any, forward_kwargs: Any = None) -> str:
    """The path of the layer `embed` uses when none is named, found in a forward of the
    first `PROBE` items (the model is left as found).

    The rule: the *head* is the last ``nn.Linear`` the forward calls (the classifier),
    or, in a model without one, the last leaf module it calls. The default layer is the
    last module, among those that finished before the head started, whose output is the
    head's input (the same memory: ``torch.flatten`` between them still counts); when
    the head's input was made by a function instead (``x[:, 0]``, ``torch.cat``), it
    is the last module that finished before the head. A model whose head is its first
    module has no default: pass ``layer=``.

    >>> from nbviz.examples import SmallCNN
    >>> default_layer(SmallCNN(width=4), torch.rand(1, 3, 16, 16))
    'classifier.flatten'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inp = _first_batch(model, images, forward_kwargs, _count(model, images, forward_kwargs), PROBE)
    with preserved(model, training=False, buffer_values=True), torch.no_grad():
        return _find_default(model, lambda: _probe(model, inp))


def _find_default(model: nn.Module, run: Callable[[], Any]) -> str:
    clock = itertools.count()
    started: list[tuple[int, str, nn.Module, torch.Tensor | None]] = []
    finished: list[tuple[int, str, torch.Tensor]] = []

    def pre(path: str):
        def hook(module, args, kwargs):
            x = _tensor_of(tuple(args) + tuple(kwargs.values()))
            started.append((next(clock), path, module, x))

        return hook

    def post(path: str):
        def hook(module, args, out):
            t = _tensor_of(out)
            # Kept until the choice is made: a live tensor's memory cannot be reused, so
            # equal data pointers below mean shared memory, not a recycled block.
            if t is not None:
                finished.append((next(clock), path, t))

        return hook

    handles = []
    try:
        for path, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(pre(path), with_kwargs=True))
            handles.append(m.register_forward_hook(post(path)))
        run()
    finally:
        for h in handles:
            h.remove()
    heads = [s for s in started if isinstance(s[2], nn.Linear)] or [
        s for s in started if next(s[2].children(), None) is None
    ]
    if not heads:
        raise ValueError("the model called no module in its forward: pass layer= (a module path)")
    when, head, _, x = heads[-1]
    before = [(t, p) for t, p, out in finished if t < when and out.ndim >= 2 and p]
    if not before:
        raise ValueError(
            f"no layer runs before the model's head {head!r} to embed from: pass layer= "
            "(a module path)"
        )
    by_path = dict((p, out) for _, p, out in finished)
    if x is not None:
        feeding = [
            p
            for _, p in before
            if by_path[p].data_ptr() == x.data_ptr() and by_path[p].numel() == x.numel()
        ]
        if feeding:
            return feeding[-1]
    return before[-1][1]


# --- inputs, batch by batch ------------------------------------------------------------------------


def _count(model: nn.Module, images: Any, forward_kwargs: Any = None) -> int:
    """The number of items in ``images``; what `model_inputs` says when it is not a batch."""
    x = images.get("pixel_values") if isinstance(images, Mapping) else images
    if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim >= 1:
        return int(x.shape[0])
    model_inputs(model, images, forward_kwargs)  # raises, saying what was expected
    raise TypeError(f"images must be a batch of images, got {type(images).__name__}")


def _per_item(v: Any, n: int) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 and v.shape[0] == n


def _rows(images: Any, forward_kwargs: Any, n: int, which: slice) -> tuple[Any, Any]:
    """The items ``which`` of ``images`` and of the per-item ``forward_kwargs`` (views)."""
    if isinstance(images, Mapping):
        images = {k: v[which] if _per_item(v, n) else v for k, v in images.items()}
    else:
        images = images[which]
    if isinstance(forward_kwargs, Mapping):
        forward_kwargs = {k: v[which] if _per_item(v, n) else v for k, v in forward_kwargs.items()}
    return images, forward_kwargs


def _first_batch(model: nn.Module, images: Any, forward_kwargs: Any, n: int, size: int) -> Inputs:
    """The first ``size`` items as the model takes them (a copy of those only)."""
    try:
        return model_inputs(model, *_rows(images, forward_kwargs, n, slice(0, size)))
    except (TypeError, ValueError):
        # Every check model_inputs makes holds for a slice as for the whole, so the whole
        # fails the same one, with a message showing its own shape; it raises before the
        # copy it would make.
        model_inputs(model, images, forward_kwargs)
        raise


def _run(model: nn.Module, inp: Inputs) -> Any:
    """The model on a batch `model_inputs` made (already a copy the model may write)."""
    if inp.key is not None:
        return call_model(model, {inp.key: inp.x, **inp.kwargs})
    return call_model(model, inp.x, **inp.kwargs)


def _probe(model: nn.Module, inp: Inputs) -> Any:
    k = min(PROBE, inp.n)
    return inp.run(model, inp.x[:k], slice(0, k))


def _predictions(out: Any, output: Any, n: int) -> torch.Tensor | None:
    """The argmax of the class scores ``(n, K)`` in ``out``; None when there are none
    (an error when ``output=`` names something else)."""
    try:
        scores = pick_scores(out, output)
    except ValueError:
        if output is not None:
            raise
        return None
    if scores.ndim != 2 or scores.shape[0] != n:
        if output is not None:
            raise ValueError(
                f"output={output!r} picked scores of shape {tuple(scores.shape)}; expected "
                f"({n}, classes)"
            )
        return None
    return scores.argmax(1).cpu()


# --- embedding -------------------------------------------------------------------------------------


def embed(
    model: nn.Module,
    images: Any,
    layer: str | nn.Module | None = None,
    *,
    batch_size: int = 256,
    output: Any = None,
    forward_kwargs: Any = None,
    pool: Pool = "mean",
) -> Embedded:
    """One vector per item from ``layer``'s output (a module path as in
    ``named_modules()``, the module itself, or ``None``: `default_layer`), pooled by
    ``pool`` (see `pool_output`), in one batched pass of ``batch_size`` items at a time.
    ``output`` picks the class scores in the model's output for ``predicted`` (as in
    `nbviz.cam.compute`). See the module's notes for what is guaranteed.

    >>> from nbviz.examples import SmallCNN
    >>> x = torch.rand(4, 3, 16, 16)
    >>> x[2, 0, 0, 0] = float("nan")
    >>> emb = embed(SmallCNN(width=4), x, "features.block4", pool="max")
    >>> emb.index.tolist(), emb.dropped.tolist(), emb.dim
    ([0, 1, 3], [2], 32)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = int_at_least("batch_size", batch_size)
    pool = _check_pool(pool)
    check_output(output)
    path = _layer_path(model, layer)
    n = _count(model, images, forward_kwargs)
    first = _first_batch(model, images, forward_kwargs, n, min(n, batch_size))
    # 3-D outputs are tokens (N, T, C), except in a model that takes signals (N, C, L).
    conv = first_conv(model)
    signals = conv is not None and len(conv.kernel_size) == 1

    with preserved(model, training=False, buffer_values=True), torch.no_grad():
        if path is None:
            path = _find_default(model, lambda: _probe(model, first))
        module = model.get_submodule(path)
        tokens = not (signals or isinstance(module, CHANNELS_FIRST))
        got: list[Any] = []

        def hook(_module, _args, out):
            t = _tensor_of(out)
            if t is None:
                raise ValueError(f"layer {path!r} must output a tensor, got {describe(out)}")
            got[:] = [pool_output(t, pool, tokens=tokens)]  # the last call's, if several

        handle = module.register_forward_hook(hook)
        try:
            out = _probe(model, first)
            if not got:
                raise ValueError(f"layer {path!r} did not run in the model's forward")
            dim = got[0].shape[1]
            vectors = _allocate(n, dim, path)
            predicts = _predictions(out, output, got[0].shape[0]) is not None
            predicted = torch.empty(n, dtype=torch.int64) if predicts else None
            keep = torch.empty(n, dtype=torch.bool)
            kept = 0
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                inp = (
                    first
                    if start == 0
                    else model_inputs(model, *_rows(images, forward_kwargs, n, slice(start, stop)))
                )
                got.clear()
                out = _run(model, inp)
                if not got:
                    raise ValueError(f"layer {path!r} did not run in the model's forward")
                v = got.pop().cpu()
                if v.shape != (stop - start, dim):
                    raise ValueError(
                        f"layer {path!r} gave vectors of shape {tuple(v.shape)} for items "
                        f"{start}:{stop}; expected ({stop - start}, {dim}) as for the first"
                    )
                finite = torch.isfinite(v).all(1)
                keep[start:stop] = finite
                rows = v[finite]
                vectors[kept : kept + len(rows)] = rows
                if predicted is not None:
                    p = _predictions(out, output, stop - start)
                    predicted[kept : kept + len(rows)] = p[finite]
                kept += len(rows)
        finally:
            handle.remove()
    index = torch.nonzero(keep).flatten()
    dropped = torch.nonzero(~keep).flatten()
    if kept < n:  # a copy, so that the rows of the dropped items are not held
        vectors = vectors[:kept].clone()
        predicted = predicted[:kept].clone() if predicted is not None else None
    pooled = pool if isinstance(pool, str) else getattr(pool, "__name__", "callable")
    return Embedded(vectors, index, dropped, n, path, pooled, predicted)


def _layer_path(model: nn.Module, layer: Any) -> str | None:
    if layer is None:
        return None
    if isinstance(layer, nn.Module):
        path = next((p for p, m in model.named_modules() if m is layer), None)
        if path is None:
            raise ValueError(f"layer is a {type(layer).__name__} that is not part of this model")
        return path
    submodule(model, layer)  # a ValueError with the paths that come close
    return layer


def _allocate(n: int, dim: int, path: str) -> torch.Tensor:
    need = n * dim * 4
    why = (
        f"embedding {plural(n, 'item')} at layer {path!r} keeps {n:,} x {dim:,} float32 "
        f"values, {_size(need)}"
    )
    fix = "embed fewer items, choose a narrower layer (layer=...) or pool its output (pool=...)"
    if need > MAX_BYTES:
        raise ValueError(
            f"{why}: more than the bound of {_size(MAX_BYTES)} "
            f"(nbviz.projector.core.MAX_BYTES); {fix}"
        )
    try:
        return torch.empty(n, dim, dtype=torch.float32)
    except RuntimeError as e:  # the allocator refused: say so with the figure
        raise ValueError(f"{why}, and that memory is not available ({e}); {fix}") from None


def _size(nbytes: int) -> str:
    """``"1.50 GiB"``, ``"12.0 MiB"``, ``"3.2 KiB"``."""
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.2f} GiB"
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"
