"""Wall-time overhead of a displayed, live ConfusionMatrix on the demo training loop.

Runs inside a real IPython kernel (so widget messages really travel over
ZeroMQ, as in JupyterLab), alternating one epoch without and one epoch with a
displayed ConfusionMatrix fed every batch (logits, targets and images), and
reports the median overhead.

    python benchmarks/confusion_overhead.py            # table for the README
    python benchmarks/confusion_overhead.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics

from jupyter_client.manager import start_new_kernel

SETUP = """
import time, json, torch, nbviz
from IPython.display import display
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n={n}, size={size}, seed=0)
model = SmallCNN(num_classes=len(data.classes))
cm = nbviz.ConfusionMatrix(classes=data.classes)
display(cm)
def epoch(live):
    t0 = time.perf_counter()
    if live:
        train(model, data.images, data.labels, epochs=1, on_batch=cm.update,
              on_epoch=lambda *_: cm.end_epoch())
    else:
        train(model, data.images, data.labels, epochs=1)
    return time.perf_counter() - t0
epoch(False); epoch(True)  # warm-up
"""


def run_in_kernel(n: int, size: int, rounds: int) -> dict[str, list[float]]:
    km, kc = start_new_kernel(kernel_name="python3")
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))

    try:
        kc.execute_interactive(SETUP.format(n=n, size=size), output_hook=hook, timeout=600)
        times: dict[str, list[float]] = {"bare": [], "live": []}
        for r in range(rounds):
            order = ("bare", "live") if r % 2 == 0 else ("live", "bare")
            for name in order:
                out.clear()
                code = f"print(json.dumps(epoch({name == 'live'})))"
                kc.execute_interactive(code, output_hook=hook, timeout=600)
                times[name].append(json.loads("".join(out)))
        return times
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, size, rounds = (600, 64, 2) if args.quick else (3000, 64, 6)
    t = run_in_kernel(n, size, rounds)
    bare, live = statistics.median(t["bare"]), statistics.median(t["live"])
    print(f"demo CNN, shapes n={n} size={size}, batch 64, {rounds} epochs each, alternated")
    print("| loop | median epoch | overhead |")
    print("|---|---|---|")
    print(f"| bare | {bare:.2f} s | |")
    print(
        f"| with a displayed live ConfusionMatrix | {live:.2f} s | {100 * (live / bare - 1):+.1f} % |"
    )


if __name__ == "__main__":
    main()
