"""A folder of 200 runs in the browser: time to open, and how responsive the overview stays.

Writes 200 runs of 10,000 steps each (loss and accuracy every step, a validation point
every 500 steps; the scalar records a recorder writes, one per 100 steps, as at
``log_every=1`` with a 10 ms step) into a JupyterLab's folder, then, in headless Chromium
with the test harness (tests/browser/lab.py):

- **open**: ``nbviz.follow("sweep")`` from the cell's start until the list shows 200 runs
  and the charts have drawn the first six runs' curves (wall time seen from Python), and
  the kernel-side part alone (the follower's construction, timed in the kernel); it is
  the notebook's second cell: the first, timed the same way, imports nbviz in a fresh
  kernel and follows an empty folder (the cost of a first cell, whatever it shows);
- **pick all 200**: "pick shown" clicked until both charts have drawn 200 curves (in the
  page: from the click to the painted frame);
- **filter**: a word typed into the filter until the frame that shows its result, all 200
  picked;
- **hover**: the pointer moved over a chart with 200 curves: the handler's time per move;
- the longest task the page ran during those interactions (PerformanceObserver), the
  figure that says whether the browser stays responsive.

Chromium here renders in software (SwiftShader) on 2 shared cores: the figures are a floor
for a real machine.

    python -m benchmarks.runs_browser            # the table in docs/benchmarks.md
    python -m benchmarks.runs_browser --runs 50  # fewer runs, quicker
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from nbviz.runs.files import SegmentWriter
from nbviz.runs.format import Record
from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

STEPS = 10_000
CHUNK = 100  # steps per scalars record

EMPTY = """
import nbviz, os
os.makedirs("empty", exist_ok=True)
nbviz.follow("empty", many=True)
"""

CELL = """
import time, nbviz
t0 = time.perf_counter()
sweep = nbviz.follow("sweep")
print(f"kernel {time.perf_counter() - t0:.3f}")
sweep
"""

# Resolves with the milliseconds from now to the first painted frame after `done()` holds.
UNTIL_PAINTED = """
window.__untilPainted = (done) => new Promise((resolve) => {
  const t0 = performance.now();
  const check = () => {
    if (done()) requestAnimationFrame(() => resolve(performance.now() - t0));
    else requestAnimationFrame(check);
  };
  check();
});
window.__longest = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: "longtask", buffered: false });
"""


def write_runs(root: Path, runs: int) -> None:
    """``runs`` runs of STEPS steps: loss and accuracy curves that differ per run."""
    rng = np.random.default_rng(0)
    steps = np.arange(STEPS, dtype=np.int64)
    meta = {"layers": [], "relus": [], "hist_layers": [], "feature_layers": []}
    for i in range(runs):
        rate = 10 ** rng.uniform(-4, -2.5)
        loss = 2.3 * np.exp(-rate * steps) + 0.1 + 0.05 * rng.standard_normal(STEPS)
        acc = np.clip(1 - loss / 2.4 + 0.02 * rng.standard_normal(STEPS), 0, 1)
        w = SegmentWriter(root / f"lr{rate:.2e}-seed{i}", "monitor", interval=3600)
        w.append(Record("meta", {**meta, "capacity": 256, "bins": 64}))
        for a in range(0, STEPS, CHUNK):
            s = steps[a : a + CHUNK]
            for name, values in (("loss", loss), ("acc", acc)):
                w.append(
                    Record(
                        "scalars",
                        {"series": "scalars", "name": name},
                        {"steps": s, "values": values[a : a + CHUNK]},
                    )
                )
            if (a + CHUNK) % 500 == 0:
                at = np.array([a + CHUNK - 1])
                w.append(
                    Record(
                        "scalars",
                        {"series": "val", "name": "loss"},
                        {"steps": at, "values": loss[at] * 1.1},
                    )
                )
            w.append(Record("progress", {"steps": int(a + CHUNK)}))
        w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = args.runs
    opens, kernels, empties, picks, filters, hovers, longest = [], [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        t = time.perf_counter()
        write_runs(Path(server.root_dir) / "sweep", runs)
        print(f"wrote {runs} runs in {time.perf_counter() - t:.1f} s")
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for r in range(args.rounds):
                page = browser.new_page(viewport=VIEWPORT)
                lab = Lab(page, server.url, server.root_dir, server=server)
                lab.open_notebook(f"runs{r}.ipynb", [EMPTY, CELL])
                page.evaluate(UNTIL_PAINTED)
                t = time.perf_counter()
                lab.run_cell(0)
                lab.cell_output(0).get_by_text("no runs yet", exact=True).wait_for(timeout=120_000)
                empties.append(time.perf_counter() - t)
                lab.wait_cell(0)
                t = time.perf_counter()
                lab.run_cell(1)
                view = lab.cell_output(1).locator(".nbviz-runs")
                page.wait_for_function(
                    "([n]) => { const v = [...document.querySelectorAll('.nbviz-runs')].pop();"
                    " return v && v.querySelectorAll('.nbviz-runs__row').length === n &&"
                    " v.querySelectorAll(\".nbviz-runs__chart[data-scalar='acc'] path\").length === 6; }",
                    arg=[runs],
                    timeout=120_000,
                )
                opens.append(time.perf_counter() - t)
                lab.wait_cell(1)
                kernels.append(
                    float(lab.cell_output(1).inner_text().split("kernel ")[1].split()[0])
                )
                page.evaluate("() => { window.__longest = 0; }")
                picks.append(
                    view.evaluate(
                        """(v, n) => { v.querySelector('.nbviz-runs__pick-shown').click();
                        return window.__untilPainted(() => v.querySelectorAll(
                          ".nbviz-runs__chart[data-scalar='acc'] path.nbviz-runs__line").length === n); }""",
                        runs,
                    )
                )
                filters.append(
                    view.evaluate(
                        """(v) => { const f = v.querySelector('.nbviz-runs__filter');
                        f.value = 'seed1'; f.dispatchEvent(new Event('input'));
                        return window.__untilPainted(() => v.querySelectorAll(
                          '.nbviz-runs__row:not([hidden])').length < v.querySelectorAll('.nbviz-runs__row').length); }"""
                    )
                )
                view.evaluate(
                    """(v) => { const f = v.querySelector('.nbviz-runs__filter');
                    f.value = ''; f.dispatchEvent(new Event('input')); }"""
                )
                page.wait_for_timeout(500)
                hovers.append(
                    view.evaluate(
                        """(v) => { const svg = v.querySelector(".nbviz-runs__chart[data-scalar='loss'] svg");
                        const b = svg.getBoundingClientRect(); const t0 = performance.now();
                        for (let i = 0; i < 50; i++) svg.dispatchEvent(new MouseEvent('mousemove',
                          { clientX: b.left + b.width * (0.2 + i / 80), clientY: b.top + b.height / 2, bubbles: true }));
                        return (performance.now() - t0) / 50; }"""
                    )
                )
                page.wait_for_timeout(300)
                longest.append(page.evaluate("() => window.__longest"))
                server.shutdown_all_kernels()
                page.close()
        finally:
            browser.close()
            server.stop()
    med = statistics.median
    print(
        f"{runs} runs x {STEPS:,} steps, headless Chromium (software rendering), JupyterLab 4, "
        f"medians of {args.rounds} rounds\n"
    )
    print(
        "| open (cell start to curves drawn) | kernel side | first cell: import nbviz, empty folder "
        "| pick all | filter | hover (per move) | longest task |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {med(opens):.2f} s | {med(kernels):.2f} s | {med(empties):.2f} s | "
        f"{med(picks):.0f} ms | "
        f"{med(filters):.0f} ms | {med(hovers):.1f} ms | {med(longest):.0f} ms |"
    )


if __name__ == "__main__":
    main()
