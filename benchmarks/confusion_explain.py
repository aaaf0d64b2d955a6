"""Explaining a confusion matrix's kept examples after an epoch: what `cm.explain()` costs.

A 10-class matrix: scikit-learn's handwritten digits (1,797 images of 8x8, shipped with
scikit-learn, nothing downloaded), scaled to 32x32, and the demo's SmallCNN (one input
channel, ten classes) trained for a few epochs. The held-out images go through
``cm.update(..., inputs)`` with the model given, so the matrix keeps its examples (16 a
cell at most); then ``cm.explain()`` computes Grad-CAM at every default layer for each
kept example's true class and, for the wrong ones, its predicted class.

Yardsticks: a forward+backward of a batch of 32 with parameter gradients (a training
step without the optimizer), times the number of such batches per target (the goal:
``explain()`` costs no more than one forward+backward per 32 examples per target), and
the loop a user would otherwise write: Captum's ``LayerGradCam``, one call per layer,
target and batch of 32. Counts of forwards and backwards are taken with hooks. Memory:
the bytes the matrix keeps (the examples' inputs and their uint8 maps). One process,
contenders alternated, median of the rounds.

    python -m benchmarks.confusion_explain          # the table for docs/benchmarks.md
    python -m benchmarks.confusion_explain --quick
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import nbviz
from nbviz.cam.core import compute
from nbviz.examples import SmallCNN, train


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    return F.interpolate(x, size=32, mode="bilinear", align_corners=False), torch.tensor(d.target)


def setup(epochs: int):
    torch.manual_seed(0)
    x, y = digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    model = SmallCNN(num_classes=10, in_channels=1)
    train(model, x[:1200], y[:1200], epochs=epochs)
    model.eval()
    return model, x[1200:], y[1200:]


def filled_matrix(model, x, y) -> nbviz.ConfusionMatrix:
    cm = nbviz.ConfusionMatrix(num_classes=10, model=model, max_rate=None)
    with torch.no_grad():
        for i in range(0, len(y), 64):
            cm.update(model(x[i : i + 64]), y[i : i + 64], x[i : i + 64])
    return cm


def counted(model):
    counts = {"forward": 0, "backward": 0}
    real = torch.autograd.grad

    def grad(*a, **k):
        counts["backward"] += 1
        return real(*a, **k)

    def pre_hook(*_):
        counts["forward"] += 1

    return counts, grad, real, model.register_forward_pre_hook(pre_hook)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (2 if args.quick else 7)
    model, x, y = setup(2 if args.quick else 4)

    cm = filled_matrix(model, x, y)
    kept = cm._examples.inputs()  # noqa: SLF001 - what explain() will see
    cells = np.array([c for _, c, _, _ in kept])
    correct = int(np.sum(cells // 10 == cells % 10))
    wrong = len(cells) - correct
    per_target = -(-correct // 32) + 2 * -(-wrong // 32)  # batches of 32, per target
    inputs = torch.stack([k[2] for k in kept])
    layers = compute(model, inputs[:1]).layers
    print(f"kept examples: {len(cells)} ({correct} correct, {wrong} wrong) in "
          f"{len(np.unique(cells))} cells; {len(layers)} layers")  # fmt: skip

    # Counts: forwards and backwards of one explain().
    counts, grad, real, handle = counted(model)
    torch.autograd.grad = grad
    try:
        fresh = filled_matrix(model, x, y)
        counts["forward"] = 0
        fresh.explain()
    finally:
        torch.autograd.grad = real
        handle.remove()
    print(f"explain(): {counts['forward']} forwards, {counts['backward']} backwards "
          f"(batches of 32 per target: {per_target})")  # fmt: skip

    from captum.attr import LayerGradCam

    modules = dict(model.named_modules())

    def nbviz_explain():
        filled_matrix(model, x, y).explain()

    def fill_only():
        filled_matrix(model, x, y)

    def forward_backward():
        xb, yb = inputs[:32].clone(), torch.zeros(32, dtype=torch.long)
        for _ in range(per_target):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
        model.zero_grad(set_to_none=True)

    def captum_loop():
        true, pred = torch.tensor(cells // 10), torch.tensor(cells % 10)
        for name in layers:
            cam = LayerGradCam(model, modules[name])
            for rows, targets in (
                (np.flatnonzero(cells // 10 == cells % 10), (true,)),
                (np.flatnonzero(cells // 10 != cells % 10), (true, pred)),
            ):
                for i in range(0, len(rows), 32):
                    r = torch.as_tensor(rows[i : i + 32])
                    for t in targets:
                        cam.attribute(inputs[r], target=t[r].tolist())

    contenders = {
        "nbviz cm.explain()": nbviz_explain,
        "matrix filled (subtracted)": fill_only,
        "forward+backward x batches per target": forward_backward,
        "Captum LayerGradCam, looped": captum_loop,
    }
    times = {k: [] for k in contenders}
    for r in range(rounds):
        names = list(contenders)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    explain = med["nbviz cm.explain()"] - med["matrix filled (subtracted)"]
    print(f"\n| contender | time (median of {rounds}) |\n|---|---|")
    print(f"| nbviz `cm.explain()` (filling the matrix subtracted) | {explain * 1e3:.1f} ms |")
    for name in ("forward+backward x batches per target", "Captum LayerGradCam, looped"):
        print(f"| {name} | {med[name] * 1e3:.1f} ms |")
    print(f"\nexplain() / the yardstick: {explain / med['forward+backward x batches per target']:.2f}"
          f" (goal: at most 1); Captum looped / explain(): "
          f"{med['Captum LayerGradCam, looped'] / explain:.1f}x")  # fmt: skip

    cm.explain()
    maps = sum(m.nbytes for e in cm._maps.maps.values() for m in e.raw)  # noqa: SLF001
    kept_bytes = sum(k[2].numel() * k[2].element_size() for k in kept)
    print(f"memory kept: inputs {kept_bytes / 2**20:.2f} MiB, maps {maps / 2**20:.2f} MiB "
          f"({len(cells)} examples; the inputs' bound: 256 MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
