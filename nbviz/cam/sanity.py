"""The model-randomisation sanity check (Adebayo et al., 2018): do a method's maps depend on
the model at all?

`randomization_check` re-initialises a copy of the model from the output down, one module
(or one block) more at each step, and compares each method's maps on the randomised copy
with its maps on the original model. A method that explains the model loses its maps
quickly (similarity near 0); one that mostly shows edges of the input keeps them.

>>> import torch, nbviz
>>> from nbviz.examples import SmallCNN
>>> _ = torch.manual_seed(0)
>>> model, x = SmallCNN(num_classes=3, width=4, depth=2), torch.rand(2, 3, 16, 16)
>>> check = nbviz.cam.randomization_check(model, x, methods=["gradcam"], cascade=["classifier.fc"])
>>> check.steps, check.spearman.shape
(['classifier.fc'], (1, 1, 2))
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import int_at_least, submodule
from .._outputs import Output
from .._state import preserved
from .core import INPUT_METHODS, METHODS, compute
from .faithfulness import check_model
from .inputs import model_inputs

SSIM_WINDOW = 7  # scikit-image's default: a 7 x 7 uniform window
INIT_STD = 0.02  # modules without reset_parameters(): their own parameters ~ N(0, 0.02^2)


@dataclass
class Randomization:
    """How much each method's maps change as the model is randomised from the top down.

    ``spearman`` and ``ssim`` are ``(M, S, N)``: for method ``methods[m]`` (maps of layer
    ``layers[m]``), after step s (every module up to ``steps[s]`` re-initialised, cascading
    from the output) and image i, the similarity of the maps to the original model's.
    Spearman: rank correlation of the two maps' pixels (ties get their mean rank; NaN where
    a map is constant). SSIM: structural similarity of the maps scaled to [0, 1] (7 x 7
    uniform window, data range 1, scikit-image's defaults). 1 means unchanged. ``classes``:
    the class explained for each image (the same on every model). ``maps``: with
    ``keep_maps``, each method's ``(S + 1, N, H, W)`` maps, the original's first.
    """

    methods: list[str]
    layers: list[str]
    steps: list[str]
    spearman: np.ndarray
    ssim: np.ndarray
    classes: np.ndarray
    seed: int
    maps: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def mean_spearman(self) -> np.ndarray:
        """``(M, S)`` mean over images (NaN images left out)."""
        return _nanmean(self.spearman)

    @property
    def mean_ssim(self) -> np.ndarray:
        """``(M, S)`` mean over images."""
        return _nanmean(self.ssim)

    def summary(self) -> str:
        """A text table: one row per step, Spearman / SSIM means per method."""
        heads = [f"{m} ({p})" for m, p in zip(self.methods, self.layers, strict=True)]
        widths = [max(len(h), 11) for h in heads]
        sw = max(len("randomised down to"), *(len(s) for s in self.steps))
        rows = [
            f"similarity to the original model's maps, Spearman / SSIM (1: unchanged), mean of "
            f"{self.spearman.shape[2]} images; cascading from the output, seed {self.seed}",
            f"{'randomised down to':<{sw}}  "
            + "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)),
        ]
        rho, ssim = self.mean_spearman, self.mean_ssim
        for s, step in enumerate(self.steps):
            cells = [f"{rho[m, s]:5.2f} / {ssim[m, s]:4.2f}".ljust(w) for m, w in enumerate(widths)]
            rows.append((f"{step:<{sw}}  " + "  ".join(cells)).rstrip())
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.summary()


def _nanmean(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # all-NaN rows stay NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=-1)


def randomization_check(
    model: nn.Module,
    images: Any,
    methods: str | Sequence[str] = ("gradcam", "saliency"),
    layer: str | None = None,
    targets: Any = None,
    *,
    cascade: Sequence[str] | None = None,
    seed: int = 0,
    keep_maps: bool = False,
    batch_size: int = 32,
    output: Output = None,
    forward_kwargs: dict[str, Any] | None = None,
) -> Randomization:
    """Adebayo et al.'s cascading model-randomisation test of ``methods`` on ``images``.

    A deep copy of the model (on its device) is re-initialised step by step, from the output
    down: by default one step per module that owns parameters, in the reverse of the order
    in which the forward first calls them (modules the forward never calls are left out);
    ``cascade``, a list of module paths, gives the steps instead (each re-initialises every
    module inside that path, and earlier steps stay randomised). A module is re-initialised
    by its own ``reset_parameters()`` (conv and linear layers: PyTorch's default init; batch
    norm: weight 1, bias 0 and fresh running statistics), or, without one, by drawing its own
    parameters from N(0, 0.02^2); step s draws after ``torch.manual_seed(seed + s)``, inside
    a forked RNG (the caller's random state is untouched).

    After each step, every method's maps (`compute`, at ``layer``: default, the deepest of
    compute's layers; the input methods' maps are of ``"input"``) for the classes the
    original model explains (``targets``: None for its predictions, an int, or one per
    image) are compared with the original model's (see `Randomization`). The model itself
    is never changed: weights, buffers, modes, ``requires_grad`` and ``.grad``.
    """
    check_model(model)
    methods = [methods] if isinstance(methods, str) else list(dict.fromkeys(methods or ()))
    wrong = [m for m in methods if m not in METHODS]
    if not methods or wrong:
        raise ValueError(
            f"methods must be some of {', '.join(map(repr, METHODS))}, got {wrong or methods}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r}")
    int_at_least("batch_size", batch_size)
    if layer is not None:
        submodule(model, layer)
    if cascade is not None:
        if isinstance(cascade, str) or not len(cascade):
            raise ValueError(f"cascade must be a non-empty list of module paths, got {cascade!r}")
        for path in cascade:
            submodule(model, path)
    run = {"batch_size": batch_size, "output": output, "forward_kwargs": forward_kwargs}
    originals, layers, classes = [], [], targets
    for m in methods:  # the first method fixes the classes; the others explain the same
        res = compute(model, images, None if m in INPUT_METHODS or layer is None else [layer],
                      classes, m, **run)  # fmt: skip
        classes = res.targets[:, 0]
        layers.append(res.layers[-1] if layer is None or m in INPUT_METHODS else layer)
        originals.append(res.maps(layers[-1]))
    randomised = copy_of(model, "the randomisation check runs on a copy of the model")
    steps = cascade_steps(randomised, images, cascade, forward_kwargs)
    spearman = np.full((len(methods), len(steps), len(classes)), np.nan)
    ssim = np.full_like(spearman, np.nan)
    kept = {m: [o] for m, o in zip(methods, originals, strict=True)}
    for s in randomise(randomised, steps, seed):
        for i, m in enumerate(methods):
            maps = compute(randomised, images, [layers[i]] if m not in INPUT_METHODS else None,
                           classes, m, **run).maps(layers[i])  # fmt: skip
            spearman[i, s] = spearman_rank(originals[i], maps).numpy()
            ssim[i, s] = structural_similarity(originals[i], maps).numpy()
            if keep_maps:
                kept[m].append(maps)
    return Randomization(
        methods=methods,
        layers=layers,
        steps=[name for name, _ in steps],
        spearman=spearman,
        ssim=ssim,
        classes=classes.numpy(),
        seed=int(seed),
        maps={m: torch.stack(v) for m, v in kept.items()} if keep_maps else None,
    )


# --- the cascade ---------------------------------------------------------------------------------


def copy_of(model: nn.Module, why: str) -> nn.Module:
    """A deep copy of ``model``, or a TypeError saying ``why`` one was needed."""
    try:
        return copy.deepcopy(model)
    except Exception as e:
        raise TypeError(
            f"{why}, and copy.deepcopy failed on this one: {type(e).__name__}: {e}"
        ) from e


def randomise(copy_: nn.Module, steps: list, seed: int) -> Iterator[int]:
    """Re-initialise ``copy_``'s ``steps`` (from `cascade_steps`) one at a time, step s after
    ``torch.manual_seed(seed + s)`` inside a forked RNG (the caller's random state is
    untouched); yields each step's index once it is done."""
    cuda = sorted({p.device.index or 0 for p in copy_.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=cuda):
        for s, (_, modules) in enumerate(steps):
            torch.manual_seed(seed + s)
            for module in modules:
                reinitialise(module)
            yield s


def cascade_steps(
    model: nn.Module, images: Any, cascade: Sequence[str] | None, forward_kwargs: Any
) -> list[tuple[str, list[nn.Module]]]:
    """The steps as (name, modules to re-initialise), output first: ``cascade``'s paths as
    given, or every module owning parameters, last called first."""
    order = call_order(model, images, forward_kwargs)
    owners = [m for m in order if next(m.parameters(recurse=False), None) is not None]
    path = {m: p for p, m in model.named_modules()}
    if cascade is None:
        if not owners:
            raise ValueError("the randomisation check needs a model with parameters, got none")
        return [(path[m] or "(model)", [m]) for m in reversed(owners)]
    steps = []
    for name in cascade:
        inside = set(submodule(model, name).modules())
        chosen = [m for m in reversed(owners) if m in inside]
        if not chosen:
            raise ValueError(f"cascade step {name!r} holds no parameters the forward uses")
        steps.append((name, chosen))
    return steps


def call_order(model: nn.Module, images: Any, forward_kwargs: Any) -> list[nn.Module]:
    """The model's modules in the order its forward first calls them (one image, no grad)."""
    seen: dict[nn.Module, None] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.setdefault(mod)) for m in model.modules()
    ]
    try:
        inputs = model_inputs(model, images, forward_kwargs)
        with preserved(model, training=False), torch.no_grad():
            inputs.run(model, inputs.x[:1], slice(0, 1))
    finally:
        for h in hooks:
            h.remove()
    return list(seen)


def reinitialise(module: nn.Module) -> None:
    """``module.reset_parameters()``, or its own parameters drawn from N(0, INIT_STD^2)."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            if p.is_floating_point():
                p.normal_(0.0, INIT_STD)


# --- similarities --------------------------------------------------------------------------------


def mean_ranks(x: torch.Tensor) -> torch.Tensor:
    """``(N, P)`` values -> their ranks 1..P in each row (float64), ties sharing their mean."""
    ranks = torch.empty(x.shape, dtype=torch.float64)
    for row, values in zip(ranks, x.detach().cpu().double(), strict=True):
        sorted_, order = values.sort(stable=True)
        _, group, counts = torch.unique_consecutive(
            sorted_, return_inverse=True, return_counts=True
        )
        mean = counts.cumsum(0) - (counts - 1) / 2  # the mean of ranks end-count+1 .. end
        row[order] = mean.double()[group]
    return ranks


def spearman_rank(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N,)`` Spearman rank correlations of maps ``a`` and ``b`` (N, ...) pixel by pixel:
    Pearson's correlation of the ranks (ties: mean ranks), as ``scipy.stats.spearmanr``; NaN
    where a map is constant.

    >>> spearman_rank(torch.tensor([[1.0, 2, 3]]), torch.tensor([[10.0, 20, 25]])).tolist()
    [1.0]
    """
    ra, rb = mean_ranks(a.flatten(1)), mean_ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    norm = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(norm > 0, (ra * rb).sum(1) / norm.clamp_min(1e-300), math.nan)


def structural_similarity(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0):
    """``(N,)`` mean SSIM (Wang et al., 2004) of maps ``a`` and ``b`` (N, H, W), as
    ``skimage.metrics.structural_similarity`` computes it by default: a 7 x 7 uniform
    window, sample covariances, K1 = 0.01, K2 = 0.03, averaged over the windows that lie
    inside the image.

    >>> m = torch.rand(1, 16, 16)
    >>> structural_similarity(m, m).tolist()
    [1.0]
    """
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs maps of at least 7 x 7 pixels, got {tuple(a.shape[-2:])}")
    x, y = a.detach().cpu().double()[:, None], b.detach().cpu().double()[:, None]

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, SSIM_WINDOW, stride=1)

    mx, my = mean(x), mean(y)
    unbiased = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    vx = unbiased * (mean(x * x) - mx * mx)
    vy = unbiased * (mean(y * y) - my * my)
    cov = unbiased * (mean(x * y) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cov + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))
