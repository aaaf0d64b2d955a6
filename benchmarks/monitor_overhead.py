"""Wall-time overhead of a displayed nbviz.watch dashboard (defaults) on a training loop.

Runs inside a real IPython kernel, so widget messages travel over ZeroMQ as in
JupyterLab. Each round runs the same number of training steps without and with
a displayed monitor at its defaults (every=10, hist_every=50,
features_every=100, a probe of 8 images), in alternating order; the overhead is
the median of the per-round ratios, which cancels the drift of a shared
machine. The time spent inside `mon.step` (pushes included) is measured
directly too.

    python benchmarks/monitor_overhead.py            # table for the README
    python benchmarks/monitor_overhead.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _kernel import paired_rounds  # benchmarks/ is on the path when run as a script

REPO = Path(__file__).resolve().parents[1]

SETUP = """
import sys, time, json, torch, nbviz
import torch.nn.functional as F
from IPython.display import display
sys.path.insert(0, {repo!r})
from nbviz.examples import SmallCNN
from tests.models import resnet50
torch.manual_seed(0)
if {model!r} == "cnn":
    data = nbviz.datasets.shapes(n=1024, size=64, seed=0)
    x_all, y_all = data.images, data.labels
    model, batch = SmallCNN(num_classes=6), 64
else:
    x_all, y_all = torch.randn(256, 3, {size}, {size}), torch.randint(0, 10, (256,))
    model, batch = resnet50(10, 64), 16
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
spent = [0.0]

def run(live, steps):
    mon = None
    if live:
        mon = nbviz.watch(model, probe=x_all[:8])
        display(mon)
    spent[0] = 0.0
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
            t1 = time.perf_counter()
            mon.step(loss=loss, acc=acc)
            spent[0] += time.perf_counter() - t1
        opt.step()
    if live:
        t1 = time.perf_counter()
        mon.flush()  # what the end of the cell does
        spent[0] += time.perf_counter() - t1
        mon.detach()
    return [time.perf_counter() - t0, spent[0]]

run(False, 5); run(True, 5)  # warm-up
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    # Passes of 100 steps: a whole period of the defaults (features every 100 steps,
    # histograms every 50), so periodic work counts at its steady-state share.
    cases = [
        ("SmallCNN (demo), shapes 64x64, batch 64", "cnn", 64, 100, 10),
        ("ResNet-50-style, 96x96, batch 16", "resnet", 96, 100, 6),
    ]
    if args.quick:
        cases = [(label, model, size, 10, 2) for label, model, size, _, _ in cases]
    print("rounds of paired passes, order alternated; monitor at its defaults")
    print(
        "| loop | steps per pass | bare pass | with nbviz.watch | overhead (median of paired ratios) | inside mon.step |"
    )
    print("|---|---|---|---|---|---|")
    for label, model, size, steps, rounds in cases:
        res = paired_rounds(
            SETUP.format(repo=str(REPO), model=model, size=size), rounds, str(steps)
        )
        ratios = [r["live"][0] / r["bare"][0] for r in res]
        share = [r["live"][1] / r["live"][0] for r in res]
        bare = statistics.median(r["bare"][0] for r in res)
        live = statistics.median(r["live"][0] for r in res)
        print(
            f"| {label} | {steps} | {bare:.2f} s | {live:.2f} s | "
            f"{100 * (statistics.median(ratios) - 1):+.1f} % | {100 * statistics.median(share):.1f} % |",
            flush=True,
        )
        print(
            f"  {rounds} rounds, live/bare:", " ".join(f"{x:.3f}" for x in ratios), file=sys.stderr
        )


if __name__ == "__main__":
    main()
