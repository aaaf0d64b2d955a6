"""Deletion and insertion curves: do a map's top pixels carry the model's decision?

Deletion (RISE: Petsiuk et al., 2018; pixel flipping: Bach et al., 2015) replaces the
pixels a map ranks first by a baseline, a growing fraction at a time, and follows the
model's softmax probability of the explained class: a faithful map makes it fall fast (a
small area under the curve). Insertion starts from the baseline and reveals the top pixels
first: a faithful map makes it rise fast (a large area). Every version of every image, for
every method and layer, goes through the model in large batches: ``N * (2 + 2 * R *
(steps - 1))`` images for R maps an image (the original and the baseline once per image,
shared by all curves), ``batch_size`` a forward.

>>> import torch, nbviz
>>> from nbviz.examples import SmallCNN
>>> model, x = SmallCNN(num_classes=3, width=4, depth=2).eval(), torch.rand(2, 3, 16, 16)
>>> res = nbviz.cam.compute(model, x, layers=["features.block2"])
>>> f = nbviz.cam.faithfulness(model, x, res, steps=4, baseline="zeros")
>>> f.deletion.shape, f.fractions.tolist()
((1, 2, 5), [0.0, 0.25, 0.5, 0.75, 1.0])
>>> bool((f.deletion[..., 0] == f.insertion[..., -1]).all())  # both the original's score
True
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import as_tensor, int_at_least
from .._outputs import Output
from .._state import preserved
from .core import CamResult, class_scores
from .inputs import KINDS, model_inputs

BASELINES = ("blur", "mean", "zeros")
SCORE = "softmax probability of the explained class"


@dataclass
class Faithfulness:
    """Deletion and insertion curves, one row per (method, layer).

    ``deletion`` and ``insertion`` are ``(R, N, steps + 1)``: for row r (method
    ``methods[r]`` at layer ``layers[r]``) and image i, the softmax probability of the
    explained class ``classes[i]`` once the fraction ``fractions[k]`` of pixels (ranked by
    the map, highest first) is replaced by the baseline (deletion) or revealed on it
    (insertion). ``baseline`` says which baseline, with its parameters.
    """

    methods: list[str]
    layers: list[str]
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    classes: np.ndarray
    baseline: str
    score: str = SCORE

    @property
    def deletion_auc(self) -> np.ndarray:
        """``(R, N)`` areas under the deletion curves (trapezoid rule on [0, 1]); lower is
        better."""
        return trapezoid(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> np.ndarray:
        """``(R, N)`` areas under the insertion curves; higher is better."""
        return trapezoid(self.insertion, self.fractions)

    def summary(self) -> str:
        """A text table of the mean areas over images, one row per method and layer."""
        mw = max(len("method"), *(len(m) for m in self.methods))
        lw = max(len("layer"), *(len(p) for p in self.layers))
        rows = [
            f"{self.score}; baseline: {self.baseline}; {len(self.fractions) - 1} steps, "
            f"{self.deletion.shape[1]} images",
            f"{'method':<{mw}}  {'layer':<{lw}}  deletion AUC (lower: better)  "
            "insertion AUC (higher: better)",
        ]
        d, i = self.deletion_auc.mean(axis=1), self.insertion_auc.mean(axis=1)
        for r, (m, p) in enumerate(zip(self.methods, self.layers, strict=True)):
            rows.append(f"{m:<{mw}}  {p:<{lw}}  {d[r]:28.3f}  {i[r]:30.3f}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.summary()


def trapezoid(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Areas under ``curves`` (last axis) over ``fractions``, by the trapezoid rule."""
    return ((curves[..., 1:] + curves[..., :-1]) / 2 * np.diff(fractions)).sum(axis=-1)


def faithfulness(
    model: nn.Module,
    images: Any,
    res: CamResult | Sequence[CamResult],
    *,
    target: int = 0,
    steps: int = 20,
    baseline: str | Any = "blur",
    sigma: float = 5.0,
    batch_size: int = 64,
    output: Output = None,
    forward_kwargs: dict[str, Any] | None = None,
) -> Faithfulness:
    """Deletion and insertion curves of ``res``'s maps (every layer; a list of results:
    every method) on ``images``, the images they explain, for target column ``target``.

    Pixels (every channel of a position at once) are ranked by the map upsampled to the
    image (`CamResult.maps`), highest first, ties in row-major order. At step k of
    ``steps``, the first ``k * H * W // steps`` of them are replaced by the baseline
    (deletion) or revealed on it (insertion). ``baseline``: ``"blur"`` (a Gaussian blur of
    each image, standard deviation ``sigma`` pixels, kernel truncated at 3 sigma, edges
    replicated), ``"mean"`` (each image's per-channel mean), ``"zeros"``, or a tensor that
    broadcasts to the images' shape. The score is the softmax probability of the explained
    class (RISE's), from the model in eval mode without gradients; the model's modes are put
    back, and nothing else about it changes.
    """
    check_model(model)
    results = [res] if isinstance(res, CamResult) else list(res)
    if not results or not all(isinstance(r, CamResult) for r in results):
        raise TypeError("res must be a CamResult (from nbviz.cam.compute) or a list of them")
    steps, batch_size = int_at_least("steps", steps), int_at_least("batch_size", batch_size)
    inputs = model_inputs(model, images, forward_kwargs)
    if len(inputs.spatial) != 2:
        kind, shape = KINDS[len(inputs.spatial)]
        raise ValueError(
            f"faithfulness perturbs images (N, C, H, W); these are {kind}s {shape} of shape "
            f"{tuple(inputs.x.shape)}"
        )
    classes = explained_classes(results, target, inputs.n, inputs.spatial)
    base, described = make_baseline(baseline, inputs.x, sigma)
    rows = [(r.method, layer) for r in results for layer in r.layers]
    # positions[r, i, p]: the place of pixel p in map (r, i)'s ranking, 0 = highest.
    positions = torch.stack(
        [ranking(r.maps(layer, target)) for r in results for layer in r.layers]
    ).to(inputs.x.device)
    counts = torch.tensor([k * positions.shape[-1] // steps for k in range(steps + 1)])
    jobs = schedule(inputs.n, len(rows), steps)
    with preserved(model, training=False), torch.no_grad():
        probs = torch.cat(
            [
                _probabilities(model, inputs, base, positions, counts, chunk, classes, output)
                for chunk in jobs.split(batch_size)
            ]
        )
    deletion, insertion = curves(probs, jobs, inputs.n, len(rows), steps)
    return Faithfulness(
        methods=[m for m, _ in rows],
        layers=[p for _, p in rows],
        fractions=np.arange(steps + 1) / steps,
        deletion=deletion,
        insertion=insertion,
        classes=classes.cpu().numpy(),
        baseline=described,
    )


# --- checks --------------------------------------------------------------------------------------


def check_model(model: Any) -> nn.Module:
    """``model`` if it is a module whose parameters hold values (it can run in eval mode);
    a TypeError or ValueError saying what is missing otherwise."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    empty = [
        name
        for name, p in model.named_parameters()
        if isinstance(p, nn.parameter.UninitializedParameter) or p.is_meta
    ]
    if empty:
        raise ValueError(
            "the model's parameters must hold values before it is run in eval mode: "
            f"{', '.join(empty[:3])}{' ...' if len(empty) > 3 else ''} are uninitialised (a "
            "lazy module not yet run, or the meta device); run it once or load its weights"
        )
    return model


def explained_classes(
    results: list[CamResult], target: int, n: int, size: tuple[int, ...]
) -> torch.Tensor:
    """The ``(N,)`` classes the results explain in column ``target``: the same for all of
    them, for ``n`` images of ``size``; a ValueError naming the mismatch otherwise."""
    for r in results:
        if r.targets.shape[0] != n or tuple(r.image_size) != tuple(size):
            raise ValueError(
                f"res must explain these {n} images of size {tuple(size)}, got maps of "
                f"{r.targets.shape[0]} inputs of size {tuple(r.image_size)} ({r.method})"
            )
    width = min(r.targets.shape[1] for r in results)
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise ValueError(f"target must be a target column (an int), got {target!r}")
    if not 0 <= target < width:
        raise ValueError(f"target must be a target column in [0, {width - 1}], got {target}")
    classes = results[0].targets[:, target]
    for r in results[1:]:
        if not torch.equal(r.targets[:, target], classes):
            raise ValueError(
                f"every result must explain the same classes in column {target}: "
                f"{results[0].method} explains {classes.tolist()}, {r.method} "
                f"{r.targets[:, target].tolist()}"
            )
    return classes.long()


def ranking(maps: torch.Tensor) -> torch.Tensor:
    """``(N, *size)`` maps -> ``(N, P)`` int32: each pixel's place when the map's pixels are
    sorted highest first, ties in row-major order (a stable sort)."""
    flat = maps.flatten(1)
    if not torch.isfinite(flat).all():
        raise ValueError("maps must be finite to rank their pixels, got NaN or infinity")
    order = flat.sort(dim=1, descending=True, stable=True).indices
    places = torch.arange(flat.shape[1], dtype=torch.int32).expand_as(order)
    return torch.empty_like(order, dtype=torch.int32).scatter_(1, order, places)


# --- baselines -----------------------------------------------------------------------------------


def make_baseline(baseline: Any, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, str]:
    """The ``(N, C, H, W)`` baseline for images ``x``, and its description."""
    if isinstance(baseline, str):
        if baseline == "blur":
            if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma > 0:
                raise ValueError(f"sigma must be a number of pixels > 0, got {sigma!r}")
            kernel = gaussian_kernel(float(sigma))
            return blur(x, kernel), (
                f"blur (Gaussian, sigma {float(sigma):g} px, {len(kernel)}x{len(kernel)} "
                "kernel, edges replicated)"
            )
        if baseline == "mean":
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x), "mean (per image and channel)"
        if baseline == "zeros":
            return torch.zeros_like(x), "zeros"
        raise ValueError(
            f"baseline must be one of {', '.join(map(repr, BASELINES))} or a tensor, got "
            f"{baseline!r}"
        )
    t = as_tensor(baseline, "baseline", f"one of {', '.join(map(repr, BASELINES))} or a tensor")
    try:
        fits = torch.broadcast_shapes(t.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"baseline must have the images' shape {tuple(x.shape)} or broadcast to it, got "
            f"{tuple(t.shape)}"
        )
    if t.is_complex() or t.dtype == torch.bool or not torch.isfinite(t.float()).all():
        raise ValueError(f"baseline must hold finite real values, got dtype {t.dtype}")
    return t.to(device=x.device, dtype=x.dtype).expand_as(x), f"tensor {tuple(t.shape)}"


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The 1-D Gaussian of standard deviation ``sigma``, truncated at 3 sigma (rounded to a
    whole pixel, as ``scipy.ndimage.gaussian_filter``), summing to 1."""
    radius = int(3 * sigma + 0.5)
    d = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(d**2) / (2 * sigma**2))
    return k / k.sum()


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` (N, C, H, W) convolved with ``kernel`` along H, then W; the
    edges replicated."""
    c, r = x.shape[1], len(kernel) // 2
    k = kernel.to(device=x.device, dtype=x.dtype)
    x = F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )


# --- the curves ----------------------------------------------------------------------------------

# A job is a row of (image, map row, step, inserted): one version of one image.
IMAGE, ROW, STEP, INSERTED = range(4)


def schedule(n: int, rows: int, steps: int) -> torch.Tensor:
    """The versions to run, ``(J, 4)``: each image unchanged and fully replaced once (the
    two ends of every curve), then steps 1 .. steps-1 of deletion and insertion per row."""
    i = torch.arange(n)
    ends = [torch.stack([i, 0 * i, k + 0 * i, 0 * i], 1) for k in (0, steps)]
    grid = torch.cartesian_prod(i, torch.arange(rows), torch.arange(1, steps), torch.arange(2))
    return torch.cat([*ends, grid.view(-1, 4)])


def _probabilities(model, inputs, base, positions, counts, jobs, classes, output):
    img = jobs[:, IMAGE].to(base.device)
    shown = counts[jobs[:, STEP]].to(positions.device)
    top = positions[jobs[:, ROW].to(positions.device), img] < shown[:, None]
    # Deletion shows the baseline on the top pixels, insertion everywhere else.
    replaced = top ^ jobs[:, INSERTED].bool().to(top.device)[:, None]
    x = torch.where(replaced.view(len(jobs), 1, *inputs.spatial), base[img], inputs.x[img])
    scores = class_scores(inputs.run(model, x, img), output, len(jobs))
    k = scores.shape[1]
    wanted = classes.to(scores.device)[img]
    if int(wanted.min()) < 0 or int(wanted.max()) >= k:
        raise ValueError(
            f"the explained classes must be outputs of this model (0 to {k - 1}), got "
            f"{sorted(set(classes.tolist()) - set(range(k)))}"
        )
    return scores.float().softmax(dim=1).gather(1, wanted[:, None])[:, 0].cpu()


def curves(probs, jobs, n, rows, steps) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves ``(R, N, steps + 1)`` from the jobs' probabilities."""
    out = torch.empty(2, rows, n, steps + 1, dtype=torch.float64)
    original, replaced = probs[:n].double(), probs[n : 2 * n].double()
    out[0, :, :, 0] = out[1, :, :, steps] = original
    out[0, :, :, steps] = out[1, :, :, 0] = replaced
    rest = jobs[2 * n :]
    out[rest[:, INSERTED], rest[:, ROW], rest[:, IMAGE], rest[:, STEP]] = probs[2 * n :].double()
    return out[0].numpy(), out[1].numpy()
