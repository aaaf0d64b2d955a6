"""What recording a run to disk costs a training step, beside TensorBoard doing the same.

Four loops over the same steps, in alternated rounds (medians):

- ``bare``: no logging at all;
- ``watch``: nbviz's recorder at its defaults, nothing written (the baseline: what
  ``nbviz.watch`` itself costs is measured in ``monitor_overhead``);
- ``watch + logdir``: the same, also recording to a run directory (``log_every=1``);
- ``TensorBoard``: no nbviz; a ``SummaryWriter`` logs what the run directory holds, as
  a user would write it: loss and accuracy every step, each layer's gradient norm every
  step (``add_scalar`` per layer), and histograms of the same layers' weights and
  gradients every ``hist_every`` steps (the run directory also has activations, update
  ratios, dead units and feature maps, which TensorBoard is not given here).

A pass's wall time varies by 10-20 % on this shared machine, far more than a 1 % goal, so
each loop reports the seconds spent inside its logging calls on the training thread (the
cost a step sees; nbviz's recording is the difference between the two ``watch`` loops)
and the process's CPU time over every thread (nbviz's writer thread included). Also the
bytes each appends per 10,000 steps (extrapolated from the pass; nbviz's file of
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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import nbviz
from nbviz.examples import SmallCNN
from nbviz.monitor.core import TrainingRecorder
from tests.models import resnet50


def loop(model, opt, x_all, y_all, batch, steps, mode, workdir: Path) -> Pass:
    """Seconds for ``steps`` steps in ``mode``, the bytes appended, and the bytes of files
    replaced whole (nbviz's latest feature maps)."""
    rec = writer = None
    logdir = workdir / f"{mode}-{time.monotonic_ns()}"
    if mode.startswith("watch"):
        rec = TrainingRecorder(model, x_all[:8], logdir=logdir if mode == "watch+log" else None)
    elif mode == "tb":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir))
        probe = TrainingRecorder(model)  # only to pick the layers watch takes histograms of
        layers = probe.hist_layers
        probe.detach()
        named = [(n, [p for _, p in m.named_parameters()]) for n, m in model.named_modules()]
        owned = [(n, ps) for n, ps in named if ps and n]
        by_path = dict(model.named_modules())
    t0, c0 = time.perf_counter(), time.process_time()
    inside = 0.0  # seconds in the logging calls, on the training thread
    for s in range(steps):
        i = (s * batch) % (len(x_all) - batch)
        x, y = x_all[i : i + batch], y_all[i : i + batch]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        acc = (out.argmax(1) == y).float().mean()
        t1 = time.perf_counter()
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
        inside += time.perf_counter() - t1
        opt.step()
    t1 = time.perf_counter()
    if rec is not None:
        rec.detach()  # the last write: part of the cost
    if writer is not None:
        writer.close()  # flushes the event file
    inside += time.perf_counter() - t1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = [f for f in logdir.rglob("*") if f.is_file()] if logdir.exists() else []
    replaced = sum(f.stat().st_size for f in files if f.suffix == ".nbrec")
    return Pass(seconds, inside, cpu, sum(f.stat().st_size for f in files) - replaced, replaced)


@dataclass
class Pass:
    """One pass: wall seconds, seconds inside the logging calls (training thread), CPU
    seconds of the process (every thread: the writers' own included), bytes appended and
    bytes of files replaced whole."""

    seconds: float
    inside: float
    cpu: float
    appended: int
    replaced: int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="demo or resnet")
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
            50,
            2,
        ),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| loop | steps per pass | bare step | recording to logdir, beyond watch: training "
        "thread / CPU, all threads | TensorBoard logging: training thread / CPU, all threads "
        "| TensorBoard / nbviz, training thread | appended per 10,000 steps: nbviz / TensorBoard |"
    )
    print("|---|---|---|---|---|---|---|")
    workdir = Path(tempfile.mkdtemp(prefix="nbviz-bench-"))
    try:
        for label, model, xs, ys, batch, steps, rounds in cases:
            if args.only and args.only.lower() not in label.lower():
                continue
            if args.quick:
                steps, rounds = max(20, steps // 10), 1
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loop(model, opt, xs, ys, batch, 5, "bare", workdir)  # warm-up
            res: dict[str, list[Pass]] = {m: [] for m in ("bare", "watch", "watch+log", "tb")}
            for r in range(rounds):
                order = ["bare", "watch", "watch+log", "tb"]
                for mode in order if r % 2 == 0 else order[::-1]:
                    res[mode].append(loop(model, opt, xs, ys, batch, steps, mode, workdir))
            med = statistics.median
            step = med(p.seconds for p in res["bare"]) / steps

            def per_step(mode: str, field: str, res=res, steps=steps) -> float:
                return statistics.median(getattr(p, field) for p in res[mode]) / steps

            log_inside = per_step("watch+log", "inside") - per_step("watch", "inside")
            log_cpu = per_step("watch+log", "cpu") - per_step("watch", "cpu")
            tb_inside = per_step("tb", "inside")
            tb_cpu = per_step("tb", "cpu") - per_step("bare", "cpu")
            ours = per_step("watch+log", "appended") * 10_000
            theirs = per_step("tb", "appended") * 10_000
            latest = med(p.replaced for p in res["watch+log"])
            print(
                f"| {label} | {steps} | {1e3 * step:.1f} ms | "
                f"{1e3 * log_inside:.2f} ms ({100 * log_inside / step:+.2f} %) / "
                f"{1e3 * log_cpu:.2f} ms | "
                f"{1e3 * tb_inside:.2f} ms ({100 * tb_inside / step:+.2f} %) / "
                f"{1e3 * tb_cpu:.2f} ms | "
                f"**{tb_inside / max(log_inside, 1e-9):.0f}x** | "
                f"{ours / 1e6:.1f} MB (+ {latest / 1e3:.0f} kB of latest feature maps) / "
                f"{theirs / 1e6:.1f} MB |",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
