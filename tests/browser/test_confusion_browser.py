"""ConfusionMatrix in a real JupyterLab: live while a training cell runs.

The training cell keeps training (one epoch after another) until the test
drops a `stop` file beside the notebook, so every interaction below really
happens while the kernel is busy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .lab import Lab

EVIL = "<img src=x onerror=alert(1)>"
DOCS = Path(__file__).resolve().parents[2] / "docs"

SETUP = f"""
import json, os, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=600, seed=0)
classes = list(data.classes)
classes[0] = {EVIL!r}   # a hostile class name must show as text
model = SmallCNN(num_classes=len(classes))
cm = nbviz.ConfusionMatrix(classes=classes, title="Training batches")
# The README's picture: the same run with the data set's own class names (shown later).
shown = nbviz.ConfusionMatrix(classes=data.classes, title="Shapes: training batches")
def both(outputs, targets, inputs):
    cm.update(outputs, targets, inputs)
    shown.update(outputs, targets, inputs)
cm
"""

TRAIN = """
for epoch in range(200):
    train(model, data.images, data.labels, epochs=1, seed=epoch, on_batch=both)
    cm.end_epoch()
    shown.end_epoch()
    if os.path.exists("stop-confusion"):
        break
"""

ROOT = ".nbviz-confusion"


def widget(lab: Lab, i: int):
    return lab.cell_output(i).locator(ROOT)


def geometry(lab: Lab, i: int) -> dict:
    return json.loads(
        widget(lab, i).locator(".nbviz-confusion__overlay").get_attribute("data-geometry")
    )


def cell_point(lab: Lab, i: int, r: int, c: int) -> tuple[float, float]:
    g = geometry(lab, i)
    overlay = widget(lab, i).locator(".nbviz-confusion__overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    return box["x"] + g["x0"] + (c + 0.5) * g["cell"], box["y"] + g["y0"] + (r + 0.5) * g["cell"]


def drawn_table(lab: Lab, i: int) -> list[list[int]]:
    """The numbers the view shows (its accessible table twin of the canvas)."""
    return lab.page.evaluate(
        """(el) => [...el.querySelectorAll('.nbviz-confusion__table tr')].slice(1).map(
            (tr) => [...tr.querySelectorAll('td')].map((td) => Number(td.textContent)))""",
        widget(lab, i).element_handle(),
    )


def canvas_pixels(lab: Lab, i: int) -> str:
    return widget(lab, i).locator(".nbviz-confusion__matrix").evaluate("(c) => c.toDataURL()")


def test_live_confusion_matrix_in_jupyterlab(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("confusion.ipynb", [SETUP, TRAIN, "shown"])
    lab.run_cell(0)
    lab.wait_cell(0)
    widget(lab, 0).wait_for(state="visible")
    assert widget(lab, 0).locator(".nbviz-confusion__title").inner_text() == "Training batches"

    # --- while the training cell runs -------------------------------------------------
    lab.run_cell(1)
    # The drawing changes at least twice while the cell runs. Counts that grow in proportion
    # draw the same picture (colour by count over the largest count), as early batches of an
    # untrained model can, so new totals are awaited until three pictures have been seen.
    seen_totals, seen_pixels = set(), set()
    while len(seen_pixels) < 3:
        assert len(seen_totals) < 20, f"{len(seen_totals)} totals drew {len(seen_pixels)} pictures"
        lab.page.wait_for_function(
            "([el, seen]) => el.dataset.total !== '0' && !seen.includes(el.dataset.total)",
            arg=[widget(lab, 0).element_handle(), sorted(seen_totals)],
            timeout=60_000,
        )
        seen_totals.add(widget(lab, 0).get_attribute("data-total"))
        seen_pixels.add(canvas_pixels(lab, 0))
    assert lab.cell_running(1)

    lab.start_counting_kernel_messages()
    # normalize over the true class: the colour scale becomes 0-100 %
    before = canvas_pixels(lab, 0)
    widget(lab, 0).locator(".nbviz-confusion__mode").select_option("true")
    lab.page.wait_for_function(
        "(el) => el.dataset.mode === 'true'", arg=widget(lab, 0).element_handle()
    )
    assert canvas_pixels(lab, 0) != before

    # hover a diagonal cell, then the hostile class's row: tooltips read as text
    x, y = cell_point(lab, 0, 2, 2)
    lab.page.mouse.move(x, y)
    tip = widget(lab, 0).locator(".nbviz-confusion__tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "true: triangle" in text and "predicted: triangle" in text and "count:" in text
    x, y = cell_point(lab, 0, 0, 1)
    lab.page.mouse.move(x, y)
    lab.page.wait_for_function(
        "(t) => t.textContent.includes('true: <img')", arg=tip.element_handle()
    )
    assert f"true: {EVIL}" in tip.inner_text()
    assert widget(lab, 0).locator("img").count() == 0
    lab.screenshot(widget(lab, 0), "confusion-live-hover")

    # scrub back to epoch 1 while later epochs keep arriving, then return to the latest
    lab.page.wait_for_function(
        "(el) => /epoch ([4-9]|\\d\\d)/.test(el.dataset.epoch)",
        arg=widget(lab, 0).element_handle(),
        timeout=120_000,
    )
    slider = widget(lab, 0).locator(".nbviz-confusion__epoch")
    slider.fill("1")
    lab.page.wait_for_function(
        "(el) => el.dataset.epoch === 'epoch 1'", arg=widget(lab, 0).element_handle()
    )
    lab.page.wait_for_timeout(600)  # several pushes arrive: the view stays on epoch 1
    assert widget(lab, 0).get_attribute("data-epoch") == "epoch 1"
    slider.press("End")  # keyboard, as a person would: to the newest position
    lab.page.wait_for_function(
        "(el) => el.dataset.epoch.endsWith('(in progress)')", arg=widget(lab, 0).element_handle()
    )

    # open a cell's examples while training (thumbnails arrive every ~2 s)
    lab.page.mouse.click(*cell_point(lab, 0, 3, 3))
    widget(lab, 0).locator(".nbviz-confusion__thumb").first.wait_for(
        state="visible", timeout=30_000
    )
    # pushes re-render the open gallery's thumbnails, never its close button: a click on
    # "x" cannot land on a button that a push replaced (it once did: the gallery stayed)
    button = widget(lab, 0).locator(".nbviz-confusion__close").element_handle()
    total = widget(lab, 0).get_attribute("data-total")
    lab.page.wait_for_function(
        "([el, t]) => el.dataset.total !== t", arg=[widget(lab, 0).element_handle(), total]
    )
    assert button.evaluate("(b) => b.isConnected")
    widget(lab, 0).locator(".nbviz-confusion__close").click()
    widget(lab, 0).locator(".nbviz-confusion__gallery").wait_for(state="hidden")

    assert lab.cell_running(1), "training ended before the interactions: make it longer"
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone

    # --- stop training; the final view equals cm.matrix --------------------------------
    (Path(lab.root_dir) / "stop-confusion").write_text("")
    lab.wait_cell(1, timeout=120)
    lab.page.mouse.move(0, 0)
    state = json.loads(
        lab.python(
            "print(json.dumps({'matrix': cm.matrix.tolist(), 'epochs': len(cm.history),"
            " 'first': cm.history[0].tolist()}))"
        )
    )
    assert state["epochs"] >= 3
    lab.page.wait_for_function(
        "([el, n]) => el.dataset.total === String(n)",
        arg=[widget(lab, 0).element_handle(), sum(map(sum, state["matrix"]))],
    )
    assert drawn_table(lab, 0) == state["matrix"]
    assert (
        f"epoch {state['epochs']}" in widget(lab, 0).locator(".nbviz-confusion__stats").inner_text()
    )

    # --- click an off-diagonal cell: its example thumbnails -----------------------------
    lab.start_counting_kernel_messages()
    m = state["matrix"]
    r, c = max(
        ((r, c) for r in range(6) for c in range(6) if r != c), key=lambda rc: m[rc[0]][rc[1]]
    )
    assert m[r][c] > 0
    lab.page.mouse.click(*cell_point(lab, 0, r, c))
    gallery = widget(lab, 0).locator(".nbviz-confusion__gallery")
    gallery.wait_for(state="visible")
    n_thumbs = widget(lab, 0).locator(".nbviz-confusion__thumb").count()
    expected = int(lab.python(f"print(len(cm.examples({r}, {c})))"))
    assert n_thumbs == expected == min(16, m[r][c])
    noun = "sample" if m[r][c] == 1 else "samples"
    assert f"{m[r][c]} {noun}," in gallery.inner_text()

    # --- the epoch slider goes back to epoch 1 -----------------------------------------
    slider.fill("1")
    lab.page.wait_for_function(
        "(el) => el.dataset.epoch === 'epoch 1'", arg=widget(lab, 0).element_handle()
    )
    assert drawn_table(lab, 0) == state["first"]
    assert lab.kernel_messages_sent("comm_msg") == 0
    slider.fill(str(state["epochs"]))  # back to the latest for the pictures

    # --- pictures, light and dark: the hostile name as text, and the README's ---------------
    lab.page.mouse.move(0, 0)  # no tooltip over the matrix
    lab.page.set_viewport_size({"width": 1280, "height": 1300})  # the whole widget in view
    widget(lab, 0).scroll_into_view_if_needed()
    lab.screenshot(widget(lab, 0), "confusion-hostile-light")
    lab.run_cell(2)  # the same run, with the data set's class names
    lab.wait_cell(2)
    widget(lab, 2).wait_for(state="visible")
    lab.page.wait_for_function(
        "([el, n]) => el.dataset.total === String(n)",
        arg=[widget(lab, 2).element_handle(), sum(map(sum, state["matrix"]))],
    )
    assert drawn_table(lab, 2) == state["matrix"]  # fed the same batches
    lab.page.mouse.click(*cell_point(lab, 2, r, c))  # the most confused pair's examples
    widget(lab, 2).locator(".nbviz-confusion__gallery").wait_for(state="visible")
    lab.page.mouse.move(0, 0)
    widget(lab, 2).scroll_into_view_if_needed()
    shots = {"light": lab.screenshot(widget(lab, 2), "confusion-light")}
    lab.set_theme("dark")
    lab.page.wait_for_timeout(300)  # one animation frame for the canvas to redraw in the new theme
    shots["dark"] = lab.screenshot(widget(lab, 2), "confusion-dark")
    widget(lab, 0).scroll_into_view_if_needed()
    lab.screenshot(widget(lab, 0), "confusion-hostile-dark")
    if os.environ.get("NBVIZ_UPDATE_DOCS"):  # refresh the README's pictures
        for theme, path in shots.items():
            shutil.copy(path, DOCS / f"confusion-{theme}.png")
    assert dialogs == []  # nothing in a class name ever ran


def test_thousand_classes_render_and_hover(lab: Lab):
    setup = """
import torch, nbviz
g = torch.Generator().manual_seed(0)
big = nbviz.ConfusionMatrix(num_classes=1000)
for _ in range(40):
    y = torch.randint(0, 1000, (512,), generator=g)
    logits = torch.randn(512, 1000, generator=g)
    logits[torch.arange(512), y] += 3.0  # mostly right
    big.update(logits, y)
big.end_epoch()
big
"""
    lab.open_notebook("big.ipynb", [setup])
    lab.run_cell(0)
    lab.wait_cell(0)
    w = widget(lab, 0)
    lab.page.wait_for_function("(el) => el.dataset.total === '20480'", arg=w.element_handle())
    g = geometry(lab, 0)
    assert g["k"] == 1000 and g["cell"] > 0
    lab.page.mouse.move(*cell_point(lab, 0, 500, 500))
    tip = w.locator(".nbviz-confusion__tooltip")
    tip.wait_for(state="visible")
    # cells are under a pixel wide here, so the mouse lands within one cell of the aim
    assert re.search(r"true: (499|500|501)\npredicted: (499|500|501)\n", tip.inner_text())
    print(f"draw time at K=1000: {w.get_attribute('data-draw-ms')} ms")
    lab.screenshot(w, "confusion-1000")


LONG = [f"handwritten digit sample of class {w}" for w in ("three", "seven", "eight", "nine")]


def test_long_class_names_and_one_sample(lab: Lab):
    """Names sharing a long prefix stay distinguishable; one sample reads "1 sample"."""
    setup = f"""
import torch, nbviz
names = {LONG!r}
cm = nbviz.ConfusionMatrix(classes=names)
cm.update(torch.tensor([1]), torch.tensor([1]))  # one sample: true seven, predicted seven
cm.end_epoch()
cm
"""
    lab.open_notebook("names.ipynb", [setup])
    lab.run_cell(0)
    lab.wait_cell(0)
    w = widget(lab, 0)
    lab.page.wait_for_function("(el) => el.dataset.total === '1'", arg=w.element_handle())
    assert "1 sample ·" in w.locator(".nbviz-confusion__stats").inner_text()
    assert "1 samples" not in w.inner_text()

    for axis in ("row", "col"):
        labels = w.locator(f".nbviz-confusion__label--{axis}")
        assert labels.count() == len(LONG)
        texts = [labels.nth(k).inner_text() for k in range(len(LONG))]
        titles = [labels.nth(k).get_attribute("title") for k in range(len(LONG))]
        assert titles == LONG  # the full name on hover
        assert len(set(texts)) == len(LONG), texts  # distinguishable on screen
        for text, name in zip(texts, LONG, strict=True):
            assert "…" in text and text.endswith(name.split()[-1]), (text, name)
    # The row labels sit beside their rows, inside the widget, readable width.
    box = w.locator(".nbviz-confusion__label--row").first.bounding_box()
    assert box["x"] >= w.bounding_box()["x"] and box["width"] > 40

    # The one cell's gallery says "1 sample" too.
    lab.page.mouse.click(*cell_point(lab, 0, 1, 1))
    gallery = w.locator(".nbviz-confusion__gallery")
    gallery.wait_for(state="visible")
    assert ": 1 sample," in gallery.inner_text()
    lab.page.mouse.move(0, 0)
    lab.screenshot_themes(w, "confusion-long-names")
