"""Embeddings of 100,000 items in the browser: first paint, pan and zoom, hover.

Starts JupyterLab and headless Chromium with the test harness (tests/browser/lab.py) and
runs a cell that builds ``nbviz.Embeddings`` of N shapes images (16 x 16) at the
penultimate layer of a narrow ``SmallCNN`` (``width=2``: 16-dimensional vectors, so
the exact neighbour search stays in seconds at 100,000 items). Then, in the page:

- **first paint**: from the arrival of the widget's data (the dispatch of the last
  large kernel message, >= 64 kB, before the view appeared: the one carrying the
  coordinates) to the first animation frame after the scatter has drawn
  (``data-drawn`` set); also split at the moment the view's element appears in the page
  (the render call) — data in the page -> view rendered -> first frame;
- **pan** and **zoom**: the mouse dragged in circles over the scatter, then the wheel
  turned in and out, about 1 s each: the animation frame intervals meanwhile
  (``requestAnimationFrame``): median and mean frames per second, p95 frame time,
  longest frame (Playwright sends the next event when the page has taken the last, so
  the event rate follows the redraws; frames with no camera change are cheap, which
  lifts the median: the mean and p95 say more);
- **hover**: the pointer moved from outside the scatter onto a point that is on screen,
  many times: from the ``mousemove`` event's time stamp to the tooltip shown
  (``data-hovered`` set, a MutationObserver), and to the next animation frame.

Chromium here renders WebGL in software (SwiftShader) on shared CPU cores: frame rates
and times are a floor for a machine with a GPU.

    python -m benchmarks.projector_browser              # 100,000 points
    python -m benchmarks.projector_browser --quick      # 10,000 points
    python -m benchmarks.projector_browser --points 50000 --rounds 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

CELL = """
import time, torch, nbviz
from nbviz.examples import SmallCNN
torch.manual_seed(0)
t0 = time.perf_counter()
data = nbviz.datasets.shapes({n}, size=16, seed=0)
model = SmallCNN(num_classes=len(data.classes), width=2)
emb = nbviz.Embeddings(model, data.images, data.labels, classes=data.classes)
print(f"kernel {{time.perf_counter() - t0:.2f}}")
emb
"""

BIG = 64 * 1024  # bytes: a kernel message at least this large carries the widget's data

# Before any page script: the time each kernel websocket message is dispatched in the page
# (a listener added when the socket is made runs before JupyterLab's own handler).
WS_LOG = """
window.__ws = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (e) => {
      const d = e.data;
      const size = typeof d === 'string' ? d.length : (d.byteLength ?? d.size ?? 0);
      window.__ws.push([performance.now(), size]);
    });
  }
};
"""

# Watches for the view's element, then for its first drawn frame.
FIRST_PAINT = """
window.__paint = {};
new MutationObserver((_, obs) => {
  const root = document.querySelector('.nbviz-projector');
  if (!root) return;
  obs.disconnect();
  window.__paint.render = performance.now();
  const done = () => Number(root.dataset.drawn || 0) >= 1 && root.dataset.drawing === '0';
  const painted = () => {
    window.__paint.drawn = performance.now();
    requestAnimationFrame(() => { window.__paint.frame = performance.now(); });
  };
  if (done()) painted();
  else new MutationObserver((_, o) => { if (done()) { o.disconnect(); painted(); } })
    .observe(root, { attributes: true, attributeFilter: ['data-drawn', 'data-drawing'] });
}).observe(document.body, { childList: true, subtree: true });
"""

# Animation frame intervals while `window.__frames.on` holds.
FRAMES = """{
const f = (window.__frames = { on: true, last: null, dt: [] });
const tick = (t) => {
  if (!f.on) return;
  if (f.last !== null) f.dt.push(t - f.last);
  f.last = t;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
}"""

# From the last mousemove on the canvas to the tooltip (data-hovered): from the event's
# dispatch in the page (the widget's own time), from its time stamp (the input's creation,
# so with the browser's delivery), and from its time stamp to the next frame.
HOVER = """(root) => {
  const canvas = root.querySelector('.nbviz-projector__canvas');
  const h = (window.__hover = { move: null, at: null, input: [], dom: [], frame: [] });
  canvas.addEventListener('mousemove', (e) => { h.move = e.timeStamp; h.at = performance.now(); },
                          { capture: true });
  new MutationObserver(() => {
    if (root.dataset.hovered === undefined || h.move === null) return;
    const [t, at] = [h.move, h.at];
    h.move = null;
    const now = performance.now();
    h.dom.push(now - at);
    h.input.push(now - t);
    requestAnimationFrame(() => h.frame.push(performance.now() - t));
  }).observe(root, { attributes: true, attributeFilter: ['data-hovered'] });
}"""


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def frames_during(page, action, *args) -> tuple[list[float], int]:
    """The frame intervals while ``action(page, *args)`` runs, and what it returned."""
    page.evaluate(FRAMES)
    result = action(page, *args)
    dt = page.evaluate("() => { window.__frames.on = false; return window.__frames.dt; }")
    return dt, result


def pan(page, box, seconds: float) -> int:
    """Drags in circles over the middle of the scatter; returns the number of moves."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = min(box["width"], box["height"]) * 0.2
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    moves, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = moves * 2 * math.pi / 60
        page.mouse.move(cx + r * math.cos(a), cy + r * math.sin(a))
        moves += 1
    page.mouse.up()
    return moves


def zoom(page, box, seconds: float) -> int:
    """Turns the wheel over the scatter, 20 notches in, 20 out, ...; returns the count."""
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    moves, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        page.mouse.wheel(0, -60 if (moves // 20) % 2 == 0 else 60)
        moves += 1
    return moves


def hover(page, w, n: int, samples: int) -> dict[str, list[float]]:
    stage = w.locator(".nbviz-projector__stage")
    w.evaluate(HOVER)
    box = stage.bounding_box()
    done, item = 0, 0
    while done < samples and item < 50 * samples:
        item += 1
        i = (item * 7919) % n  # spread over the data set
        pos = stage.evaluate("(s, i) => s.nbvizScreen(i)", i)
        if not pos or not (8 < pos[0] < box["width"] - 8 and 8 < pos[1] < box["height"] - 8):
            continue
        page.mouse.move(2, 2)  # off the scatter: the tooltip goes
        w.locator(".nbviz-projector__tooltip").wait_for(state="hidden")
        page.wait_for_timeout(30)
        page.evaluate("() => { window.__hover.move = null; }")
        page.mouse.move(box["x"] + pos[0], box["y"] + pos[1])
        try:
            page.wait_for_function(
                "(k) => window.__hover.frame.length > k", arg=done, timeout=2_000
            )
        except Exception:
            continue  # no point under the pointer after all (hidden by a neighbour)
        done += 1
    return page.evaluate("() => window.__hover")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=None, help="items (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 items, one round")
    parser.add_argument("--rounds", type=int, default=None, help="fresh kernels (default 2)")
    parser.add_argument("--seconds", type=float, default=1.0, help="pan, then zoom, each")
    parser.add_argument("--hovers", type=int, default=40)
    args = parser.parse_args()
    n = args.points or (10_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 2)
    arrive, render, first, kernels, sizes = [], [], [], [], []
    pans, zooms, moves = [], [], [0, 0]
    hovers = {"dom": [], "input": [], "frame": []}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for r in range(rounds):
                page = browser.new_page(viewport=VIEWPORT)
                page.add_init_script(WS_LOG)
                lab = Lab(page, server.url, server.root_dir, server=server)
                lab.open_notebook(f"projector{r}.ipynb", [CELL.format(n=n)])
                page.evaluate(FIRST_PAINT)
                lab.run_cell(0)
                page.wait_for_function(
                    "() => window.__paint.frame !== undefined", timeout=600_000, polling=200
                )
                lab.wait_cell(0, timeout=600)
                kernels.append(
                    float(lab.cell_output(0).inner_text().split("kernel ")[1].split()[0])
                )
                paint = page.evaluate("() => window.__paint")
                ws = page.evaluate("() => window.__ws")
                big = [(t, s) for t, s in ws if s >= BIG and t <= paint["render"]]
                if not big:
                    raise RuntimeError(f"no kernel message of {BIG} bytes or more: {ws[-20:]}")
                t_data = big[-1][0]
                sizes.append(sum(s for _, s in big))
                arrive.append(paint["frame"] - t_data)
                render.append(paint["render"] - t_data)
                first.append(paint["frame"] - paint["render"])

                w = lab.cell_output(0).locator(".nbviz-projector")
                w.scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                box = w.locator(".nbviz-projector__canvas").bounding_box()
                for i, (action, into) in enumerate(((pan, pans), (zoom, zooms))):
                    dt, count = frames_during(page, action, box, args.seconds)
                    into += dt
                    moves[i] += count
                page.mouse.move(2, 2)
                w.scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                got = hover(page, w, n, args.hovers)
                for key, values in hovers.items():
                    values += got[key]
                server.shutdown_all_kernels()
                page.close()
        finally:
            browser.close()
            server.stop()

    med = statistics.median
    print(
        f"{n:,} points (shapes 16 x 16, SmallCNN width 2, 16-dim layer), headless Chromium, "
        "WebGL in software (SwiftShader), JupyterLab 4; "
        f"{rounds} round{'s' if rounds > 1 else ''}; kernel side {med(kernels):.1f} s, "
        f"{med(sizes) / 2**20:.0f} MB of data messages\n"
    )
    print(
        "| first paint: data in the page to first frame | data to view rendered "
        "| view rendered to first frame |"
    )
    print("|---|---|---|")
    print(
        f"| {med(arrive):.0f} ms (max {max(arrive):.0f}) | {med(render):.0f} ms "
        f"| {med(first):.0f} ms |\n"
    )
    print(
        "| interaction | frames / mouse events | median fps | mean fps | p95 frame | longest frame |"
    )
    print("|---|---|---|---|---|---|")
    for name, dt, m in (("pan (drag)", pans, moves[0]), ("zoom (wheel)", zooms, moves[1])):
        print(
            f"| {name} | {len(dt)} / {m} | {1000 / med(dt):.0f} | {1000 * len(dt) / sum(dt):.0f} "
            f"| {percentile(dt, 0.95):.1f} ms | {max(dt):.1f} ms |"
        )
    print()
    print("| hover (mousemove to tooltip) | samples | median | p95 | max |")
    print("|---|---|---|---|---|")
    for name, v in (
        ("event dispatched to tooltip shown (the widget)", hovers["dom"]),
        ("input time stamp to tooltip shown", hovers["input"]),
        ("input time stamp to the next frame", hovers["frame"]),
    ):
        if v:
            print(
                f"| {name} | {len(v)} | {med(v):.1f} ms | {percentile(v, 0.95):.1f} ms "
                f"| {max(v):.1f} ms |"
            )


if __name__ == "__main__":
    main()
