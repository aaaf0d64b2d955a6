"""Wall-time overhead of a displayed, live ConfusionMatrix on the demo training loop.

Runs inside a real IPython kernel, so widget messages really travel over ZeroMQ
as in JupyterLab. Each round trains the demo CNN for one pass over the data
without and one pass with a displayed ConfusionMatrix fed every batch (logits,
targets and images), in alternating order; the overhead is the median of the
per-round ratios, which cancels the slow drift of a shared machine. The time
spent inside `cm.update` (pushes to the browser included) is measured directly
too: a second, noise-free view of the same cost.

    python -m benchmarks.confusion_overhead            # table for docs/benchmarks.md
    python -m benchmarks.confusion_overhead --quick
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks._kernel import paired_rounds

SETUP = """
import time, json, torch, nbviz
from IPython.display import display
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n={n}, size={size}, seed=0)
model = SmallCNN(num_classes=len(data.classes))
cm = nbviz.ConfusionMatrix(classes=data.classes)
display(cm)
spent = [0.0]
def timed_update(outputs, targets, inputs):
    t0 = time.perf_counter()
    cm.update(outputs, targets, inputs)
    spent[0] += time.perf_counter() - t0
def run(live):
    spent[0] = 0.0
    t0 = time.perf_counter()
    if live:
        train(model, data.images, data.labels, epochs=1, on_batch=timed_update,
              on_epoch=lambda *_: cm.end_epoch())
    else:
        train(model, data.images, data.labels, epochs=1)
    return [time.perf_counter() - t0, spent[0]]
run(False); run(True)  # warm-up
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, size, rounds = (600, 64, 2) if args.quick else (1500, 64, 30)
    res = paired_rounds(SETUP.format(n=n, size=size), rounds, timeout=600)
    ratios = [r["live"][0] / r["bare"][0] for r in res]
    share = [r["live"][1] / r["live"][0] for r in res]
    bare = statistics.median(r["bare"][0] for r in res)
    live = statistics.median(r["live"][0] for r in res)
    print(f"demo CNN on shapes n={n} size={size}, batch 64; {rounds} rounds, order alternated")
    print("per-round live/bare:", " ".join(f"{x:.3f}" for x in ratios))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"paired ratio: median {statistics.median(ratios):.3f}, quartiles {q1:.3f} to {q3:.3f}")
    print("| loop | median pass | overhead |")
    print("|---|---|---|")
    print(f"| bare | {bare:.2f} s | |")
    print(
        f"| with a displayed live ConfusionMatrix | {live:.2f} s | "
        f"{100 * (statistics.median(ratios) - 1):+.1f} % (median of paired ratios); "
        f"{100 * statistics.median(share):.1f} % of the time inside `cm.update` |"
    )


if __name__ == "__main__":
    main()
