"""Deletion + insertion curves: nbviz.cam.faithfulness against Quantus's PixelFlipping.

A ResNet-18 (tests/models.py, 11.7 M parameters; random weights, its classifier scaled so
that the logits spread), 16 224x224 images of nbviz.datasets.shapes, Grad-CAM maps
of 8 layers from compute's default list (spread from shallow to deep), the predicted
class, a Gaussian-blur baseline (sigma 5 px), ``--steps`` steps. nbviz runs every version of
every image for all 8 layers in batches of 64, and shares the two ends of the curves (the
image and its baseline) between layers and between deletion and insertion. Quantus 0.6.0
has no insertion metric and no blur baseline: deletion is its ``PixelFlipping`` with a
perturbation function that copies the baseline's values; insertion is the same metric
started from the baseline, copying the image's values; one call per layer and curve, its
batch the 16 images. Both sides get the same maps; Quantus gets them as each pixel's place
in nbviz's ranking (negated), because its unstable ``argsort`` would order tied pixels
(Grad-CAM's zeros) differently, and it steps over C*H*W values while requiring the step
to divide H*W (impossible with 3 channels at 224x224), so it sees the images as
(N, 1, 3*H, W), reshaped back by a wrapper, with the map tiled over the three planes.

A floor is printed too: the time of the same number of images through the model alone.
Both contenders are bound by the forwards: nbviz runs 4-5x fewer forward calls, but only
about 10% fewer images (the shared ends), so equal results cannot come 5x faster here.

Checked after timing: Quantus's curves equal nbviz's from the first step on (Quantus
does not evaluate the unperturbed image); the max difference is printed. Forwards are
counted with a forward pre-hook on the model (calls and images). The peer the issue names
besides Quantus, Captum's ``infidelity``, measures something else (the error of
attributions x perturbations against the change in output), so it is not a contender::

    pip install quantus==0.6.0

    python -m benchmarks.cam_faithfulness          # ResNet-18 at 224 px, 8 steps (minutes)
    python -m benchmarks.cam_faithfulness --quick  # narrow ResNet-18, 64 px, 4 steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

import nbviz
from nbviz.cam.faithfulness import blur, gaussian_kernel, ranking
from nbviz.datasets import shapes
from tests.models import resnet18

SIGMA = 5.0
IMAGES = 16
LAYERS = 8


class Planes(nn.Module):
    """The model on images given as (N, 1, C*H, W): Quantus's features_in_step must divide
    the product of the dimensions after the second, which H*W cannot for whole-pixel steps
    with 3 channels."""

    def __init__(self, model: nn.Module, channels: int):
        super().__init__()
        self.model, self.channels = model, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, ch, w = x.shape
        return self.model(x.reshape(n, self.channels, ch // self.channels, w))


class Counter:
    """Forward calls and images through a model, from a forward pre-hook."""

    def __init__(self, model: nn.Module):
        self.calls = self.images = 0
        model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.calls += 1
        self.images += len(args[0])

    def take(self) -> tuple[int, int]:
        out, (self.calls, self.images) = (self.calls, self.images), (0, 0)
        return out


def quantus_curves(model, x, res, steps):
    """Deletion and insertion curves (L, N, steps) from Quantus's PixelFlipping."""
    import quantus

    n, c, h, w = x.shape
    base = blur(x, gaussian_kernel(SIGMA))
    planes = Planes(model, c).eval()

    def metric(fill: np.ndarray) -> quantus.PixelFlipping:
        def replace_by(arr, indices, **kwargs):
            out = arr.copy()
            out[np.arange(n)[:, None], indices] = fill[np.arange(n)[:, None], indices]
            return out

        return quantus.PixelFlipping(features_in_step=c * h * w // steps, normalise=False,
                                     perturb_func=replace_by, disable_warnings=True)  # fmt: skip

    deleting, inserting = metric(base.reshape(n, -1).numpy()), metric(x.reshape(n, -1).numpy())
    y = res.targets[:, 0].numpy()
    deletion, insertion = [], []
    for layer in res.layers:
        # each pixel's place in nbviz's ranking, negated: the same order, no ties
        order = -ranking(res.maps(layer)).view(n, 1, h, w).float()
        a = order.repeat(1, 1, c, 1).numpy()  # (N, 1, C*H, W), like the images
        for curves, m, start in ((deletion, deleting, x), (insertion, inserting, base)):
            curves.append(m(model=planes, x_batch=start.reshape(n, 1, c * h, w).numpy(),
                            y_batch=y, a_batch=a, channel_first=True, softmax=True,
                            device="cpu", batch_size=n))  # fmt: skip
    return np.asarray(deletion), np.asarray(insertion)


def setup(quick: bool):
    torch.manual_seed(0)
    if quick:
        name, model, size = "ResNet-18-style (width 16), 64x64", resnet18(1000, 16), 64
    else:
        name, model, size = "ResNet-18, 224x224", resnet18(1000, 64), 224
    x = shapes(IMAGES, size=size, seed=0).images
    model.eval()
    # Random weights give near-uniform probabilities (about 1/1000) and flat curves: the
    # classifier is scaled so that the logits spread with a standard deviation of 4.
    with torch.no_grad():
        spread = float(model(x).std(dim=1).mean())
        model.fc.weight.mul_(4 / spread)
        model.fc.bias.mul_(4 / spread)
    return name, model, x


def forward_seconds(model: nn.Module, x: torch.Tensor, batches: int = 3) -> float:
    """Seconds a forward takes per image, in batches of 64 under no_grad (after a warm-up)."""
    batch = x.repeat(4, 1, 1, 1)[:64]
    with torch.no_grad():
        model(batch)
        t0 = time.perf_counter()
        for _ in range(batches):
            model(batch)
    return (time.perf_counter() - t0) / (batches * len(batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="steps a curve (default 8; quick 4)")
    ap.add_argument("--rounds", type=int, default=1, help="alternated timing rounds")
    args = ap.parse_args()
    steps = args.steps or (4 if args.quick else 8)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min)"
    )
    try:
        import quantus
    except ImportError as e:
        sys.exit(f"Quantus is needed: pip install quantus==0.6.0 ({e})")
    name, model, x = setup(args.quick)
    if (x.shape[2] * x.shape[3]) % steps:
        sys.exit(f"--steps must divide H*W = {x.shape[2] * x.shape[3]} (whole pixels a step)")
    every = nbviz.cam.compute(model, x[:1]).layers
    picks = np.linspace(0, len(every) - 1, LAYERS).round().astype(int)
    layers = [every[i] for i in picks]
    res = nbviz.cam.compute(model, x, layers=layers)  # shared by both sides, not timed
    counter = Counter(model)
    fns = {
        "nbviz": lambda: nbviz.cam.faithfulness(model, x, res, steps=steps, sigma=SIGMA),
        "Quantus": lambda: quantus_curves(model, x, res, steps),
    }
    times: dict[str, list[float]] = {k: [] for k in fns}
    forwards, out = {}, {}
    for r in range(args.rounds):
        for k in list(fns)[r % 2 :] + list(fns)[: r % 2]:
            t0 = time.perf_counter()
            out[k] = fns[k]()
            times[k].append(time.perf_counter() - t0)
            forwards[k] = counter.take()
    ours, (deletion, insertion) = out["nbviz"], out["Quantus"]
    diff = max(
        np.abs(ours.deletion[..., 1:] - deletion).max(),
        np.abs(ours.insertion[..., 1:] - insertion).max(),
    )
    print(
        f"check: Quantus {quantus.__version__}'s curves equal nbviz's at all {LAYERS} layers, "
        f"{IMAGES} images, steps 1..{steps}: max |difference| = {diff:.1e} (probabilities)"
    )
    if diff > 1e-4:
        sys.exit("FAIL: nbviz and Quantus disagree")
    med = {k: statistics.median(v) for k, v in times.items()}
    per_image = forward_seconds(model, x)
    print(
        f"\n{name}; {IMAGES} images, {LAYERS} layers ({', '.join(layers)}), Grad-CAM maps, "
        f"blur baseline (sigma {SIGMA:g} px), {steps} steps; median of {args.rounds} "
        "round(s)\n"
    )
    print("| contender | wall time | forward calls | images through the model |")
    print("|---|---|---|---|")
    for k in fns:
        calls, imgs = forwards[k]
        print(f"| {k} | {med[k]:.1f} s | {calls} | {imgs} |")
    print(
        "\nfloor: the model's own forwards (no_grad, batches of 64, "
        f"{per_image * 1000:.1f} ms an image) take "
        + ", ".join(f"{per_image * forwards[k][1]:.1f} s for {k}'s images" for k in fns)
    )
    print(
        f"\nQuantus / nbviz: **{med['Quantus'] / med['nbviz']:.2f}x** wall time, "
        f"{forwards['Quantus'][0] / forwards['nbviz'][0]:.1f}x forward calls, "
        f"{forwards['Quantus'][1] / forwards['nbviz'][1]:.2f}x images; AUCs (nbviz, mean): "
        f"deletion {ours.deletion_auc.mean():.3f}, insertion {ours.insertion_auc.mean():.3f}"
    )
    print("goal: >= 5x faster at equal results")


if __name__ == "__main__":
    main()
