# ruff: noqa: E501  (long lines are in-page JavaScript snippets)
"""UMAP of 10,000 points in the browser, against umap-learn in the kernel on the same points.

Starts JupyterLab and headless Chromium with the test harness (tests/browser/lab.py) and
runs a cell that trains the demo CNN briefly (``SmallCNN`` on 3,000 shapes images, 32 x 32,
3 epochs: enough for the space to have structure) and builds ``nbviz.Embeddings`` of N
other shapes images at its default layer (``classifier.flatten``, 128 dimensions). Both
sides project the same vectors: the ones the widget sends to the browser for UMAP
(``sample`` / ``sample_vectors``: each item's vector reduced by PCA to 50 dimensions; the
sample is every item up to 20,000), read back from the kernel.

In the page (the widget's own UMAP: umap-js in a web worker):

- an animation-frame loop records the gaps between frames, and a PerformanceObserver
  the long tasks (> 50 ms) of the page's thread, from 1 s before the projection is chosen
  until the final layout is drawn;
- the projection select is set to UMAP as a person would; the time runs from its
  ``change`` event to ``data-projection-state="done"`` with ``data-projection="umap"``
  (set once the final layout is drawn);
- every message of the projection's worker is noted as it reaches the page (a wrapped
  ``Worker``): when the neighbour search ended (the first "optimise" message) and the
  intermediate layouts (every 250 ms), so the time the layout stopped changing can be
  read: the first intermediate layout within a Procrustes disparity of 0.01 of the final
  one (scipy's ``procrustes``: 0 is the same shape, 1 none in common);
- every render of the scatter is timed: regl-scatterplot renders into a shared WebGL
  canvas and copies the frame into the view's canvas with ``drawImage``, which waits for
  the rasteriser (a wrapped ``CanvasRenderingContext2D.drawImage``), so a slow frame can be
  told apart from a blocked page;
- the final layout is read back with the stage's ``nbvizLayout()``.

In the kernel's Python, umap-learn on the same 50-dim vectors with umap-js's parameters
(``n_neighbors=15``, ``min_dist=0.1``, ``spread=1``, ``negative_sample_rate=5``,
``learning_rate=1``, umap-js's epochs for N items (200 above 7,500 items), and the
widget's starting layout: the frame's PCA), timed in fresh processes: the first call in
a process with an empty numba cache (everything is compiled), the first call with the
cache filled (a later session), and warm calls, on 1 thread (``random_state=0``:
umap-learn then runs single-threaded) and on all threads (``n_jobs=-1``, no seed).
umap-learn's own defaults (spectral start, 500 epochs up to 10,000 items) for context.

Quality, for each layout against the same high-dimensional reference (the layer's
128-dim vectors of the same items, and the 50-dim vectors both sides were given):
``sklearn.manifold.trustworthiness(..., n_neighbors=10)`` (computed here in row blocks,
checked equal to scikit-learn's on one layout), and the share of each item's 10 nearest
items in 2-D that are of its class (the same share in the 128-dim space for reference).
The PCA the widget shows by default is scored beside them.

Chromium here renders WebGL in software (SwiftShader) on 2 shared CPU cores: times and
frame gaps are a floor for a machine with a GPU and more cores.

    python -m benchmarks.projector_umap              # 10,000 points
    python -m benchmarks.projector_umap --quick      # 2,000 points
    python -m benchmarks.projector_umap --points 5000
    python -m benchmarks.projector_umap --timeline tl.json   # also the page's time line

Needs umap-learn (the ``bench`` extra). Pictures of the layouts side by side go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CELL = """
import time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
t0 = time.perf_counter()
train_data = nbviz.datasets.shapes(3000, size=32, seed=1)
data = nbviz.datasets.shapes({n}, size=32, seed=0)
model = SmallCNN(num_classes=len(data.classes))
history = train(model, train_data.images, train_data.labels, epochs=3)
t1 = time.perf_counter()
emb = nbviz.Embeddings(model, data.images, data.labels, classes=data.classes)
print(f"train {{t1 - t0:.2f}} embed {{time.perf_counter() - t1:.2f}} "
      f"accuracy {{float((emb.embedded.predicted == data.labels).float().mean()):.3f}}")
emb
"""

# Written by the kernel for this process: both sides' inputs, in the sample's order.
DUMP = """
import numpy as np
_s = np.asarray(emb.sample).astype(np.int64)
_sv = np.asarray(emb.sample_vectors)
_sv = _sv[0] if _sv.ndim == 3 else _sv
_row = np.full(emb._n, -1, np.int64)
_row[emb.embedded.index.numpy()] = np.arange(len(emb.embedded.index))
np.savez({path!r}, sample=_s, sample_vectors=_sv,
         full=emb.embedded.vectors.numpy()[_row[_s]], labels=data.labels.numpy()[_s],
         pca=np.asarray(emb.coords)[0][_s], layer=emb.layer)
print(len(_s), _sv.shape[1])
"""

# Before any page script: every message a worker posts to the page, as it arrives (the
# projection's: progress, done, error), with the layouts it carries copied.
WORKER_LOG = """
window.__umap = { msgs: [] };
const NativeWorker = window.Worker;
window.Worker = class extends NativeWorker {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (e) => {
      const m = e.data;
      if (!m || !['progress', 'done', 'error'].includes(m.type)) return;
      const rec = { t: performance.now(), type: m.type, phase: m.phase ?? null,
                    done: m.done ?? null, total: m.total ?? null, message: m.message ?? null };
      if (m.layout) rec.layout = new Float32Array(m.layout);
      window.__umap.msgs.push(rec);
    });
  }
};
// regl-scatterplot renders into a shared WebGL canvas and copies each frame to the view's
// canvas with drawImage: that call waits for the rasteriser, so its time is the render's.
window.__renders = [];
const nativeDrawImage = CanvasRenderingContext2D.prototype.drawImage;
CanvasRenderingContext2D.prototype.drawImage = function (src, ...rest) {
  if (!(src instanceof HTMLCanvasElement || src instanceof OffscreenCanvas))
    return nativeDrawImage.call(this, src, ...rest);
  const t = performance.now();
  const out = nativeDrawImage.call(this, src, ...rest);
  window.__renders.push([t, performance.now() - t]);
  return out;
};
"""

# Frame gaps, long tasks and the widget's projection attributes, from now on.
WATCH = """(root) => {
  const r = (window.__run = { t0: null, done: null, on: true, last: null, frames: [],
                              long: [], states: [], start: performance.now() });
  root.addEventListener('change', (e) => {
    if (e.target.matches('.nbviz-projector__projection')) r.t0 = performance.now();
  }, { capture: true });
  new MutationObserver(() => {
    const d = root.dataset;
    r.states.push([performance.now(), d.projection, d.projectionState, d.projectionProgress, d.drawn]);
    if (r.t0 !== null && r.done === null && d.projection === 'umap' && d.projectionState !== 'running')
      r.done = performance.now();
  }).observe(root, { attributes: true,
                     attributeFilter: ['data-projection', 'data-projection-state', 'data-projection-progress', 'data-drawn'] });
  const tick = (t) => {
    if (!r.on) return;
    if (r.last !== null) r.frames.push([t, t - r.last]);
    r.last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) r.long.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask' });
  } catch (e) { r.longError = String(e); }
}"""

# The worker's messages, layouts as base64 float32 (smaller and faster than JSON numbers).
READ_WORKER = """() => window.__umap.msgs.map((m) => {
  const out = { ...m };
  if (m.layout) {
    const bytes = new Uint8Array(m.layout.buffer, m.layout.byteOffset, m.layout.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    out.layout = btoa(s);
  }
  return out;
})"""

THRESHOLD_MS = 50  # a frame longer than this is a visible stall
SETTLED = 0.01  # Procrustes disparity to the final layout: "no longer changing materially"


def umap_js_epochs(n: int) -> int:
    """umap-js 1.4's epochs when none are given (``UMAP.getNEpochs``)."""
    return 500 if n <= 2500 else 400 if n <= 5000 else 300 if n <= 7500 else 200


def percentile(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# ----------------------------------------------------------------------------- quality


def knn_2d(y: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k).fit(y).kneighbors(return_distance=False)


def trustworthiness_many(x, layouts: list[np.ndarray], k: int = 10, rows: int = 500) -> list[float]:
    """``sklearn.manifold.trustworthiness(x, y, n_neighbors=k)`` (Euclidean) for every ``y``
    in ``layouts``, sharing one pass over the ``(n, n)`` distances of ``x`` in row blocks
    (scikit-learn's keeps and argsorts the whole matrix for each call): each item's 2-D
    neighbours are ranked among all items by high-dimensional distance, and ranks past
    ``k`` are penalised, as there."""
    x = np.asarray(x, np.float64)
    n = len(x)
    sq = (x * x).sum(1)
    near = [knn_2d(y, k) for y in layouts]
    penalty = [0.0] * len(layouts)
    for a in range(0, n, rows):
        b = min(n, a + rows)
        i = np.arange(a, b)
        d = sq[a:b, None] + sq[None, :] - 2.0 * (x[a:b] @ x.T)
        d[i - a, i] = np.inf
        for j, nb in enumerate(near):
            dj = d[(i - a)[:, None], nb[a:b]]  # (rows, k): distances to the 2-D neighbours
            rank = (d[:, None, :] < dj[:, :, None]).sum(-1) + 1  # 1-based, in x's order
            over = rank - k
            penalty[j] += float(over[over > 0].sum())
    return [1.0 - p * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) for p in penalty]


def class_agreement(y: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """The share of each item's ``k`` nearest items (in ``y``'s Euclidean space) of its class."""
    return float((labels[knn_2d(y, k)] == labels[:, None]).mean())


def disparity(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import procrustes

    return float(procrustes(np.asarray(a, np.float64), np.asarray(b, np.float64))[2])


# ----------------------------------------------------------------------------- kernel side


def kernel_side(inputs: str, output: str, passes: str) -> None:
    """One fresh process's umap-learn fits (``passes``: "cold" for the full list, "cached"
    for the first call and the warm ones); prints the times as JSON, saves the layouts."""
    t = time.perf_counter()
    import umap  # noqa: PLC0415 (numba compiles part of pynndescent at import)

    times: dict[str, float] = {"import": time.perf_counter() - t}
    d = np.load(inputs)
    x, init, n = d["sample_vectors"], d["pca"], len(d["sample"])
    matched = dict(
        n_neighbors=15,
        min_dist=0.1,
        spread=1.0,
        negative_sample_rate=5,
        learning_rate=1.0,
        n_epochs=umap_js_epochs(n),
        init=init,
        metric="euclidean",
    )
    layouts: dict[str, np.ndarray] = {}

    def fit(name: str, **kw) -> None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = umap.UMAP(**{**matched, **kw}).fit_transform(x)
        times[name] = time.perf_counter() - t0
        layouts[name] = y

    fit("1 thread, first", random_state=0, n_jobs=1)
    fit("1 thread, warm", random_state=0, n_jobs=1)
    if passes == "cold":
        fit("all threads, first", n_jobs=-1)
    fit("all threads, warm", n_jobs=-1)
    if passes == "cold":
        # umap-learn as a user calls it: spectral start, its own epochs (500 up to 10,000)
        fit("defaults, 1 thread", random_state=0, n_jobs=1, n_epochs=None, init="spectral")
    np.savez(output, **{k.replace(" ", "_").replace(",", ""): v for k, v in layouts.items()})
    print(json.dumps(times))


def run_kernel_side(inputs: Path, tmp: Path) -> tuple[dict, dict]:
    """Two fresh processes sharing one numba cache folder, empty at the start."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "numba-cache"))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    times, layouts = {}, {}
    for passes in ("cold", "cached"):
        out = tmp / f"umap-learn-{passes}.npz"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.projector_umap",
                "--kernel-side",
                str(inputs),
                str(out),
                passes,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"umap-learn ({passes}) failed:\n{proc.stderr[-4000:]}")
        times[passes] = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as z:
            layouts[passes] = {k: z[k] for k in z.files}
    return times, layouts


# ----------------------------------------------------------------------------- browser side


def browser_side(n: int, tmp: Path, shots: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

    result: dict = {}
    with sync_playwright() as pw:
        server = LabServer(tmp / "lab").start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(WORKER_LOG)
            lab = Lab(page, server.url, server.root_dir, server=server)
            lab.open_notebook("umap.ipynb", [CELL.format(n=n)])
            lab.run_cell(0)
            lab.wait_cell(0, timeout=900)
            result["cell"] = lab.cell_output(0).inner_text().strip().splitlines()[0]
            w = lab.cell_output(0).locator(".nbviz-projector")
            w.scroll_into_view_if_needed()
            page.wait_for_function(
                "(el) => Number(el.dataset.drawn || 0) >= 1 && el.dataset.drawing === '0'",
                arg=w.element_handle(),
                timeout=120_000,
            )
            inputs = tmp / "inputs.npz"
            lab.python(DUMP.format(path=str(inputs)), timeout=300)
            if shots:
                result["shot_pca"] = str(lab.screenshot(w, "projector-umap-pca"))
            lab.wait_kernel_idle(timeout=120)

            # 1 s of the idle page first, then UMAP chosen as a person would
            w.evaluate(WATCH)
            page.wait_for_timeout(1000)  # the idle baseline's length, not a wait for a condition
            w.locator(".nbviz-projector__projection").select_option("umap")
            page.wait_for_function("() => window.__run.done !== null", timeout=900_000, polling=250)
            page.wait_for_timeout(500)  # frames after the final draw, for the record
            run = page.evaluate(
                "() => { const r = window.__run; r.on = false; r.renders = window.__renders; return r; }"
            )
            result["run"] = run
            result["state"] = w.evaluate("(el) => ({...el.dataset})")
            result["worker"] = page.evaluate(READ_WORKER)
            result["final"] = w.locator(".nbviz-projector__stage").evaluate(
                "(s) => s.nbvizLayout()"
            )
            result["status"] = w.locator(".nbviz-projector__progress-text").inner_text()
            if shots:
                result["shot_umap"] = str(lab.screenshot(w, "projector-umap"))
            result["inputs"] = inputs
            server.shutdown_all_kernels()
            page.close()
        finally:
            browser.close()
            server.stop()
    return result


# ----------------------------------------------------------------------------- report


def layout_of(items: np.ndarray, coords: list[float], sample: np.ndarray) -> np.ndarray:
    """A drawn layout (item numbers, flat coordinates) in the sample's order."""
    at = {int(i): k for k, i in enumerate(items)}
    xy = np.asarray(coords, np.float64).reshape(-1, 2)
    missing = [int(i) for i in sample if int(i) not in at]
    if missing:
        raise RuntimeError(
            f"{len(missing)} sampled items not in the drawn layout, e.g. {missing[:5]}"
        )
    return xy[[at[int(i)] for i in sample]]


def plot_layouts(layouts: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> Path | None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(layouts), figsize=(4.2 * len(layouts), 4.4))
    for ax, (name, y) in zip(axes, layouts.items(), strict=True):
        ax.scatter(y[:, 0], y[:, 1], c=labels, s=1, cmap="tab10", vmin=0, vmax=9)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=None, help="items (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 items")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument(
        "--timeline",
        type=Path,
        help="write the page's time line (frames, long tasks, messages) as JSON",
    )
    parser.add_argument("--kernel-side", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel_side:
        kernel_side(*args.kernel_side)
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    n = args.points or (2_000 if args.quick else 10_000)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        b = browser_side(n, tmp, shots=not args.no_screenshots)
        k_times, k_layouts = run_kernel_side(b["inputs"], tmp)
        d = dict(np.load(b["inputs"]))

    sample, labels = d["sample"], d["labels"]
    s, dims = len(sample), d["sample_vectors"].shape[1]
    run, msgs = b["run"], b["worker"]
    if run["done"] is None or b["state"].get("projectionState") != "done":
        raise RuntimeError(f"UMAP did not finish: {b['state']} {b['status']!r} {msgs[-1:]}")
    t0, t_done = run["t0"], run["done"]

    # -- time line: the worker's messages, the layouts it sent -------------------------------
    optimise = [m for m in msgs if m["phase"] == "optimise"]
    t_graph = optimise[0]["t"] if optimise else float("nan")
    done_msg = next(m for m in msgs if m["type"] == "done")
    final = layout_of(np.asarray(b["final"]["items"]), b["final"]["coords"], sample)
    worker_final = np.frombuffer(base64.b64decode(done_msg["layout"]), np.float32).reshape(-1, 2)
    # the worker's rows are the sampled items kept in the frame, in the sample's order
    if worker_final.shape[0] == s and not np.allclose(worker_final, final, atol=1e-4):
        raise RuntimeError("the drawn layout is not the worker's final layout")
    snaps = [
        (
            m["t"] - t0,
            m["done"],
            np.frombuffer(base64.b64decode(m["layout"]), np.float32).reshape(-1, 2),
        )
        for m in msgs
        if m.get("layout") and m["type"] == "progress"
    ]
    to_final = [(t, e, disparity(final, y)) for t, e, y in snaps]
    settled = next(
        (t for k, (t, _, dis) in enumerate(to_final) if all(x[2] < SETTLED for x in to_final[k:])),
        t_done - t0,
    )
    steps = [disparity(a[2], b_[2]) for a, b_ in zip(snaps, snaps[1:], strict=False)]

    # -- frames and long tasks while it ran ---------------------------------------------------
    during = [dt for t, dt in run["frames"] if t0 < t <= t_done]
    idle = [dt for t, dt in run["frames"] if t <= t0]
    long_during = [(st, du) for st, du in run["long"] if st + du > t0 and st < t_done]
    renders = [(st, du) for st, du in run["renders"] if t0 < st <= t_done]
    draws = {x[4] for x in run["states"] if t0 < x[0] <= t_done}
    slow = [(t - dt, t) for t, dt in run["frames"] if t0 < t <= t_done and dt > THRESHOLD_MS]
    slow_rendering = sum(any(a <= st < b for st, _ in renders) for a, b in slow)

    if args.timeline:
        args.timeline.write_text(
            json.dumps(
                {
                    "t0": t0,
                    "done": t_done,
                    "frames": run["frames"],
                    "long": run["long"],
                    "renders": run["renders"],
                    "states": run["states"],
                    "worker": [{k: v for k, v in m.items() if k != "layout"} for m in msgs],
                }
            )
        )

    # -- quality --------------------------------------------------------------------------------
    kl = k_layouts["cold"]
    layouts = {
        "browser: umap-js (nbviz)": final,
        "umap-learn, matched, 1 thread": kl["1_thread_warm"],
        "umap-learn, matched, all threads": kl["all_threads_warm"],
        "umap-learn defaults (spectral, 500 epochs)": kl["defaults_1_thread"],
        "PCA (the widget's default view)": d["pca"],
    }
    refs = {"128-dim": d["full"], f"{dims}-dim": d["sample_vectors"]}
    trust = {r: trustworthiness_many(x, list(layouts.values())) for r, x in refs.items()}
    from sklearn.manifold import trustworthiness  # noqa: PLC0415

    check = trustworthiness(d["sample_vectors"], final, n_neighbors=10)
    if abs(check - trust[f"{dims}-dim"][0]) > 1e-6:
        raise RuntimeError(
            f"trustworthiness differs from scikit-learn's: {check} {trust[f'{dims}-dim'][0]}"
        )
    agree = {name: class_agreement(y, labels) for name, y in layouts.items()}
    agree_high = class_agreement(d["full"], labels)
    pic = plot_layouts(
        layouts, labels, REPO / "test-artifacts" / "screenshots" / "projector-umap-layouts.png"
    )

    # -- table ------------------------------------------------------------------------------------
    cell = dict(zip(b["cell"].split()[::2], b["cell"].split()[1::2], strict=False))
    kc, kw = k_times["cold"], k_times["cached"]
    med = statistics.median
    print(
        f"{s:,} points (shapes 32 x 32, SmallCNN trained 3 epochs on 3,000 others: "
        f"{float(cell.get('accuracy', 'nan')):.0%} accuracy; layer {str(d['layer'])!r}, 128 dims; "
        f"UMAP of the widget's {dims}-dim PCA vectors); headless Chromium, WebGL in software "
        f"(SwiftShader), JupyterLab 4; {os.cpu_count()} cores\n"
    )
    print("| browser (umap-js in the widget's worker) | |")
    print("|---|---|")
    print(f"| select UMAP to final layout drawn | **{(t_done - t0) / 1000:.1f} s** |")
    print(f"| of which neighbours and graph (to the first epoch) | {(t_graph - t0) / 1000:.1f} s |")
    print(
        f"| layout settled (every later layout within disparity {SETTLED} of the final) "
        f"| {settled / 1000:.1f} s |"
    )
    print(
        f"| epochs | {done_msg.get('total') or optimise[-1]['total']} ({len(snaps)} intermediate layouts drawn) |"
    )
    print(
        f"| frames during the run: count, median, p95, longest | {len(during)}, "
        f"{med(during):.0f} ms, {percentile(during, 0.95):.0f} ms, **{max(during):.0f} ms** |"
    )
    print(
        f"| frames longer than {THRESHOLD_MS} ms | **{sum(dt > THRESHOLD_MS for dt in during)}** |"
    )
    print(
        f"| long tasks (> 50 ms) on the page's thread: count, longest, total "
        f"| {len(long_during)}, {max((du for _, du in long_during), default=0):.0f} ms, "
        f"{sum(du for _, du in long_during):.0f} ms |"
    )
    rd = [du for _, du in renders]
    print(
        f"| renders of the scatter (redraws: {len(draws)}): count, median, longest "
        f"| {len(rd)}, {med(rd) if rd else float('nan'):.0f} ms, {max(rd, default=0):.0f} ms |"
    )
    print(
        f"| frames over {THRESHOLD_MS} ms with a render in them / without "
        f"| {slow_rendering} / {len(slow) - slow_rendering} |"
    )
    print(f"| idle page before (1 s): longest frame | {max(idle, default=float('nan')):.0f} ms |\n")
    print("| umap-learn 0.5 (same vectors, matched parameters) | 1 thread | all threads |")
    print("|---|---|---|")
    print(
        f"| import (fresh process: empty numba cache / filled) | {kc['import']:.1f} s / {kw['import']:.1f} s | |"
    )
    print(
        f"| first fit in a process, empty numba cache (compiles) | {kc['1 thread, first']:.1f} s "
        f"| {kc['all threads, first']:.1f} s (after the 1-thread fits) |"
    )
    print(f"| first fit in a process, numba cache filled | {kw['1 thread, first']:.1f} s | |")
    print(
        f"| warm fit (median of 2 processes) | **{med([kc['1 thread, warm'], kw['1 thread, warm']]):.1f} s** "
        f"| **{med([kc['all threads, warm'], kw['all threads, warm']]):.1f} s** |"
    )
    print(
        f"| umap-learn defaults (spectral start, {500 if s <= 10_000 else 200} epochs), warm-ish | {kc['defaults, 1 thread']:.1f} s | |\n"
    )
    print(
        "| layout | trustworthiness (k = 10) vs 128-dim | vs "
        f"{dims}-dim | same class among 10 nearest in 2-D |"
    )
    print("|---|---|---|---|")
    for i, name in enumerate(layouts):
        print(
            f"| {name} | {trust['128-dim'][i]:.4f} | {trust[f'{dims}-dim'][i]:.4f} | {agree[name]:.3f} |"
        )
    print(f"| (the 128-dim space itself) | | | {agree_high:.3f} |\n")
    print(
        "Disparity to the final layout, by time since selecting UMAP: "
        + ", ".join(
            f"{t / 1000:.1f} s ({e}): {dis:.3f}"
            for t, e, dis in to_final[:: max(1, len(to_final) // 12)]
        )
    )
    if steps:
        print(
            f"Successive intermediate layouts: disparity max {max(steps):.3f}, last {steps[-1]:.4f}"
        )
    print(f"Browser status line: {b['status']!r}")
    shots = [p for p in (b.get("shot_pca"), b.get("shot_umap"), pic) if p]
    if shots:
        print("Pictures: " + ", ".join(str(Path(p).relative_to(REPO)) for p in shots))


if __name__ == "__main__":
    main()
