"""Overhead of a displayed nbviz.watch dashboard (defaults) on a training loop.

Runs inside a real IPython kernel, so widget messages travel over ZeroMQ as in
JupyterLab. Each round runs the same number of training steps without and with
a displayed monitor at its defaults (every=20, hist_every=100,
features_every=100, a probe of 8 images), in alternating order; the overhead is
the median of the per-round ratios, which cancels the drift of a shared
machine. The classroom-sized case also displays a live ConfusionMatrix fed
with the batch's images (``cm.update(out, y, x)``), the issue's small-model goal.

Besides wall time, each pass reports the CPU time of the kernel process (every
thread: the training thread, torch's, ZeroMQ's), so the fixed cost per step is
measured even while other jobs share the machine, and the CPU time spent inside
``mon.step`` and ``cm.update`` (pushes included).

    python -m benchmarks.monitor_overhead            # table for docs/benchmarks.md
    python -m benchmarks.monitor_overhead --only small --rounds 6
    python -m benchmarks.monitor_overhead --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from benchmarks._kernel import paired_rounds

SETUP = """
import sys, time, json, torch, nbviz
import torch.nn.functional as F
from IPython.display import display
from nbviz.examples import SmallCNN
from tests.models import mobilenet_v2, resnet50
torch.manual_seed(0)
if {model!r} in ("cnn", "small", "mobilenet"):
    size = {{"cnn": 64, "small": 32, "mobilenet": 64}}[{model!r}]
    data = nbviz.datasets.shapes(n=1024, size=size, seed=0)
    x_all, y_all, classes = data.images, data.labels, data.classes
else:
    x_all, y_all = torch.randn(256, 3, {size}, {size}), torch.randint(0, 10, (256,))
    classes = [str(i) for i in range(10)]
if {model!r} == "cnn":
    model, batch = SmallCNN(num_classes=6), 64
elif {model!r} == "small":  # a classroom model: a step of a few milliseconds
    model, batch = SmallCNN(num_classes=6, width=8), 32
elif {model!r} == "mobilenet":  # many small modules
    model, batch = mobilenet_v2(6, 0.5), 32
else:
    model, batch = resnet50(10, 64), 16
with_cm = {with_cm!r}
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
spent = [0.0, 0.0]

def run(live, steps):
    mon = cm = None
    if live:
        mon = nbviz.watch(model, probe=x_all[:8])
        display(mon)
        if with_cm:
            cm = nbviz.ConfusionMatrix(classes=classes)
            display(cm)
    spent[:] = [0.0, 0.0]
    c0 = time.process_time()  # CPU time of every thread of the kernel (ZeroMQ's included)
    t0 = time.perf_counter()
    for s in range(steps):
        i = (s * batch) % (len(x_all) - batch)
        x, y = x_all[i:i + batch], y_all[i:i + batch]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        acc = (out.argmax(1) == y).float().mean()  # the loop's own metric, in both passes
        if live:
            t1 = time.thread_time()
            mon.step(loss=loss, acc=acc)
            spent[0] += time.thread_time() - t1
        opt.step()
        if cm is not None:
            t1 = time.thread_time()
            cm.update(out, y, x)
            spent[1] += time.thread_time() - t1
    if live:
        t1 = time.thread_time()
        mon.flush()  # what the end of the cell does
        spent[0] += time.thread_time() - t1
        if cm is not None:
            t1 = time.thread_time()
            cm.flush()
            spent[1] += time.thread_time() - t1
        mon.detach()
    return [time.perf_counter() - t0, spent[0], spent[1], time.process_time() - c0]

run(False, 5); run(True, 5)  # warm-up
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated cases: small,cnn,mobilenet,resnet")
    ap.add_argument("--rounds", type=int, help="paired rounds per case (default: per case)")
    args = ap.parse_args()
    # Passes of 100 steps or more: whole periods of the defaults (features and histograms
    # every 100 steps), so periodic work counts at its steady-state share. The small
    # model runs 1,000 steps a pass: its pushes (2 a second) then happen at their usual rate.
    cases = [
        (
            "SmallCNN width 8 (classroom), shapes 32x32, batch 32, + live ConfusionMatrix with images",
            "small",
            32,
            1000,
            10,
            True,
        ),
        ("SmallCNN (demo), shapes 64x64, batch 64", "cnn", 64, 100, 10, False),
        (
            "MobileNetV2-style x0.5 (141 leaf modules), shapes 64x64, batch 32",
            "mobilenet",
            64,
            100,
            6,
            False,
        ),
        ("ResNet-50-style, 96x96, batch 16", "resnet", 96, 100, 6, False),
    ]
    if args.only:
        cases = [c for c in cases if c[1] in args.only.split(",")]
    if args.rounds:
        cases = [(label, m, size, steps, args.rounds, cm) for label, m, size, steps, _, cm in cases]
    if args.quick:
        cases = [
            (label, m, size, max(10, steps // 10), 2, cm) for label, m, size, steps, _, cm in cases
        ]
    # The kernel inherits this environment. OpenMP's wait policy changes small models' steps
    # twofold (PASSIVE, as `make demo` sets, puts torch's idle threads to sleep between ops):
    # the figures in docs/benchmarks.md say which one they ran under.
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    print(
        f"rounds of paired passes, order alternated; monitor at its defaults; "
        f"OMP_WAIT_POLICY={policy}"
    )
    print(
        "| loop | steps per pass | bare step | overhead, wall time (median of paired ratios) | "
        "CPU time added per step, all threads (median) | inside mon.step | inside cm.update |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, model, size, steps, rounds, with_cm in cases:
        res = paired_rounds(
            SETUP.format(model=model, size=size, with_cm=with_cm),
            rounds,
            str(steps),
        )
        med = statistics.median
        ratios = [r["live"][0] / r["bare"][0] for r in res]
        bare = med(r["bare"][0] for r in res) / steps
        bare_cpu = med(r["bare"][3] for r in res) / steps
        added_cpu = med(r["live"][3] - r["bare"][3] for r in res) / steps
        in_mon = med(r["live"][1] for r in res) / steps
        in_cm = med(r["live"][2] for r in res) / steps
        print(
            f"| {label} | {steps} | {1e3 * bare:.1f} ms | {100 * (med(ratios) - 1):+.1f} % | "
            f"{1e3 * added_cpu:.2f} ms ({100 * added_cpu / bare_cpu:+.1f} % of the step's CPU time) | "
            f"{1e3 * in_mon:.2f} ms | " + (f"{1e3 * in_cm:.2f} ms |" if with_cm else "- |"),
            flush=True,
        )
        print(
            f"  {rounds} rounds, live/bare:", " ".join(f"{x:.3f}" for x in ratios), file=sys.stderr
        )


if __name__ == "__main__":
    main()
