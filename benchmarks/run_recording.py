"""What recording a run to disk costs a training step, beside TensorBoard doing the same.

Three loops over the same steps, in alternated rounds (median of paired ratios):

- ``watch``: nbviz's recorder at its defaults, nothing written (the baseline: what
  ``nbviz.watch`` itself costs is measured in ``monitor_overhead``);
- ``watch + logdir``: the same, also recording to a run directory (``log_every=1``);
- ``TensorBoard``: no nbviz; a ``SummaryWriter`` logs what the run directory holds, as
  a user would write it: loss and accuracy every step, each layer's gradient norm every
  step (``add_scalar`` per layer), and histograms of the same layers' weights and
  gradients every ``hist_every`` steps (the run directory also has activations, update
  ratios, dead units and feature maps, which TensorBoard is not given here).

Also the bytes each appends per 10,000 steps (extrapolated from the pass; nbviz's file of
the probe's latest feature maps is replaced, not appended, and is reported on its own).

    python -m benchmarks.run_recording            # the table in docs/benchmarks.md
    python -m benchmarks.run_recording --quick
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nbviz
from nbviz.examples import SmallCNN
from nbviz.monitor.core import TrainingRecorder
from tests.models import resnet50


def loop(model, opt, x_all, y_all, batch, steps, mode, workdir: Path) -> tuple[float, int, int]:
    """Seconds for ``steps`` steps in ``mode``, the bytes appended, and the bytes of files
    replaced whole (nbviz's latest feature maps)."""
    rec = writer = None
    logdir = workdir / f"{mode}-{time.monotonic_ns()}"
    if mode.startswith("watch"):
        rec = TrainingRecorder(model, x_all[:8], logdir=logdir if mode == "watch+log" else None)
        layers = rec.hist_layers
    else:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir))
        probe = TrainingRecorder(model)  # only to pick the same histogram layers
        layers = probe.hist_layers
        probe.detach()
        named = [(n, [p for _, p in m.named_parameters()]) for n, m in model.named_modules()]
        owned = [(n, ps) for n, ps in named if ps and n]
        by_path = dict(model.named_modules())
    t0 = time.perf_counter()
    for s in range(steps):
        i = (s * batch) % (len(x_all) - batch)
        x, y = x_all[i : i + batch], y_all[i : i + batch]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        acc = (out.argmax(1) == y).float().mean()
        if rec is not None:
            rec.step(loss=loss, acc=acc)
        elif writer is not None:
            writer.add_scalar("loss", loss.item(), s)
            writer.add_scalar("acc", acc.item(), s)
            for name, ps in owned:
                norm = torch.stack([p.grad.norm() for p in ps if p.grad is not None]).norm()
                writer.add_scalar(f"grad_norm/{name}", norm.item(), s)
            if s % 100 == 0:
                for path in layers:
                    for p_name, p in by_path[path].named_parameters():
                        writer.add_histogram(f"{path}.{p_name}/weights", p.detach(), s)
                        if p.grad is not None:
                            writer.add_histogram(f"{path}.{p_name}/gradients", p.grad, s)
        opt.step()
    if rec is not None:
        rec.detach()  # the last write: part of the cost
    if writer is not None:
        writer.close()  # flushes the event file
    seconds = time.perf_counter() - t0
    written = (
        sum(f.stat().st_size for f in logdir.rglob("*") if f.is_file()) if logdir.exists() else 0
    )
    return seconds, written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    data = nbviz.datasets.shapes(n=1024, size=64, seed=0)
    cases = [
        (
            "SmallCNN (demo), shapes 64x64, batch 64",
            SmallCNN(num_classes=6),
            data.images,
            data.labels,
            64,
            200,
            5,
        ),
        (
            "ResNet-50-style, 96x96, batch 16",
            resnet50(10, 64),
            torch.randn(256, 3, 96, 96),
            torch.randint(0, 10, (256,)),
            16,
            100,
            3,
        ),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| loop | steps per pass | step with watch | recording to logdir, beyond watch | "
        "TensorBoard, beyond a bare step | appended per 10,000 steps: nbviz / TensorBoard |"
    )
    print("|---|---|---|---|---|---|")
    workdir = Path(tempfile.mkdtemp(prefix="nbviz-bench-"))
    try:
        for label, model, xs, ys, batch, steps, rounds in cases:
            if args.quick:
                steps, rounds = max(20, steps // 10), 1
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loop(model, opt, xs, ys, batch, 5, "bare", workdir)  # warm-up
            res: dict[str, list[tuple[float, int]]] = {
                m: [] for m in ("bare", "watch", "watch+log", "tb")
            }
            for r in range(rounds):
                order = ["bare", "watch", "watch+log", "tb"]
                for mode in order if r % 2 == 0 else order[::-1]:
                    res[mode].append(loop(model, opt, xs, ys, batch, steps, mode, workdir))
            med = statistics.median
            log_ratio = med(
                a[0] / b[0] for a, b in zip(res["watch+log"], res["watch"], strict=True)
            )
            tb_ratio = med(a[0] / b[0] for a, b in zip(res["tb"], res["bare"], strict=True))
            ours = med(w for _, w, _ in res["watch+log"]) * 10_000 / steps
            theirs = med(w for _, w, _ in res["tb"]) * 10_000 / steps
            latest = med(r for _, _, r in res["watch+log"])
            print(
                f"| {label} | {steps} | {1e3 * med(t for t, _, _ in res['watch']) / steps:.1f} ms | "
                f"{100 * (log_ratio - 1):+.2f} % | {100 * (tb_ratio - 1):+.1f} % | "
                f"{ours / 1e6:.1f} MB (+ {latest / 1e3:.0f} kB of latest feature maps) / "
                f"{theirs / 1e6:.1f} MB |",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
