"""GradCAM explorer in the browser: time from a control's input event to the repainted overlay.

Starts JupyterLab and headless Chromium with the test harness
(tests/browser/lab.py), shows the explorer for 16 images of the shapes data
(SmallCNN, 64x64) and of random 224x224 images (ResNet-50-style), then drags
the layer, opacity and threshold sliders, clicks through the images and
switches methods, as a person would. The widget stamps each repaint with the
time from the event's timeStamp to the end of drawing the canvas
(`nbvizPaints`); this script reports the median, p95 and max per control.

    python -m benchmarks.cam_browser
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.lab import CHROMIUM_ARGS, VIEWPORT, Lab, LabServer, find_chromium

CASES = {
    "SmallCNN, 16 images 64x64": """
import torch, nbviz
from nbviz.examples import SmallCNN
torch.manual_seed(0)
data = nbviz.datasets.shapes(16, seed=0)
cam = nbviz.GradCAM(SmallCNN(), data.images, labels=data.labels, masks=data.masks,
                    classes=data.classes)
cam
""",
    "ResNet-50-style, 16 images 224x224": """
import torch, nbviz
from tests.models import resnet50
torch.manual_seed(0)
cam = nbviz.GradCAM(resnet50(1000, 64).eval(), torch.randn(16, 3, 224, 224),
                    methods=["gradcam", "saliency"], batch_size=8)
cam
""",
}


def drag(page, slider, sweeps: int = 4, steps: int = 40) -> None:
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    for s in range(sweeps):
        for i in range(steps + 1):
            f = i / steps if s % 2 == 0 else 1 - i / steps
            page.mouse.move(box["x"] + 2 + f * (box["width"] - 4), y)
    page.mouse.up()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        server = LabServer(Path(tmp)).start()
        browser = pw.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for name, cell in CASES.items():
                page = browser.new_page(viewport=VIEWPORT)
                lab = Lab(page, server.url, server.root_dir, server=server)
                lab.open_notebook(f"{name.split()[0].strip(',')}.ipynb", [cell])
                lab.run_cell(0)
                lab.wait_cell(0, timeout=600)
                w = page.locator(".nbviz-cam").first
                w.wait_for(state="visible")
                w.scroll_into_view_if_needed()
                page.evaluate("(el) => { el.nbvizPaints.length = 0; }", w.element_handle())
                for control in ("layer", "opacity", "threshold"):
                    drag(page, w.locator(f".nbviz-cam__{control}"))
                thumbs = w.locator(".nbviz-cam__thumb")
                for i in range(thumbs.count()):
                    thumbs.nth(i).click()
                method = w.locator(".nbviz-cam__method")
                for value in method.locator("option").all_inner_texts():
                    method.select_option(label=value)
                paints = page.evaluate("(el) => el.nbvizPaints", w.element_handle())
                by = {}
                for p in paints:
                    by.setdefault(p["control"], []).append(p["ms"])
                everything = [p["ms"] for p in paints]
                rows.append((name, "all", everything))
                rows += [(name, c, v) for c, v in by.items()]
                server.shutdown_all_kernels()
                page.close()
        finally:
            browser.close()
            server.stop()
    print("headless Chromium (software rendering), JupyterLab 4; event time stamp to canvas drawn")
    print("| explorer | control | repaints | median | p95 | max |")
    print("|---|---|---|---|---|---|")
    for name, control, v in rows:
        print(
            f"| {name} | {control} | {len(v)} | {statistics.median(v):.1f} ms"
            f" | {percentile(v, 0.95):.1f} ms | {max(v):.1f} ms |"
        )


if __name__ == "__main__":
    main()
