"""Check (and time) the confusion-matrix core on a CUDA device.

Counts from CUDA tensors must equal the CPU counts, stay on the GPU, and bad
input must still be caught. Timings compare against torchmetrics on the same
device. Runs where only torch (+ torchmetrics) is installed: the core is loaded
straight from its file, without the widget layer.

    python -m benchmarks.confusion_cuda
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def _confusion_core():
    """nbviz.confusion.core; where nbviz's widget stack is missing (a bare GPU machine),
    without running nbviz/__init__: its packages stand in as plain namespaces."""
    try:
        return importlib.import_module("nbviz.confusion.core")
    except ImportError:
        root = Path(__file__).resolve().parents[1] / "nbviz"
        for name in [n for n in sys.modules if n == "nbviz" or n.startswith("nbviz.")]:
            del sys.modules[name]  # a half-imported nbviz
        for name, path in (("nbviz", root), ("nbviz.confusion", root / "confusion")):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
        return importlib.import_module("nbviz.confusion.core")


core = _confusion_core()


def check(dev: str) -> None:
    for K in (2, 10, 1000):
        g = torch.Generator().manual_seed(K)
        cpu, gpu = core.ConfusionCounter(K), core.ConfusionCounter(K)
        for n in (1, 256, 1000):
            x, y = torch.randn(n, K, generator=g), torch.randint(0, K, (n,), generator=g)
            cpu.update(x, y)
            gpu.update(x.to(dev), y.to(dev))
            gpu.update(x.to(dev).half(), y.to(dev))  # half precision path
            cpu.update(x.half(), y)
        assert gpu._flat.device.type == "cuda"
        np.testing.assert_array_equal(cpu.compute(), gpu.compute())
        i1, v1 = cpu.sparse()
        i2, v2 = gpu.sparse()
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(v1, v2)
    c = core.ConfusionCounter(3)
    bad = [
        (torch.randn(4, 3, device=dev), torch.tensor([0, 1, 2, 3], device=dev), "got 3"),
        (
            torch.tensor([[0.0, float("nan"), 1.0]], device=dev),
            torch.tensor([0], device=dev),
            "NaN",
        ),
        (torch.tensor([0, 5], device=dev), torch.tensor([0, 1], device=dev), "got 5"),
    ]
    for x, y, msg in bad:
        try:
            c.update(x, y)
        except ValueError as e:
            assert msg in str(e), e
        else:
            raise AssertionError(f"no error for {msg}")
    assert c.samples == 0
    print("CUDA checks passed: counts equal the CPU's, stay on the GPU, bad input is caught")


def timed(fn, batches, reps=20):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        for x, y in batches:
            fn(x, y)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (reps * len(batches))


def bench(dev: str) -> None:
    from torchmetrics.classification import MulticlassConfusionMatrix

    print("| K | nbviz core (CUDA) | torchmetrics (CUDA) | ratio |")
    print("|---|---|---|---|")
    for K in (10, 1000):
        g = torch.Generator().manual_seed(0)
        batches = [
            (
                torch.randn(256, K, generator=g).to(dev),
                torch.randint(0, K, (256,), generator=g).to(dev),
            )
            for _ in range(8)
        ]
        ours = core.ConfusionCounter(K)
        tm = MulticlassConfusionMatrix(num_classes=K).to(dev)
        a, b = [], []
        for _ in range(7):
            a.append(timed(ours.update, batches))
            b.append(timed(tm.update, batches))
        a, b = statistics.median(a), statistics.median(b)
        print(f"| {K} | {a * 1e6:.1f} us | {b * 1e6:.1f} us | {b / a:.1f}x |")


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    print(torch.__version__, torch.cuda.get_device_name(0))
    check("cuda")
    bench("cuda")
