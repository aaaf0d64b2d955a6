"""ModelGraph in the browser: time to paint, expand, fold and pan, in a real JupyterLab.

Starts JupyterLab and headless Chromium with the test harness
(tests/browser/lab.py), displays ModelGraph for ResNet-50, ViT-B/16 and a
12-layer GPT-2-small, and reads the widget's own timings (`data-layout-ms`:
from the start of a layout to the painted frame) plus frames counted with
requestAnimationFrame while the mouse drags the fully expanded graph.

    python -m benchmarks.graph_browser            # the three models above, then Llama-3-8B
    python -m benchmarks.graph_browser --llama    # only the Llama-3-8B-sized case

The Llama case (a `transformers` LlamaConfig of Llama-3-8B's size, built on the meta
device) opens at depth 1, goes to full depth with repeats folded, then times what
issue 17 asks about: from the click that unticks "fold repeats" to the painted
frame, with the widget's own phase breakdown (`data-layout-parts`: prepare, ELK,
SVG build, restyle, paint), "fit" from the click to the next painted frame, and the
longest frames (requestAnimationFrame gaps) while the mouse drags and zooms the
fully unfolded graph.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
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


LLAMA_CELL = """
import torch, nbviz
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)
with torch.device("meta"):
    model = LlamaForCausalLM(cfg)
ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
g = nbviz.ModelGraph(model, ids, depth=1)
g
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
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.layouts || 0) > n",
        arg=[w.element_handle(), before],
        timeout=120_000,
    )
    painted = float(w.get_attribute("data-painted-at"))
    parts = [float(x) for x in (w.get_attribute("data-layout-parts") or "").split(",") if x]
    gaps = lab.page.evaluate("() => { window.__counting = false; return window.__gaps; }")
    return painted - t0, [*parts, max(gaps, default=0)]


def fit_ms(lab: Lab) -> float:
    return lab.page.evaluate(
        "(f) => eval(f)(() => document.querySelector('.nbviz-graph [title^=\"fit the whole\"]').click())",
        _FRAME_AFTER,
    )


def long_frames(lab: Lab) -> dict[str, tuple[list[float], int]]:
    """The longest gaps between animation frames while the mouse drags the graph, and
    while Ctrl+wheel zooms out ten steps and back in: the five longest, and how many over 32 ms."""
    svg = lab.page.locator(".nbviz-graph svg").first
    box = svg.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    start = """() => { window.__gaps = []; window.__counting = true; let last = performance.now();
        const tick = (t) => { if (!window.__counting) return; window.__gaps.push(t - last); last = t;
          requestAnimationFrame(tick); };
        requestAnimationFrame(tick); }"""
    stop = "() => { window.__counting = false; return window.__gaps.slice(1); }"
    out = {}
    lab.page.evaluate(start)
    lab.page.mouse.move(x, y)
    lab.page.mouse.down()
    for i in range(90):
        lab.page.mouse.move(x + 150 * ((i % 30) / 30 - 0.5), y + 60 * ((i % 20) / 20 - 0.5))
    lab.page.mouse.up()
    gaps = lab.page.evaluate(stop)
    out["pan"] = (sorted(gaps, reverse=True)[:5], sum(g > 32 for g in gaps))
    lab.page.evaluate(start)
    lab.page.keyboard.down("Control")
    for i in range(20):
        lab.page.mouse.wheel(0, 100 if i < 10 else -100)
    lab.page.keyboard.up("Control")
    gaps = lab.page.evaluate(stop)
    out["zoom"] = (sorted(gaps, reverse=True)[:5], sum(g > 32 for g in gaps))
    return out


def llama(browser, server) -> dict:
    page = browser.new_page(viewport=VIEWPORT)
    lab = Lab(page, server.url, server.root_dir, server=server)
    lab.open_notebook("llama.ipynb", [LLAMA_CELL])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)
    w = page.locator(".nbviz-graph").first
    page.wait_for_function("(el) => Number(el.dataset.layouts || 0) >= 1", arg=w.element_handle())
    page.wait_for_timeout(1500)  # idle-time warm-up layouts
    depth = w.locator(".nbviz-graph__depth")
    last = depth.locator("option").count() - 1
    folded = layout_ms(lab, lambda: depth.select_option(index=last))
    out = {"full depth, folded": folded, "unfold": [], "parts": [], "fit": [], "frames": []}
    box = ".nbviz-graph input.nbviz-graph__fold-all"
    for _ in range(3):
        ms, parts = click_to_paint(lab, box, "e.click()")
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
    server.shutdown_all_kernels()
    page.close()
    return out


def print_llama(r: dict) -> None:
    print("\nLlama-3-8B-sized (LlamaConfig on meta), full depth:")
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
