"""Cost of one confusion-matrix update from logits, nbviz against its peers.

Same batches, one process, runs alternated so that drift hits all alike.
Input validation is on for every contender (torchmetrics' default).

    python -m benchmarks.confusion_update            # table for docs/benchmarks.md
    python -m benchmarks.confusion_update --quick    # a fast smoke run
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import nbviz


def contenders(K: int):
    from sklearn.metrics import confusion_matrix
    from torchmetrics.classification import MulticlassConfusionMatrix

    widget = nbviz.ConfusionMatrix(num_classes=K, max_rate=10)
    core = nbviz.confusion.ConfusionCounter(K)
    tm = MulticlassConfusionMatrix(num_classes=K, validate_args=True)
    labels = np.arange(K)
    sk_total = np.zeros((K, K), np.int64)

    def sklearn_update(logits, y):
        nonlocal sk_total
        # what a user without a metrics library writes: recompute per batch and add
        sk_total += confusion_matrix(y.numpy(), logits.argmax(1).numpy(), labels=labels)

    return {
        "nbviz widget": lambda x, y: widget.update(x, y),
        "nbviz core": lambda x, y: core.update(x, y),
        "torchmetrics": lambda x, y: tm.update(x, y),
        "sklearn": sklearn_update,
    }


def time_per_call(fn, batches, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        for x, y in batches:
            fn(x, y)
    return (time.perf_counter() - t0) / (reps * len(batches))


def run(K: int, batch: int, rounds: int, seconds: float) -> dict[str, float]:
    g = torch.Generator().manual_seed(K)
    batches = [
        (torch.randn(batch, K, generator=g), torch.randint(0, K, (batch,), generator=g))
        for _ in range(8)
    ]
    fns = contenders(K)
    # Each sample runs for about `seconds`, so the widget's throttled refreshes
    # (10 a second) weigh in at their steady-state share, as in a training loop.
    reps = {}
    for name, fn in fns.items():
        per_call = time_per_call(fn, batches, 2)
        reps[name] = max(1, round(seconds / (per_call * len(batches))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):  # alternate contenders each round
        for name, fn in fns.items():
            samples[name].append(time_per_call(fn, batches, reps[name]))
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    rounds, seconds = (3, 0.1) if args.quick else (11, 0.5)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(
        f"batch {args.batch}, logits, CPU; median of {rounds} alternated rounds of ~{seconds} s\n"
    )
    print(
        "| K | nbviz widget | nbviz core | torchmetrics | sklearn | torchmetrics / nbviz | sklearn / nbviz |"
    )
    print("|---|---|---|---|---|---|---|")
    for K in (10, 1000):
        r = run(K, args.batch, rounds, seconds)
        us = {k: v * 1e6 for k, v in r.items()}
        w = us["nbviz widget"]
        print(
            f"| {K} | {w:.1f} us | {us['nbviz core']:.1f} us | {us['torchmetrics']:.1f} us | "
            f"{us['sklearn']:.1f} us | {us['torchmetrics'] / w:.1f}x | {us['sklearn'] / w:.1f}x |"
        )


if __name__ == "__main__":
    main()
