"""Time to capture a model's graph: nbviz.trace against torchview, small to large models.

Same models and inputs, one process, contenders alternated each round, median of the
rounds. torchview's `draw_graph` is timed for graph construction only
(`save_graph=False`; nothing is rendered). A plain forward pass under `torch.no_grad()`
is the yardstick. nbviz's default (``mode="auto"``) is timed as a notebook calls it, and
the pass it ran is shown ("real" or "meta"), with both passes forced for reference.
Auto's choice here is made with torch's meta code imported (as after a first meta
trace in a session); the cold table starts a fresh Python process per run instead:
``import torch, nbviz`` and the model built, then the first call timed (wall clock).

    python -m benchmarks.graph_trace --threads 1 --clock cpu   # docs/benchmarks.md's table
    python -m benchmarks.graph_trace --quick    # small and medium models, fewer rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import nbviz
from nbviz.examples import SmallCNN
from tests.models import gpt, mobilenet_v2, resnet18, resnet50, vit

REPO = Path(__file__).resolve().parents[1]


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )  # fmt: skip


def hf_gpt2(layers: int, dim: int, heads: int, vocab: int = 50257, ctx: int = 1024):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=layers, n_embd=dim, n_head=heads, vocab_size=vocab,
                        n_positions=ctx)  # fmt: skip
    return GPT2LMHeadModel(config)


def hf_bert(layers: int, dim: int, heads: int, vocab: int = 30522):
    from transformers import BertConfig, BertModel

    config = BertConfig(num_hidden_layers=layers, hidden_size=dim, num_attention_heads=heads,
                        intermediate_size=4 * dim, vocab_size=vocab)  # fmt: skip
    return BertModel(config)


def tokens(vocab: int, n: int, pad: int = 0) -> dict:
    """Token ids and an attention mask with ``pad`` padded positions at the end."""
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(1, n, dtype=torch.long)
    if pad:
        mask[0, n - pad :] = 0
    return {"input_ids": torch.randint(0, vocab, (1, n), generator=g), "attention_mask": mask}


def image(size: int, channels: int = 3) -> torch.Tensor:
    return torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))


# name -> (size class, build model, build input: a tensor or a dict of keyword inputs)
MODELS = {
    "MLP 784-256-128-10": ("small", mlp, lambda: image(28, 1)),
    "SmallCNN (64x64)": ("small", SmallCNN, lambda: image(64)),
    "GPT-2 (transformers, 2 layers, d=64), 32 tokens + mask": (
        "small",
        lambda: hf_gpt2(2, 64, 2, vocab=1000, ctx=64),
        lambda: tokens(1000, 32, pad=4),
    ),
    "ResNet-18 (224x224)": ("medium", lambda: resnet18(1000, 64), lambda: image(224)),
    "MobileNetV2 (224x224)": ("medium", lambda: mobilenet_v2(1000, 1.0), lambda: image(224)),
    "BERT (transformers, 4 layers, d=256), 128 tokens + mask": (
        "medium",
        lambda: hf_bert(4, 256, 4),
        lambda: tokens(30522, 128, pad=16),
    ),
    "ResNet-50 (224x224)": ("large", lambda: resnet50(1000, 64), lambda: image(224)),
    "ViT-B/16 (224x224)": (
        "large",
        lambda: vit(224, 16, 768, 12, 12, 3072, 1000),
        lambda: image(224),
    ),
    "GPT-2 small (transformers), 256 tokens + mask": (
        "large",
        lambda: hf_gpt2(12, 768, 12),
        lambda: tokens(50257, 256, pad=32),
    ),
    "GPT-2 medium (nanoGPT layout, 355 M), 1,024 tokens": (
        "large",
        lambda: gpt(50257, 24, 16, 1024, 1024),
        lambda: torch.randint(0, 50257, (1, 1024), generator=torch.Generator().manual_seed(0)),
    ),
}
QUICK = [name for name, (size, _, _) in MODELS.items() if size != "large"]


def call(fn, model, x):
    return fn(model, **x) if isinstance(x, dict) else fn(model, x)


def contenders(model, x) -> dict:
    from torchview import draw_graph

    def forward():
        with torch.no_grad():
            call(lambda m, *a, **k: m(*a, **k), model, x)

    def torchview_graph():
        draw_graph(model, input_data=x, depth=100, expand_nested=True, save_graph=False)

    return {
        "forward": forward,
        "auto": lambda: call(nbviz.trace, model, x),
        "real": lambda: call(lambda m, *a, **k: nbviz.trace(m, *a, mode="real", **k), model, x),
        "meta": lambda: call(lambda m, *a, **k: nbviz.trace(m, *a, mode="meta", **k), model, x),
        "torchview": torchview_graph,
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = time.perf_counter


def timed(fn) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 0.1 else f"{t:.2f} s"


COLD = """
import sys, time, torch
torch.set_num_threads({threads})
clock = time.perf_counter
import nbviz
from benchmarks.graph_trace import MODELS, call
_, build, inputs = MODELS[{name!r}]
torch.manual_seed(0)
model, x = build().eval(), inputs()
what = {what!r}
t0 = clock()
if what == "nbviz":
    graph = call(nbviz.trace, model, x)
    mode = graph.mode
elif what == "torchview":
    from torchview import draw_graph
    draw_graph(model, input_data=x, depth=100, expand_nested=True, save_graph=False)
    mode = "-"
else:
    with torch.no_grad():
        call(lambda m, *a, **k: m(*a, **k), model, x)
    mode = "-"
print(clock() - t0, mode)
"""


def cold(name: str, what: str, runs: int, threads: int) -> tuple[float, str]:
    """Median wall time of the first call in a fresh process (import and model build
    excluded): what a notebook user waits for."""
    times, modes = [], set()
    for _ in range(runs):
        code = COLD.format(name=name, what=what, threads=threads)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        t, mode = out.stdout.split()[-2:]
        times.append(float(t))
        modes.add(mode)
    return statistics.median(times), "/".join(sorted(modes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small and medium models, 3 rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="cpu: the working thread's CPU time (with --threads 1, the time on a quiet "
        "machine; steadier than wall time on a busy one)",
    )
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    rounds = args.rounds or (3 if args.quick else 7)
    large_rounds = args.rounds or 3
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    names = QUICK if args.quick else list(MODELS)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{args.clock} time; median of {rounds} alternated rounds ({large_rounds} for large "
        "models)\n"
    )
    print(
        "| model | size | params | forward | nbviz.trace (auto) | auto ran | nbviz real | "
        "nbviz meta | torchview | torchview / nbviz |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        size, build, inputs = MODELS[name]
        torch.manual_seed(0)
        model, x = build().eval(), inputs()
        fns = contenders(model, x)
        for fn in fns.values():  # warm-up: first-call caches, torch's meta code imported
            fn()
        mode = call(nbviz.trace, model, x).mode
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(large_rounds if size == "large" else rounds):
            for k, fn in fns.items():
                times[k].append(timed(fn))
        t = {k: statistics.median(v) for k, v in times.items()}
        params = sum(p.numel() for p in model.parameters())
        print(
            f"| {name} | {size} | {params / 1e6:.2f} M | {seconds(t['forward'])} | "
            f"{seconds(t['auto'])} | {mode} | {seconds(t['real'])} | {seconds(t['meta'])} | "
            f"{seconds(t['torchview'])} | **{t['torchview'] / t['auto']:.1f}x** |",
            flush=True,
        )
        del model, fns
    with torch.device("meta"):
        on_meta = gpt(50257, 12, 12, 768, 1024)
    ids = torch.zeros(1, 1024, dtype=torch.long)
    nbviz.trace(on_meta, ids)
    t_meta = statistics.median(timed(lambda: nbviz.trace(on_meta, ids)) for _ in range(rounds))
    n = sum(p.numel() for p in on_meta.parameters())
    print(
        f"\nGPT-2 small ({n / 1e6:.0f} M parameters) built on the meta device (no weights to "
        f"run), 1,024 tokens: nbviz.trace {seconds(t_meta)}"
    )
    print(f"\nFirst call in a fresh process (wall time, median of {args.cold_runs} processes):\n")
    print("| model | forward | nbviz.trace (auto) | auto ran | torchview |")
    print("|---|---|---|---|---|")
    for name in ["SmallCNN (64x64)", "ResNet-50 (224x224)"]:
        fwd, _ = cold(name, "forward", args.cold_runs, args.threads)
        nb, mode = cold(name, "nbviz", args.cold_runs, args.threads)
        tv, _ = cold(name, "torchview", args.cold_runs, args.threads)
        print(f"| {name} | {seconds(fwd)} | {seconds(nb)} | {mode} | {seconds(tv)} |", flush=True)


if __name__ == "__main__":
    main()
