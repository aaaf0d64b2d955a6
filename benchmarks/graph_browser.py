"""ModelGraph in the browser: time to paint, expand, fold and pan, in a real JupyterLab.

Starts JupyterLab and headless Chromium with the test harness
(tests/browser/lab.py), displays ModelGraph for ResNet-50, ViT-B/16 and a
12-layer GPT-2-small, and reads the widget's own timings (`data-layout-ms`:
from the start of a layout to the painted frame) plus frames counted with
requestAnimationFrame while the mouse drags the fully expanded graph.

    python -m benchmarks.graph_browser
"""

from __future__ import annotations

import statistics
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


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for name, (make, inputs, module) in MODELS.items():
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


if __name__ == "__main__":
    main()
