"""What one logging step of nbviz.watch costs, against the recipes a user would write.

1. Histograms of every parameter of a ResNet-50-style network (its weights and its
   gradients): the recorder's histograms of all its layers (64 bins whose range doubles
   when needed) against TensorBoard's ``SummaryWriter.add_histogram`` for the same
   tensors (default bins, event file flushed).
2. Gradient-flow statistics of all layers for one step: the recorder's norm and max |g|
   per layer, per step: recorded on the device each step and read to the CPU once for 20
   steps (a push reads every pending step at once), against a Python loop of
   per-parameter ``.norm()`` calls read with ``.item()`` every step (the usual recipe),
   and the same loop taking max |g| too.

Same tensors, one process, contenders alternated, median over rounds.

    pip install -e ".[bench]"
    python -m benchmarks.monitor_stats            # the tables in docs/benchmarks.md
    python -m benchmarks.monitor_stats --quick
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from nbviz.examples import SmallCNN
from nbviz.monitor.core import TrainingRecorder, _abs_max
from tests.models import resnet50


def with_gradients(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    model.zero_grad()
    F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long)).backward()
    return model


def alternated(contenders: dict, rounds: int) -> dict[str, float]:
    """Median seconds per contender, the contenders taking turns round by round."""
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def histograms(rounds: int, device: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = with_gradients(resnet50(1000, 64).to(device), torch.randn(2, 3, 64, 64, device=device))
    params = [(n, p) for n, p in model.named_parameters()]
    layers = [p for p, m in model.named_modules() if any(True for _ in m.parameters(False))]
    recorder = TrainingRecorder(model, layers=layers, hist_every=1)
    step = iter(range(10**9))

    def nbviz_histograms():
        recorder._record_histograms(next(step))  # what a logging step runs for histograms

    with tempfile.TemporaryDirectory() as logdir:
        writer = SummaryWriter(logdir)

        def tensorboard():
            s = next(step)
            for name, p in params:
                writer.add_histogram(f"{name}/weights", p, s)
                writer.add_histogram(f"{name}/gradients", p.grad, s)
            writer.flush()

        def histc():
            for _, p in params:
                for t in (p.detach(), p.grad):
                    r = float(t.abs().max())
                    torch.histc(t, bins=64, min=-r, max=r)

        res = alternated(
            {"nbviz": nbviz_histograms, "tensorboard": tensorboard, "histc": histc}, rounds
        )
        writer.close()
    recorder.detach()
    n = sum(p.numel() for _, p in params)
    print(
        f"\nHistograms of all parameters, weights and gradients ({len(params)} tensors, "
        f"{n / 1e6:.1f} M values each; nbviz bins them per layer: {len(layers)} layers)\n"
    )
    print(
        "| nbviz (64 bins per layer) | TensorBoard `add_histogram` | `torch.histc` loop, 64 bins (yardstick) | TensorBoard / nbviz |"
    )
    print("|---|---|---|---|")
    print(
        f"| {res['nbviz']:.3f} s | {res['tensorboard']:.3f} s | {res['histc']:.3f} s | "
        f"**{res['tensorboard'] / res['nbviz']:.1f}x** |"
    )


READ_EVERY = 20  # steps recorded per read to the CPU in the gradient-flow contender


def flow_contenders(model: torch.nn.Module, recorder: TrainingRecorder) -> dict:
    """One step's gradient-flow statistics: nbviz's, and the recipes a user would write."""
    params = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    steps = iter(range(10**9))

    def nbviz_stats(with_max: bool):
        # What step() records on the device for READ_EVERY steps, then the one read to the CPU
        # that a push does for all of them (pushes come 2 a second: many more steps apart).
        for _ in range(READ_EVERY):
            grads, owners = recorder._gradients()
            norms = torch._foreach_norm(grads)
            maxima = _abs_max(grads) if with_max else None
            recorder._pending.append((next(steps), owners, norms, maxima))
        recorder._read_gradient_stats()
        return recorder.latest["grad_norm"]

    def nbviz_flow():  # norm and max |g| per layer (a sampled step)
        return nbviz_stats(with_max=True)

    def nbviz_norms():  # the other steps: the norm per layer only
        return nbviz_stats(with_max=False)

    def loop_norm():
        return {n: p.grad.norm().item() for n, p in params}

    def loop_both():
        return {n: (p.grad.norm().item(), p.grad.abs().max().item()) for n, p in params}

    return {"nbviz": nbviz_flow, "nbviz_norms": nbviz_norms, "norm": loop_norm, "both": loop_both}


def gradient_flow(rounds: int, device: str) -> None:
    print(f"\nGradient-flow statistics of all layers, one step ({device})\n")
    print(
        "| model | tensors | nbviz: norm per layer | nbviz: norm and max | loop: `.norm().item()` "
        "| loop: norm and max | loop (norm) / nbviz (norm) | loop (both) / nbviz (both) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    torch.manual_seed(0)
    cases = [
        ("ResNet-50-style (25.6 M parameters)", resnet50(1000, 64), torch.randn(2, 3, 64, 64)),
        ("SmallCNN (demo)", SmallCNN(num_classes=6), torch.rand(8, 3, 64, 64)),
    ]
    for label, model, x in cases:
        with_gradients(model.to(device), x.to(device))
        recorder = TrainingRecorder(model)
        res = alternated(flow_contenders(model, recorder), rounds)
        recorder.detach()
        for name in ("nbviz", "nbviz_norms"):
            res[name] /= READ_EVERY  # per step
        n = sum(1 for p in model.parameters() if p.grad is not None)
        ms = {k: v * 1e3 for k, v in res.items()}
        print(
            f"| {label} | {n} | {ms['nbviz_norms']:.2f} ms | {ms['nbviz']:.2f} ms | "
            f"{ms['norm']:.2f} ms | {ms['both']:.2f} ms | "
            f"**{res['norm'] / res['nbviz_norms']:.1f}x** | {res['both'] / res['nbviz']:.1f}x |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu or cuda (every contender reads its "
        "results to the host, which waits for the device)",
    )
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}")
    histograms(3 if args.quick else 7, args.device)
    gradient_flow(5 if args.quick else 30, args.device)


if __name__ == "__main__":
    main()
