# ruff: noqa: E501  (long lines are in-page JavaScript snippets)
"""ModelGraph against Netron: time to a drawn, fully unfolded layer graph, same browser.

Both tools run in one headless Chromium (Debian's, with the test suite's flags:
tests/browser/lab.py) on the same two model topologies, with tiny widths so that the
models run and export:

- GPT-2 small's topology: ``gpt(256, 12, 4, 64, 128)`` from tests/models.py (12 blocks);
- Llama-3-8B's topology: a ``transformers`` LlamaConfig with 32 layers, 32 heads and 8
  KV heads as in the 8B, but hidden 64, MLP 128 and vocabulary 256 (1.2 M parameters).
  Called as ``model(ids)`` its traced graph has the 2,337 nodes of the 8B in
  benchmarks/graph_browser.py.

Netron: each model is exported to ONNX (``torch.onnx.export``, the dynamo exporter,
weights inside the file; the Llama export passes ``use_cache=False`` and returns the
logits, as no exporter takes the KV cache object as an output) and served by Netron's
Python package (``netron.serve``) on 127.0.0.1. Timed: from the navigation's start
(``performance.timeOrigin``) of a fresh browser context to the frame after Netron's
graph is in the DOM (``body.default`` after ``view.render`` + ``viewGraph.update``: the
page fetches its scripts and the model, parses the ONNX, builds the SVG, measures every
node, lays it out with dagre in its worker, places it, and the frame paints; polled each
animation frame, then ``setTimeout(0)`` after it, as nbviz marks its own paint). The
context has Netron's cookie-consent cookie set (a returning user: otherwise the page
waits for a click on "Accept"), and requests to other hosts (Netron's analytics) fail
at once.

nbviz: a JupyterLab notebook (tests/browser/lab.py) whose first cell builds the same
model (not timed) and whose second cell is ``g = nbviz.ModelGraph(model, ids,
depth=full)``; ``g`` (ModelGraph opens with repeats folded), run afresh for each timing:

- (a) from the run-cell command (page clock) to the painted frame of the fully unfolded
  graph, "fold repeats" being unticked by an in-page observer the moment the first
  (folded) layout has painted: the kernel's trace, ``to_dict`` and widget state, the
  transfer over the websocket, the view's creation, the folded layout, the unfolded
  layout (ELK) and its paint;
- (b) the same path with a person's pause (`PAUSE_MS`) before the untick left out: run
  cell to first paint, plus the click that unticks "fold repeats" to the painted frame
  (the click alone is what benchmarks/graph_browser.py reports). Each view starts its own
  ELK worker, cold; in the pause its idle-time warm-up layouts run, which (a) competes with.

Three runs per model and tool, alternating Netron, nbviz (a) and nbviz (b). Longest frames are the
longest gaps between animation frames (requestAnimationFrame) during each timed span.
After the last run, the same mouse drag and Ctrl+wheel zoom (ten steps out, ten in) on
each tool's drawn graph, as ``long_frames`` in benchmarks/graph_browser.py does.
Not timed anywhere: the ONNX export Netron needs first (printed separately).

    python -m benchmarks.graph_netron

Needs ``onnx``, ``onnxscript`` and ``netron`` (imported here, not at import time).
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

from benchmarks.graph_browser import click_to_paint, pan_zoom_frames
from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

RUNS = 3
FOLD_BOX = ".nbviz-graph input.nbviz-graph__fold-all"
PAUSE_MS = 1500  # a person's pause before the unfold click (idle-time warm-up layouts run)

# The same code builds each model here (for the export) and in the notebook's kernel.
SETUP = """
import torch
from tests.models import gpt
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
model = {make}.eval()
ids = {inputs}
full = max(len(n.split(".")) for n, _ in model.named_modules() if n)  # the deepest module
"""
MODELS = {
    "GPT-2 small topology (12 layers)": (
        "gpt(256, 12, 4, 64, 128)",
        "torch.randint(0, 256, (1, 16))",
        {},
    ),
    "Llama-3-8B topology (32 layers)": (
        "LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128,"
        " num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=256))",
        "torch.randint(0, 256, (1, 16))",
        {"use_cache": False},
    ),
}
DISPLAY = """
import time, nbviz
_t = time.perf_counter()
g = nbviz.ModelGraph(model, ids, depth=full)
_build = time.perf_counter() - _t
g
"""


class _Logits(torch.nn.Module):
    """``model(ids, **kwargs)``'s logits: what the ONNX exporters can take as an output."""

    def __init__(self, model: torch.nn.Module, kwargs: dict):
        super().__init__()
        self.model, self.kwargs = model, kwargs

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(ids, **self.kwargs)
        return out.logits if hasattr(out, "logits") else out


def export(make: str, inputs: str, kwargs: dict, path: Path) -> dict:
    """Builds the model with `SETUP`, exports it to ONNX at `path` (dynamo exporter, the
    TorchScript one if that fails) and counts what Netron will draw."""
    import onnx

    ns: dict = {}
    exec(SETUP.format(make=make, inputs=inputs), ns)
    model, ids = ns["model"], ns["ids"]
    errors = []
    for dynamo in (True, False):
        t = time.perf_counter()
        try:  # the exporters' progress lines and tracer warnings kept off the table
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Logits(model, kwargs), (ids,), str(path), dynamo=dynamo, external_data=False
                )
        except Exception as e:  # noqa: BLE001  (report it, try the other exporter)
            errors.append(f"dynamo={dynamo}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        seconds = time.perf_counter() - t
        break
    else:
        raise RuntimeError("ONNX export failed: " + "; ".join(errors))
    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}
    n_io = sum(i.name not in inits for i in m.graph.input) + len(m.graph.output)
    return {
        "exporter": "dynamo" if dynamo else "TorchScript",
        "export_s": seconds,
        "failed": errors,
        "ops": len(m.graph.node),
        "io": n_io,
        "functions": len(m.functions),
        "bytes": path.stat().st_size,
        "params": sum(p.numel() for p in model.parameters()),
    }


# --- Netron --------------------------------------------------------------------------------

# Before Netron's scripts: keep window.eval usable for Playwright (Netron replaces it with a
# function that throws; the setter drops that), and watch each animation frame for the
# drawn graph: <body class="default"> is set by view.show() once render() has laid the
# graph out and placed it (it is "welcome spinner" while loading).
NETRON_PROBE = """(() => {
  const ev = window.eval;
  Object.defineProperty(window, 'eval', {get: () => ev, set: () => {}, configurable: false});
  const s = window.__probe = {gaps: [], seenAt: null, drawnAt: null, count: 0, stop: false};
  let last = null;
  const tick = (t) => {
    if (s.stop) return;
    if (last !== null) s.gaps.push([t, t - last]);
    last = t;
    if (s.seenAt === null && document.body) {
      const n = document.querySelectorAll('#nodes > g.node').length;
      if (document.body.classList.contains('default') && n > 0) {
        s.seenAt = t; s.count = n;
        setTimeout(() => { s.drawnAt = performance.now(); }, 0);  // after this frame's paint
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})()"""

NETRON_RESULT = """() => { const s = window.__probe; s.stop = true;
  const during = s.gaps.filter(([t]) => t <= s.drawnAt).map(([, g]) => g);
  return {drawn: s.drawnAt, count: s.count, longest: Math.max(0, ...during),
          over50: during.filter((g) => g > 50).length,
          now: document.querySelectorAll('#nodes > g.node').length,
          edges: document.querySelectorAll('#edge-paths > path').length}; }"""


def netron_load(browser, url: str, frames: bool) -> dict:
    """One load of Netron's page in a fresh browser context, to the drawn graph."""
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        ctx.add_cookies([{"name": "consent", "value": str(int(time.time() * 1000)), "url": url}])
        ctx.route(lambda u: not u.startswith(url), lambda route: route.abort())
        ctx.add_init_script(NETRON_PROBE)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        handle = page.wait_for_function(
            """() => window.__probe.drawnAt !== null ? 'drawn'
                 : document.body.classList.contains('alert') ? 'alert' : false""",
            timeout=300_000,
            polling=100,
        )
        if handle.json_value() == "alert":
            text = page.locator("#message-text").inner_text()
            raise RuntimeError(f"Netron failed: {text} {errors}")
        out = page.evaluate(NETRON_RESULT)
        page.wait_for_timeout(500)
        out["stable"] = page.evaluate("() => document.querySelectorAll('#nodes > g.node').length")
        if frames:
            out["frames"] = pan_zoom_frames(page, page.locator("#target"))
        return out
    finally:
        ctx.close()


# --- nbviz ---------------------------------------------------------------------------------

# Run just before the run-cell command: counts animation frames, and when the new widget's
# first layout (full depth, repeats folded) has painted, unticks "fold repeats" at once;
# done when a layout after that click has painted with the box unticked.
NBVIZ_PROBE = """(untick) => {
  document.querySelectorAll('.nbviz-graph').forEach((e) => { e.dataset.probeOld = '1'; });
  const s = window.__probe = {t0: performance.now(), gaps: [], layouts: [], clickAt: null,
                              first: null, unfolded: null, done: false};
  let last = null;
  const tick = (t) => { if (s.done) return; if (last !== null) s.gaps.push([t, t - last]);
    last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const read = (el) => ({n: Number(el.dataset.layouts), paintedAt: Number(el.dataset.paintedAt),
    visible: Number(el.dataset.visible), firstPaintMs: Number(el.dataset.firstPaintMs),
    parts: el.dataset.layoutParts || '',
    blocks: `${el.dataset.blocks || 0} blocks, ${el.dataset.blocksReused || 0} cached, outer ${el.dataset.outer || '-'}`});
  const obs = new MutationObserver((muts) => {
    for (const m of muts) {
      const el = m.target;
      if (s.done || !el.classList || !el.classList.contains('nbviz-graph') || el.dataset.probeOld) continue;
      const r = read(el);
      s.layouts.push(r);
      const box = el.querySelector('input.nbviz-graph__fold-all');
      const label = box && box.closest('.nbviz-graph__fold-label');
      const folds = box && box.checked && !(label && label.hidden);
      if (s.first === null) {
        s.first = r;
        if (folds && untick) { s.clickAt = performance.now(); box.click(); }
        else { s.unfolded = r; s.clickAt = r.paintedAt; s.done = true; obs.disconnect(); }
      } else if (!box.checked && r.paintedAt > s.clickAt) {
        s.unfolded = r; s.done = true; obs.disconnect();
      }
    }
  });
  obs.observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-layouts']});
  return s.t0;
}"""

NBVIZ_RESULT = """() => { const s = window.__probe;
  const max = (a, b) => Math.max(0, ...s.gaps.filter(([t]) => t >= a && t <= b).map(([, g]) => g));
  const end = s.unfolded.paintedAt;
  return {t0: s.t0, first: s.first, clickAt: s.clickAt, unfolded: s.unfolded,
          longest: max(s.t0, end), longestUnfold: max(s.clickAt, end),
          over50: s.gaps.filter(([t, g]) => t >= s.t0 && t <= end && g > 50).length}; }"""


def nbviz_run(lab: Lab, at_once: bool) -> dict:
    """Runs the display cell (cell 1) once. `at_once`: "fold repeats" is unticked when the
    first (folded) layout has painted; run-cell command to the unfolded paint. Otherwise,
    after the first paint and a pause of `PAUSE_MS`, the box is unticked: click to painted,
    as benchmarks/graph_browser.py times it (a fresh widget: no layout of it cached)."""
    page = lab.page
    page.evaluate(NBVIZ_PROBE, at_once)
    lab.run_cell(1)
    page.wait_for_function("() => window.__probe.done", timeout=300_000, polling=100)
    lab.wait_cell(1, timeout=300)
    r = page.evaluate(NBVIZ_RESULT)
    r["build_ms"] = float(lab.python("print(1000 * _build)", timeout=120))
    if not at_once:
        page.wait_for_timeout(PAUSE_MS)
        ms, parts = click_to_paint(lab, FOLD_BOX, "e.click()")
        w = page.locator(".nbviz-graph").first
        r["untick"] = {
            "ms": ms,
            "parts": parts[:-1],
            "longest": parts[-1],
            "visible": int(w.get_attribute("data-visible")),
            "blocks": f"{w.get_attribute('data-blocks') or 0} blocks,"
            f" {w.get_attribute('data-blocks-reused') or 0} cached,"
            f" outer {w.get_attribute('data-outer') or '-'}",
        }
    return r


# --- both ----------------------------------------------------------------------------------


def bench_model(browser, server, tmp: Path, name: str, spec) -> dict:
    import netron

    make, inputs, kwargs = spec
    path = tmp / f"{name.split()[0].lower()}.onnx"
    info = export(make, inputs, kwargs, path)
    addr = netron.serve(str(path), address=("127.0.0.1", 0), browse=False)
    url = f"http://{addr[0]}:{addr[1]}/"
    page = browser.new_page(viewport=VIEWPORT)
    lab = Lab(page, server.url, server.root_dir, server=server)
    lab.open_notebook(f"{name.split()[0]}.ipynb", [SETUP.format(make=make, inputs=inputs), DISPLAY])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)  # the model, built in the kernel: not timed
    netron_runs, nbviz_runs, paused_runs = [], [], []
    try:
        for i in range(RUNS):  # alternating, against a shared machine's drift
            netron_runs.append(netron_load(browser, url, frames=i == RUNS - 1))
            nbviz_runs.append(nbviz_run(lab, at_once=True))
            paused_runs.append(nbviz_run(lab, at_once=False))
        w = page.locator(".nbviz-graph").first
        zoom = float(w.get_attribute("data-zoom") or "nan")
        nbviz_frames = pan_zoom_frames(page, w.locator("svg").first)
    finally:
        netron.stop(addr)
        server.shutdown_all_kernels()
        page.close()
    return {
        "onnx": info,
        "netron": netron_runs,
        "nbviz": nbviz_runs,
        "paused": paused_runs,
        "nbviz_zoom": zoom,
        "nbviz_frames": nbviz_frames,
    }


def med(xs) -> float:
    return statistics.median(xs)


def runs(xs) -> str:
    return ", ".join(f"{x:.0f}" for x in xs)


def report(results: dict) -> None:
    print(
        "\nheadless Chromium (software rendering), 2 shared cores; median of"
        f" {RUNS} alternating runs; Netron {__import__('netron').__version__}, JupyterLab 4."
        "\nNetron: navigation start to the drawn graph (scripts, ONNX fetch and parse, SVG"
        " build, dagre layout, paint).\nnbviz (a): run-cell command to the fully unfolded"
        " graph painted, 'fold repeats' unticked the moment the first (full depth, folded)"
        " layout painted (trace, transfer, view, folded layout, unfolded layout, paint)."
        "\nnbviz (b): the same, with a person's pause of"
        f" {PAUSE_MS} ms before the untick left out: run cell to first paint + untick to"
        " painted; the untick alone also shown."
    )
    print(
        "\n| model | nodes drawn: Netron (ONNX ops + I/O) / nbviz (boxes) | Netron: navigation"
        " to drawn | nbviz (a) | Netron / nbviz (a) | nbviz (b) | Netron / nbviz (b)"
        " | nbviz (b): untick to painted | longest frame: Netron / nbviz (a) / nbviz (b) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        nt = med(x["drawn"] for x in r["netron"])
        na = med(x["unfolded"]["paintedAt"] - x["t0"] for x in r["nbviz"])
        nb = med(x["first"]["paintedAt"] - x["t0"] + x["untick"]["ms"] for x in r["paused"])
        un = med(x["untick"]["ms"] for x in r["paused"])
        longest_b = med(max(x["longest"], x["untick"]["longest"]) for x in r["paused"])
        print(
            f"| {name} | {r['netron'][-1]['count']:,} / {r['paused'][-1]['untick']['visible']:,}"
            f" | {nt:,.0f} ms | {na:,.0f} ms | {nt / na:.2f}x | {nb:,.0f} ms | {nt / nb:.2f}x"
            f" | {un:,.0f} ms | {med(x['longest'] for x in r['netron']):,.0f} /"
            f" {med(x['longest'] for x in r['nbviz']):,.0f} / {longest_b:,.0f} ms |"
        )
    for name, r in results.items():
        o = r["onnx"]
        print(f"\n{name}, {o['params']:,} parameters:")
        print(
            f"- ONNX ({o['exporter']} exporter, {o['export_s']:.1f} s, not timed below):"
            f" {o['ops']:,} ops, {o['io']} graph inputs/outputs, {o['functions']} functions,"
            f" {o['bytes'] / 2**20:.1f} MiB"
            + (f"; failed first: {'; '.join(o['failed'])}" if o["failed"] else "")
        )
        n = r["netron"]
        print(
            f"- Netron, navigation to drawn: {runs(x['drawn'] for x in n)} ms; nodes drawn"
            f" {n[-1]['count']:,} (500 ms later {n[-1]['stable']:,}), edges {n[-1]['edges']:,};"
            f" longest frame {runs(x['longest'] for x in n)} ms; frames over 50 ms"
            f" {runs(x['over50'] for x in n)}"
        )
        a = r["nbviz"]
        print(
            f"- nbviz (a), run cell to fully unfolded painted: {runs(x['unfolded']['paintedAt'] - x['t0'] for x in a)} ms;"
            f" boxes: folded {a[-1]['first']['visible']:,}, unfolded {a[-1]['unfolded']['visible']:,};"
            f" longest frame {runs(x['longest'] for x in a)} ms; frames over 50 ms"
            f" {runs(x['over50'] for x in a)}"
        )
        print(
            "  - of which: kernel, ModelGraph(...) (trace, to_dict, state)"
            f" {runs(x['build_ms'] for x in a)} ms; run cell to first paint (full depth,"
            f" repeats folded) {runs(x['first']['paintedAt'] - x['t0'] for x in a)} ms (view's"
            f" creation to that paint {runs(x['first']['firstPaintMs'] for x in a)} ms);"
            f" untick at once to painted {runs(x['unfolded']['paintedAt'] - x['clickAt'] for x in a)} ms"
            f" (longest frame {runs(x['longestUnfold'] for x in a)} ms); its phases (prepare,"
            " ELK, SVG build, restyle, paint) "
            + "; ".join(x["unfolded"]["parts"] for x in a)
            + " ms; pictures: "
            + "; ".join(x["unfolded"]["blocks"] for x in a)
        )
        b = r["paused"]
        print(
            f"- nbviz (b): {runs(x['first']['paintedAt'] - x['t0'] + x['untick']['ms'] for x in b)} ms;"
            f" kernel {runs(x['build_ms'] for x in b)} ms; run cell to first paint"
            f" {runs(x['first']['paintedAt'] - x['t0'] for x in b)} ms (longest frame"
            f" {runs(x['longest'] for x in b)} ms); after {PAUSE_MS} ms, untick to painted"
            f" {runs(x['untick']['ms'] for x in b)} ms (longest frame"
            f" {runs(x['untick']['longest'] for x in b)} ms), phases "
            + "; ".join(",".join(f"{p:.0f}" for p in x["untick"]["parts"]) for x in b)
            + " ms; pictures: "
            + "; ".join(x["untick"]["blocks"] for x in b)
        )
        for tool, frames in (
            ("Netron, its first view (zoom 1, top of the graph)", n[-1]["frames"]),
            (f"nbviz, fully unfolded (zoom {r['nbviz_zoom']:.3f})", r["nbviz_frames"]),
        ):
            print(
                f"- {tool}: "
                + "; ".join(
                    f"{what}: longest frames {runs(top)} ms, {over} over 32 ms"
                    for what, (top, over) in frames.items()
                )
            )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # before netron.serve, which logs at INFO
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed"
    results = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for name, spec in MODELS.items():
                results[name] = bench_model(browser, server, Path(tmp), name, spec)
        finally:
            browser.close()
            server.stop()
    report(results)


if __name__ == "__main__":
    main()
