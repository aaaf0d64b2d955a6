"""ModelGraph in the browser: time to paint, expand, fold and pan, in a real JupyterLab.

Starts JupyterLab and headless Chromium with the test harness
(tests/browser/lab.py), displays ModelGraph for ResNet-50, ViT-B/16 and a
12-layer GPT-2-small, and reads the widget's own timings (`data-layout-ms`:
from the start of a layout to the painted frame) plus frames counted with
requestAnimationFrame while the mouse drags the fully expanded graph.

    python -m benchmarks.graph_browser            # the three models above, then Llama-3-8B
    python -m benchmarks.graph_browser --llama    # only the Llama-3-8B-sized case

The Llama case (a `transformers` LlamaConfig of Llama-3-8B's size, built on the meta
device) times what issue 17 asks about:

- the display at depth 1: from the run-cell command, and from the cell's start in the
  kernel (`time.time()` in the cell, against the page's `performance.timeOrigin`), to
  the first painted frame (`data-painted-at`), split into the kernel's part
  (`ModelGraph(...)` timed in the cell), the way to the view, and the view's own
  (`data-first-paint-ms`); then, in the same kernel (`Lab.python`), `nbviz.trace`,
  `to_dict` and `json.dumps` (median of 3) and what the state's JSON is made of;
- full depth with repeats folded, then from the click that unticks "fold repeats" to
  the painted frame, with the widget's own phase breakdown (`data-layout-parts`:
  prepare, ELK, SVG build, restyle, paint), "fit" from the click to the next painted
  frame, and the longest frames (requestAnimationFrame gaps) while the mouse drags and
  zooms the fully unfolded graph;
- fully unfolded, one block (`BLOCK`) collapsed with the mouse on its header and
  expanded with the mouse on its box: from the press to the painted frame;
- page memory after a full GC (CDP: JS heap, DOM nodes alive and in the document, the
  keydown events JupyterLab holds), fully unfolded, over `CYCLES` fold/unfold and
  collapse/expand cycles;
- "export SVG" and "export PNG" of the fully unfolded graph: click to download, sizes;
- the same display for a Llama-3-70B-sized config (80 layers) in a fresh page and kernel.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

MODELS = {
    "ResNet-50": ("resnet50(1000, 64)", "torch.randn(1, 3, 224, 224)", "layer3"),
    "ViT-B/16": (
        "vit(224, 16, 768, 12, 12, 3072, 1000)",
        "torch.randn(1, 3, 224, 224)",
        "blocks.0",
    ),
    "GPT-2 small, 12 layers": (
        "gpt(50257, 12, 12, 768, 1024)",
        "torch.randint(0, 50257, (1, 128))",
        "transformer.h.0",
    ),
}

CELL = """
import torch, nbviz
from tests.models import resnet50, vit, gpt
model = {make}.eval()
g = nbviz.ModelGraph(model, {inputs}, depth=1)
g
"""


def layout_ms(lab: Lab, action) -> float:
    w = lab.page.locator(".nbviz-graph").first
    before = int(w.get_attribute("data-layouts") or 0)
    action()
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.layouts || 0) > n",
        arg=[w.element_handle(), before],
        timeout=60_000,
    )
    return float(w.get_attribute("data-layout-ms"))


def pan_fps(lab: Lab) -> float:
    """Frames painted per second while the mouse drags the graph for ~1.5 s."""
    svg = lab.page.locator(".nbviz-graph svg").first
    box = svg.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    lab.page.evaluate(
        """() => { window.__frames = 0; window.__counting = true;
        const tick = () => { if (!window.__counting) return; window.__frames++; requestAnimationFrame(tick); };
        requestAnimationFrame(tick); window.__t0 = performance.now(); }"""
    )
    lab.page.mouse.move(x, y)
    lab.page.mouse.down()
    for i in range(90):
        lab.page.mouse.move(x + 150 * ((i % 30) / 30 - 0.5), y + 60 * ((i % 20) / 20 - 0.5))
    lab.page.mouse.up()
    frames, ms = lab.page.evaluate(
        "() => { window.__counting = false; return [window.__frames, performance.now() - window.__t0]; }"
    )
    return 1000 * frames / ms


LLAMA_SIZES = {  # hidden, intermediate, layers, heads (8 KV heads, vocab 128256 in both)
    "8B": (4096, 14336, 32, 32),
    "70B": (8192, 28672, 80, 64),
}

# Cell 0 builds the model on the meta device; cell 1 is what is timed: trace, widget, display.
LLAMA_SETUP = """
import json, time, torch, nbviz
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(hidden_size={0}, intermediate_size={1}, num_hidden_layers={2},
                  num_attention_heads={3}, num_key_value_heads=8, vocab_size=128256)
with torch.device("meta"):
    model = LlamaForCausalLM(cfg)
ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
"""
LLAMA_DISPLAY = """
_start = time.time(); _t = time.perf_counter()
g = nbviz.ModelGraph(model, ids, depth=1)
_build = time.perf_counter() - _t
g
"""

# Run in the notebook's kernel after the display: what the state costs and weighs.
KERNEL_SIDE = """
import gc as _gc, json as _json, statistics as _st, time as _time
def _timed(f):
    t = _time.perf_counter(); r = f(); return 1000 * (_time.perf_counter() - t), r
_runs = []
for _ in range(3):
    _tr, _gr = _timed(lambda: nbviz.trace(model, ids))
    _td, _d = _timed(_gr.to_dict)
    _tj, _text = _timed(lambda: _json.dumps(_d))
    _gc.disable()  # to_dict makes ~10^5 small objects: how much of its time is the GC's
    try:
        _tg = _timed(nbviz.trace(model, ids).to_dict)[0]
    finally:
        _gc.enable()
    _runs.append((_tr, _td, _tj, _tg))
def _size(x):
    return len(_json.dumps(x))
_mods = _d["modules"].values()
print(_json.dumps({
    "start": _start, "build_ms": 1000 * _build,
    "trace_ms": _st.median(r[0] for r in _runs), "to_dict_ms": _st.median(r[1] for r in _runs),
    "json_ms": _st.median(r[2] for r in _runs), "to_dict_nogc_ms": _st.median(r[3] for r in _runs),
    "to_dict_all": [r[1] for r in _runs], "bytes": len(_text),
    "nodes": _size(_d["nodes"]), "edges": _size(_d["edges"]), "modules": _size(_d["modules"]),
    "histograms": sum(_size(m["histogram"]) for m in _mods),
    "reprs": sum(_size(m["repr"]) for m in _mods),
    "shapes": sum(_size(t["shape"]) for n in _d["nodes"] for t in n["inputs"] + n["outputs"])
    + sum(_size(e["shape"]) for e in _d["edges"])
    + sum(_size(p["shape"]) for m in _mods for p in m["params"]),
    "counts": [len(_d["nodes"]), len(_d["edges"]), len(_d["modules"])],
}))
"""

# Resolves when the frame after `action` has painted; returns ms since the action started.
_FRAME_AFTER = """async (fn) => {
  const t0 = performance.now();
  await fn();
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


def click_to_paint(lab: Lab, selector: str, action: str) -> tuple[float, list[float]]:
    """ms from a click (`action`, run in the page on `selector`) to the painted layout."""
    w = lab.page.locator(".nbviz-graph").first
    before = int(w.get_attribute("data-layouts") or 0)
    t0 = lab.page.evaluate(
        f"""(sel) => {{ const e = document.querySelector(sel);
        window.__gaps = []; window.__counting = true; let last = performance.now();
        const tick = (t) => {{ if (!window.__counting) return; window.__gaps.push(t - last); last = t;
          requestAnimationFrame(tick); }};
        requestAnimationFrame(tick);
        const t = performance.now(); {action}; return t; }}""",
        selector,
    )
    painted, parts = painted_after(lab, w, before)
    gaps = lab.page.evaluate("() => { window.__counting = false; return window.__gaps; }")
    return painted - t0, [*parts, max(gaps, default=0)]


def painted_after(lab: Lab, w, before: int) -> tuple[float, list[float]]:
    """Once the layout after the `before`-th has painted: when (page clock), and its phases
    (`data-layout-parts`: prepare, ELK, SVG build, restyle, paint)."""
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.layouts || 0) > n",
        arg=[w.element_handle(), before],
        timeout=120_000,
    )
    painted = float(w.get_attribute("data-painted-at"))
    return painted, [float(x) for x in (w.get_attribute("data-layout-parts") or "").split(",") if x]


def fit_ms(lab: Lab) -> float:
    return lab.page.evaluate(
        "(f) => eval(f)(() => document.querySelector('.nbviz-graph [title^=\"fit the whole\"]').click())",
        _FRAME_AFTER,
    )


def long_frames(lab: Lab) -> dict[str, tuple[list[float], int]]:
    """`pan_zoom_frames` on the graph's drawing."""
    return pan_zoom_frames(lab.page, lab.page.locator(".nbviz-graph svg").first)


def pan_zoom_frames(page, locator) -> dict[str, tuple[list[float], int]]:
    """The longest gaps between animation frames while the mouse drags in the middle of
    `locator` (90 moves), and while Ctrl+wheel zooms out ten steps and back in: the five
    longest, and how many over 32 ms."""
    box = locator.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + min(box["height"], VIEWPORT["height"]) / 2
    start = """() => { window.__gaps = []; window.__counting = true; let last = performance.now();
        const tick = (t) => { if (!window.__counting) return; window.__gaps.push(t - last); last = t;
          requestAnimationFrame(tick); };
        requestAnimationFrame(tick); }"""
    stop = "() => { window.__counting = false; return window.__gaps.slice(1); }"
    out = {}
    page.evaluate(start)
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(90):
        page.mouse.move(x + 150 * ((i % 30) / 30 - 0.5), y + 60 * ((i % 20) / 20 - 0.5))
    page.mouse.up()
    gaps = page.evaluate(stop)
    out["pan"] = (sorted(gaps, reverse=True)[:5], sum(g > 32 for g in gaps))
    page.evaluate(start)
    page.keyboard.down("Control")
    for i in range(20):
        page.mouse.wheel(0, 100 if i < 10 else -100)
    page.keyboard.up("Control")
    gaps = page.evaluate(stop)
    out["zoom"] = (sorted(gaps, reverse=True)[:5], sum(g > 32 for g in gaps))
    return out


def display_to_paint(lab: Lab) -> dict:
    """Runs cell 1 (the ModelGraph display) and times it: from the run-cell command and
    from the cell's start in the kernel to the first painted frame, plus the kernel side
    (measured in the kernel: `KERNEL_SIDE`)."""
    page = lab.page
    lab.wait_cell(0, timeout=300)
    origin, run_at = page.evaluate("() => [performance.timeOrigin, performance.now()]")
    lab.run_cell(1)
    lab.wait_cell(1, timeout=300)
    w = page.locator(".nbviz-graph").first
    page.wait_for_function(
        "(el) => Number(el.dataset.layouts || 0) >= 1", arg=w.element_handle(), timeout=300_000
    )
    painted = float(w.get_attribute("data-painted-at"))
    view_ms = float(w.get_attribute("data-first-paint-ms"))  # from the view's creation
    boxes = int(w.get_attribute("data-visible"))
    page.wait_for_timeout(1500)  # idle-time warm-up layouts
    k = json.loads(lab.python(KERNEL_SIDE, timeout=300))
    start = k["start"] * 1000 - origin  # the cell's start on the page clock
    return {
        **k,
        "click": painted - run_at,
        "queued": start - run_at,
        "cell": painted - start,
        "between": painted - view_ms - start - k["build_ms"],  # kernel done -> view created
        "view": view_ms,
        "boxes": boxes,
    }


def memory(lab: Lab, cdp) -> tuple[float, int, int, int, int]:
    """After a full garbage collection: JS heap used (MiB, page only: not the ELK worker),
    DOM nodes alive (attached or not), nodes in the document, JS event listeners, and the
    keydown events JupyterLab holds (Lumino's CommandRegistry keeps each keydown it saw,
    with its target, until a shortcut runs: a target in a replaced scene keeps that whole
    detached scene alive). Read once the page is idle: the view lays out likely next
    pictures in idle time, and what that allocates meanwhile is not what stays."""
    for _ in range(3):  # three idle slots in a row, each given up to 2 s to come
        lab.page.evaluate(
            "() => new Promise((r) => requestIdleCallback(() => r(), {timeout: 2000}))"
        )
    lab.page.wait_for_timeout(300)
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")["usedSize"] / 2**20
    dom = cdp.send("Memory.getDOMCounters")
    attached = lab.page.evaluate(
        "() => { const w = document.createTreeWalker(document, NodeFilter.SHOW_ALL); let n = 1;"
        " while (w.nextNode()) n++; return n; }"
    )
    held = lab.page.evaluate("() => window.jupyterapp.commands._holdKeyBindingPromises?.size ?? -1")
    return heap, dom["nodes"], attached, dom["jsEventListeners"], held


_CENTRE = """(e) => { const r = e.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height]; }"""


def bring_into_view(lab: Lab, target) -> None:
    """Drags the graph with the mouse until `target` is in the middle of the view."""
    page = lab.page
    svg = page.locator(".nbviz-graph svg").first
    svg.scroll_into_view_if_needed()
    for _ in range(200):
        sx, sy, sw, sh = svg.evaluate(_CENTRE)
        top, bottom = max(sy, 0), min(sy + sh, VIEWPORT["height"])
        cx, cy = sx + sw / 2, (top + bottom) / 2
        tx, ty, tw, th = target.evaluate(_CENTRE)
        dx, dy = cx - (tx + tw / 2), cy - (ty + th / 2)
        if abs(dx) < 40 and abs(dy) < 40:
            return
        dx = max(-(sw / 2 - 20), min(sw / 2 - 20, dx))
        dy = max(-((bottom - top) / 2 - 20), min((bottom - top) / 2 - 20, dy))
        page.mouse.move(cx - dx / 2, cy - dy / 2)
        page.mouse.down()
        page.mouse.move(cx + dx / 2, cy + dy / 2, steps=4)
        page.mouse.up()
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))")
    raise RuntimeError("could not pan the target into view")


def visible_rect(lab: Lab, target) -> tuple[float, float, float, float]:
    """The part of `target` inside the graph's viewport and the window: x, y, width, height."""
    sx, sy, sw, sh = lab.page.locator(".nbviz-graph svg").first.evaluate(_CENTRE)
    tx, ty, tw, th = target.evaluate(_CENTRE)
    x0, y0 = max(tx, sx, 0), max(ty, sy, 0)
    x1 = min(tx + tw, sx + sw, VIEWPORT["width"])
    y1 = min(ty + th, sy + sh, VIEWPORT["height"])
    return x0, y0, x1 - x0, y1 - y0


_HIT = """([x, y, path]) => { const e = document.elementFromPoint(x, y);
    const g = e && e.closest('g.nbviz-graph__node');
    const a = e && e.closest('[data-action]');
    return [g ? g.dataset.path : null, a ? a.dataset.action : null]; }"""


def mouse_to_paint(lab: Lab, x: float, y: float) -> tuple[float, list[float]]:
    """ms from the mouse's press at (x, y) (page clock, a capturing pointerdown listener)
    to the painted layout, and the layout's phases (`data-layout-parts`)."""
    w = lab.page.locator(".nbviz-graph").first
    before = int(w.get_attribute("data-layouts") or 0)
    lab.page.evaluate(
        """() => { if (window.__downHooked) return; window.__downHooked = true;
        window.addEventListener('pointerdown', () => { window.__downAt = performance.now(); }, true); }"""
    )
    lab.page.mouse.click(x, y)
    painted, parts = painted_after(lab, w, before)
    return painted - lab.page.evaluate("() => window.__downAt"), parts


BLOCK = "model.layers.5.self_attn"
CYCLES = 10  # fold/unfold and collapse/expand cycles while memory is sampled


def find_block(lab: Lab):
    """`BLOCK`'s box, brought near the view first with the search box when it is not in the
    DOM (a big graph draws only what is near the view)."""
    node = lab.page.locator(f'.nbviz-graph g.nbviz-graph__node[data-path="{BLOCK}"]').first
    if not node.count():
        search = lab.page.locator(".nbviz-graph .nbviz-graph__search").first
        search.fill(BLOCK)
        layout_ms(lab, lambda: search.press("Enter"))  # lays out, brings the match into view
        layout_ms(lab, lambda: search.press("Escape"))  # clears the search; the view stays
        node.wait_for(state="attached", timeout=30_000)
    return node


def block_clicks(lab: Lab, n: int) -> list[tuple[str, float, list[float]]]:
    """Collapses `BLOCK` with a click on its header and opens it again with a click on its
    box, `n` times each, with the mouse, the block first panned into view."""
    out = []
    for _ in range(n):
        node = find_block(lab)
        band = node.locator(":scope > .nbviz-graph__header > .nbviz-graph__header-band")
        bring_into_view(lab, band)
        x, y, bw, bh = visible_rect(lab, band)
        x, y = x + min(24, bw / 4), y + bh / 2
        hit = lab.page.evaluate(_HIT, [x, y, BLOCK])
        if hit != [BLOCK, "collapse"]:
            raise RuntimeError(f"the collapse click would land on {hit}")
        out.append(("collapse", *mouse_to_paint(lab, x, y)))
        node = find_block(lab)
        box = node.locator(":scope > .nbviz-graph__box")
        bring_into_view(lab, box)
        x, y, bw, bh = visible_rect(lab, box)
        x, y = x + bw * 0.3, y + bh * 0.6
        hit = lab.page.evaluate(_HIT, [x, y, BLOCK])
        if hit[0] != BLOCK or hit[1]:
            raise RuntimeError(f"the expand click would land on {hit}")
        out.append(("expand", *mouse_to_paint(lab, x, y)))
    return out


def export(lab: Lab, name: str) -> tuple[float, float, tuple[int, int, int], float]:
    """Clicks the "export SVG"/"export PNG" button: ms from the click to the download's
    start and to the saved file, its size, and (SVG) the page's own time to write the SVG."""
    page = lab.page
    w = page.locator(".nbviz-graph").first
    button = w.get_by_role("button", name=name)
    button.scroll_into_view_if_needed()
    b = button.bounding_box()
    with page.expect_download(timeout=300_000) as info:
        t0 = time.perf_counter()
        page.mouse.click(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    download = info.value
    started = time.perf_counter()
    path = download.path()
    saved = time.perf_counter()
    data = Path(path).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # the IHDR chunk: width, height
        px = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    else:
        m = re.search(rb'width="(\d+)" height="(\d+)"', data[:1000])
        px = (int(m[1]), int(m[2])) if m else (0, 0)
    text_ms = w.evaluate(
        "(el) => { const t = performance.now(); el.nbvizExportSvg(); return performance.now() - t; }"
    )
    return 1000 * (started - t0), 1000 * (saved - t0), (len(data), *px), text_ms


def open_llama(browser, server, size: str) -> Lab:
    page = browser.new_page(viewport=VIEWPORT)
    lab = Lab(page, server.url, server.root_dir, server=server)
    lab.open_notebook(
        f"llama-{size}.ipynb", [LLAMA_SETUP.format(*LLAMA_SIZES[size]), LLAMA_DISPLAY]
    )
    lab.run_cell(0)
    return lab


def llama(browser, server) -> dict:
    lab = open_llama(browser, server, "8B")
    page = lab.page
    cdp = page.context.new_cdp_session(page)
    out = {"8B": display_to_paint(lab)}
    out["memory"] = {"depth 1": [memory(lab, cdp)]}
    w = page.locator(".nbviz-graph").first
    depth = w.locator(".nbviz-graph__depth")
    last = depth.locator("option").count() - 1
    out["full depth, folded"] = layout_ms(lab, lambda: depth.select_option(index=last))
    out |= {"unfold": [], "parts": [], "fit": [], "frames": []}
    box = ".nbviz-graph input.nbviz-graph__fold-all"
    for i in range(3):
        ms, parts = click_to_paint(lab, box, "e.click()")
        if i == 0:
            out["memory"]["first unfold"] = [memory(lab, cdp)]
        out["unfold"].append(ms)
        out["parts"].append(parts)
        out["boxes"] = int(w.get_attribute("data-visible"))
        out["elk"] = w.get_attribute("data-elk") or "page"
        out["blocks"] = int(w.get_attribute("data-blocks") or 0)
        near = (float(w.get_attribute("data-zoom")), long_frames(lab))  # where the click left it
        out["fit"] += [fit_ms(lab) for _ in range(3)]
        far = (float(w.get_attribute("data-zoom")), long_frames(lab))  # the whole graph in view
        out["frames"] += [near, far]
        click_to_paint(lab, box, "e.click()")  # fold again
    # fully unfolded again, at the zoom a new depth starts at (the width fitted): one block
    # collapsed and expanded
    layout_ms(lab, lambda: depth.select_option(index=last - 1))
    layout_ms(lab, lambda: depth.select_option(index=last))
    click_to_paint(lab, box, "e.click()")
    out["block zoom"] = float(w.get_attribute("data-zoom"))
    out["block"] = block_clicks(lab, 3)
    # memory, always sampled fully unfolded: after each unfold of 10 fold/unfold cycles,
    # then after each expand of 10 collapse/expand cycles of the block
    samples = []
    for _ in range(CYCLES):
        click_to_paint(lab, box, "e.click()")  # fold
        click_to_paint(lab, box, "e.click()")  # unfold
        samples.append(memory(lab, cdp))
    out["memory"]["fold/unfold cycles"] = samples
    samples = []
    for _ in range(CYCLES):
        block_clicks(lab, 1)
        samples.append(memory(lab, cdp))
    out["memory"]["block collapse/expand cycles"] = samples
    out["export"] = {name: export(lab, name) for name in ("export SVG", "export PNG")}
    server.shutdown_all_kernels()
    page.close()
    lab = open_llama(browser, server, "70B")
    out["70B"] = display_to_paint(lab)
    server.shutdown_all_kernels()
    lab.page.close()
    return out


def print_display(name: str, d: dict) -> None:
    print(
        f"\n{name} (LlamaConfig on meta, {d['counts'][0]:,} nodes, {d['counts'][1]:,} edges,"
        f" {d['counts'][2]:,} modules), displayed at depth 1 ({d['boxes']} boxes):"
    )
    print(
        f"- run-cell command to painted: {d['click']:.0f} ms; from the cell's start in the"
        f" kernel: {d['cell']:.0f} ms (the cell started {d['queued']:.0f} ms after the command)"
    )
    print(
        f"  - kernel: ModelGraph(model, ids, depth=1) {d['build_ms']:.0f} ms (trace, to_dict,"
        f" widget state out); then {d['between']:.0f} ms to the view's creation (state over"
        f" the websocket, widget model, output); view's creation to painted {d['view']:.0f} ms"
    )
    print(
        f"- in the kernel, median of 3: nbviz.trace {d['trace_ms']:.0f} ms, to_dict"
        f" {d['to_dict_ms']:.0f} ms ({', '.join(f'{x:.0f}' for x in d['to_dict_all'])};"
        f" {d['to_dict_nogc_ms']:.0f} ms with the cyclic GC off), json.dumps {d['json_ms']:.0f} ms"
    )
    total = d["bytes"]

    def share(keys):
        return ", ".join(f"{k} {d[k] / 1024:.0f} KiB ({100 * d[k] / total:.0f}%)" for k in keys)

    print(
        f"- state sent (JSON of to_dict()): {total / 2**20:.2f} MiB; by part: "
        + share(("nodes", "edges", "modules"))
        + "; across parts: "
        + share(("shapes", "reprs", "histograms"))
        + " (shape lists of nodes, edges and parameters; module reprs; weight histograms)"
    )


def print_memory(series: dict) -> None:
    print(
        "- page memory, fully unfolded, after a full GC (JS heap of the page, not the ELK"
        " worker; DOM nodes alive / in the document; JS listeners; keydowns JupyterLab holds):"
    )
    fmt = "{:.1f} MiB, {:,} / {:,} nodes, {:,} listeners, {} keydowns held"
    print("  - at depth 1, before any unfold: " + fmt.format(*series["depth 1"][0]))
    print("  - after the first unfold: " + fmt.format(*series["first unfold"][0]))
    for name, s in series.items():
        if name in ("depth 1", "first unfold"):
            continue
        heaps = [x[0] for x in s]
        nodes = [x[1] for x in s]
        print(
            f"  - {name} ({len(s)}): heap first {heaps[0]:.1f}, last {heaps[-1]:.1f},"
            f" max {max(heaps):.1f} MiB; DOM nodes alive first {nodes[0]:,}, last"
            f" {nodes[-1]:,}, max {max(nodes):,}; in the document last {s[-1][2]:,};"
            f" listeners last {s[-1][3]:,}; keydowns held last {s[-1][4]}"
        )
        print("    - heap: " + ", ".join(f"{h:.1f}" for h in heaps))
        print("    - DOM nodes alive: " + ", ".join(f"{n:,}" for n in nodes))


def print_llama(r: dict) -> None:
    print_display("Llama-3-8B-sized", r["8B"])
    print("\nLlama-3-8B-sized, full depth:")
    print(f"- repeats folded: {r['full depth, folded']:.0f} ms; unfolded: {r['boxes']} boxes")
    print(
        "- untick 'fold repeats', click to painted: "
        + ", ".join(f"{x:.0f}" for x in r["unfold"])
        + f" ms (median {statistics.median(r['unfold']):.0f})"
    )
    print(f"- ELK ran in the {r['elk']}; repeat runs laid out once and stamped: {r['blocks']}")
    names = ["prepare", "ELK", "SVG build", "restyle", "paint", "longest frame meanwhile"]
    for parts in r["parts"]:
        print(
            "  - " + ", ".join(f"{n} {p:.0f}" for n, p in zip(names, parts, strict=False)) + " ms"
        )
    print(
        "- fit, click to painted: "
        + ", ".join(f"{x:.0f}" for x in r["fit"])
        + f" ms (median {statistics.median(r['fit']):.0f})"
    )
    for zoom, frames in r["frames"]:
        for what, (top, over) in frames.items():
            print(
                f"- {what} from zoom {zoom:.3f}: longest frames {', '.join(f'{g:.0f}' for g in top)} ms;"
                f" {over} over 32 ms"
            )
    print(
        f"- fully unfolded, {BLOCK} collapsed (mouse on its header) and expanded (mouse on its"
        f" box), press to painted, at zoom {r['block zoom']:.3f}:"
    )
    for what in ("collapse", "expand"):
        runs = [(ms, parts) for w, ms, parts in r["block"] if w == what]
        print(
            f"  - {what}: "
            + ", ".join(f"{ms:.0f}" for ms, _ in runs)
            + f" ms (median {statistics.median(ms for ms, _ in runs):.0f}); parts "
            + "; ".join(
                ", ".join(f"{n} {p:.0f}" for n, p in zip(names, parts, strict=False))
                for _, parts in runs
            )
        )
    print_memory(r["memory"])
    for name, (started, saved, (size, pw, ph), text_ms) in r["export"].items():
        print(
            f"- {name}, fully unfolded: click to download {started:.0f} ms, to the saved file"
            f" {saved:.0f} ms; {size / 2**20:.2f} MiB, {pw:,} x {ph:,} px"
            + (f"; writing the SVG text alone {text_ms:.0f} ms" if name == "export SVG" else "")
        )
    print_display("Llama-3-70B-sized", r["70B"])


def main() -> None:
    only_llama = "--llama" in sys.argv
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for name, (make, inputs, module) in ({} if only_llama else MODELS).items():
                page = browser.new_page(viewport=VIEWPORT)
                lab = Lab(page, server.url, server.root_dir, server=server)
                lab.open_notebook(
                    f"{name.split()[0]}.ipynb", [CELL.format(make=make, inputs=inputs)]
                )
                lab.run_cell(0)
                lab.wait_cell(0, timeout=300)
                w = page.locator(".nbviz-graph").first
                page.wait_for_function(
                    "(el) => Number(el.dataset.layouts || 0) >= 1", arg=w.element_handle()
                )
                first = float(w.get_attribute("data-first-paint-ms"))  # from the view's creation
                page.wait_for_timeout(1500)  # let the idle-time warm-up layouts finish
                # expand and collapse one block of the depth-1 view, three times
                depth = w.locator(".nbviz-graph__depth")
                unfold = w.locator(
                    ".nbviz-graph__fold-all input, input.nbviz-graph__fold-all"
                ).first
                if w.locator(".nbviz-graph__node--folded").count():  # show the blocks one by one
                    layout_ms(lab, lambda: unfold.uncheck())  # noqa: B023
                target = w.locator(f'.nbviz-graph__node--module[data-path="{module}"]').first
                clicks = []
                for _ in range(3):
                    target.evaluate("(e) => e.scrollIntoView({block: 'center'})")
                    b = target.bounding_box()
                    clicks.append(
                        layout_ms(
                            lab, lambda b=b, page=page: page.mouse.click(b["x"] + 30, b["y"] + 10)
                        )
                    )
                    header = target.locator('[data-action="collapse"]').first
                    header.evaluate("(e) => e.scrollIntoView({block: 'center'})")
                    hb = header.bounding_box()
                    clicks.append(
                        layout_ms(
                            lab,
                            lambda hb=hb, page=page: page.mouse.click(hb["x"] + 30, hb["y"] + 8),
                        )
                    )
                # everything, to the leaves, no folds
                if unfold.is_checked():
                    layout_ms(lab, lambda: unfold.uncheck())  # noqa: B023
                last = depth.locator("option").count() - 1
                full = layout_ms(lab, lambda: depth.select_option(index=last))  # noqa: B023
                boxes = int(w.get_attribute("data-visible"))
                fps = pan_fps(lab)
                rows.append((name, first, statistics.median(clicks), full, boxes, fps))
                server.shutdown_all_kernels()
                page.close()
            big = llama(browser, server)
        finally:
            browser.close()
            server.stop()
    print(
        "headless Chromium (software rendering), JupyterLab 4; first paint from the creation of the view,"
        " the others from the start of a layout to the painted frame"
    )
    print(
        "| model | display to first paint (depth 1) | expand or collapse one block"
        " | fully expanded, no folds | boxes | pan |"
    )
    print("|---|---|---|---|---|---|")
    for name, first, click, full, boxes, fps in rows:
        print(
            f"| {name} | {first:.0f} ms | {click:.0f} ms | {full:.0f} ms | {boxes} | {fps:.0f} fps |"
        )
    print_llama(big)


if __name__ == "__main__":
    main()
