"""Time to capture a model's graph: nbviz.trace against torchview and torch.export.

Same models and inputs, one process, contenders alternated each round, median
of the rounds. torchview's `draw_graph` is timed for graph construction only
(`save_graph=False`; nothing is rendered). A plain forward pass under
`torch.no_grad()` is the yardstick.

    python -m benchmarks.graph_trace          # table for docs/benchmarks.md
    python -m benchmarks.graph_trace --quick  # smaller models, one round
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import nbviz
from tests.models import gpt, resnet50, vit


def models(quick: bool):
    g = torch.Generator().manual_seed(0)
    if quick:
        return {
            "ResNet-50-style (width 16, 64x64)": (
                resnet50(10, 16),
                torch.randn(1, 3, 64, 64, generator=g),
            ),
            "ViT-style (4 blocks)": (vit(), torch.randn(1, 3, 32, 32, generator=g)),
            "GPT-style (12 layers, d=64)": (
                gpt(512, 12, 4, 64, 64),
                torch.randint(0, 512, (1, 64), generator=g),
            ),
        }
    return {
        "ResNet-50 (224x224)": (resnet50(1000, 64), torch.randn(1, 3, 224, 224, generator=g)),
        "ViT-B/16 (224x224)": (
            vit(224, 16, 768, 12, 12, 3072, 1000),
            torch.randn(1, 3, 224, 224, generator=g),
        ),
        "GPT-2 small (12 layers, 256 tokens)": (
            gpt(50257, 12, 12, 768, 1024),
            torch.randint(0, 50257, (1, 256), generator=g),
        ),
    }


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def contenders(model, x):
    from torchview import draw_graph

    def forward():
        with torch.no_grad():
            model(x)

    def torchview_graph():
        draw_graph(model, input_data=x, depth=100, expand_nested=True, save_graph=False)

    def export():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.export.export(model, (x,))

    return {
        "forward": forward,
        "nbviz.trace": lambda: nbviz.trace(model, x),
        "nbviz.trace fake": lambda: nbviz.trace(model, x, mode="fake"),
        "nbviz.trace real": lambda: nbviz.trace(model, x, mode="real"),
        "torchview": torchview_graph,
        "torch.export": export,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 1 if args.quick else 5
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {rounds} alternated rounds\n"
    )
    print(
        "| model | forward | nbviz.trace (auto: meta tensors) | nbviz.trace (fake) | nbviz.trace (real) | torchview | torch.export | torchview / nbviz |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (model, x) in models(args.quick).items():
        model.eval()
        assert nbviz.trace(model, x).mode == "meta"
        fns = contenders(model, x)
        for fn in fns.values():  # warm-up (imports, first-call caches)
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                times[k].append(timed(fn))
        t = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"| {name} | {t['forward']:.2f} s | {t['nbviz.trace']:.2f} s | {t['nbviz.trace fake']:.2f} s | {t['nbviz.trace real']:.2f} s | "
            f"{t['torchview']:.2f} s | {t['torch.export']:.2f} s | **{t['torchview'] / t['nbviz.trace']:.1f}x** |"
        )
    with torch.device("meta"):
        big = gpt(50257, 12, 12, 768, 1024)
    ids = torch.zeros(1, 1024, dtype=torch.long, device="meta")
    nbviz.trace(big, ids)
    meta = statistics.median(timed(lambda: nbviz.trace(big, ids)) for _ in range(rounds))
    n = sum(p.numel() for p in big.parameters())
    print(
        f"\nGPT-2 small ({n / 1e6:.0f} M parameters) on the meta device, 1,024 tokens: nbviz.trace {meta:.2f} s"
    )


if __name__ == "__main__":
    main()
