"""From a wrong cell to why, in a real JupyterLab: a confusion matrix given the model
shows, for a clicked example, where the model looked for the true class and for the
predicted one; the maps were sent ahead, so this works while the kernel is busy and sends
it nothing. An example whose maps have not come yet says when they will, and they come
when the cell ends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .lab import Lab

SETUP = """
import json, os, time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=1200, size=64, seed=0)
images, labels, masks = data.images, data.labels, data.masks
model = SmallCNN(num_classes=len(data.classes))
train(model, images[:1000], labels[:1000], epochs=7)   # about 80 %: a few mistakes to explain
cm = nbviz.ConfusionMatrix(data.classes, model=model, title="Held-out shapes")

def one_epoch():
    model.eval()
    with torch.no_grad():
        for i in range(1000, 1200, 40):
            cm.update(model(images[i:i+40]), labels[i:i+40], images[i:i+40], masks=masks[i:i+40])
    cm.end_epoch()
cm
"""
EVALUATE = "one_epoch()"
BUSY = """
while not os.path.exists("stop-why"):   # the kernel is busy (a long cell)
    time.sleep(0.05)
"""
NEXT_EPOCH = """
one_epoch()   # a new epoch: a new sample of examples, explained when this cell ends
while not os.path.exists("stop-why-2"):
    time.sleep(0.05)
"""

ROOT = ".nbviz-confusion"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def widget(lab: Lab):
    return lab.cell_output(0).locator(ROOT)


def cell_point(lab: Lab, r: int, c: int) -> tuple[float, float]:
    overlay = widget(lab).locator(".nbviz-confusion__overlay")
    g = json.loads(overlay.get_attribute("data-geometry"))
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    return box["x"] + g["x0"] + (c + 0.5) * g["cell"], box["y"] + g["y0"] + (r + 0.5) * g["cell"]


def pixels(lab: Lab, n: int) -> str:
    return widget(lab).locator(".nbviz-confusion__why-map").nth(n).evaluate("(c) => c.toDataURL()")


def test_a_wrong_cell_leads_to_where_the_model_looked(lab: Lab):
    lab.open_notebook("why.ipynb", [SETUP, EVALUATE, BUSY, NEXT_EPOCH])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=180)
    widget(lab).wait_for(state="visible")
    lab.run_cell(1)
    lab.wait_cell(1, timeout=120)  # its end computed the maps of every kept example
    state = json.loads(
        lab.python(
            "print(json.dumps({'matrix': cm.history[-1].tolist(),"
            " 'explained': len(cm.cam_ids), 'kept': len(cm.examples_ids)}))"
        )
    )
    assert state["explained"] == state["kept"] > 0
    m = state["matrix"]
    K = len(m)
    r, c = max(
        ((r, c) for r in range(K) for c in range(K) if r != c), key=lambda rc: m[rc[0]][rc[1]]
    )
    assert m[r][c] > 0, "the model makes no mistake to explain: train it less"
    lab.page.wait_for_function(
        "([el, n]) => el.dataset.total === String(n)",
        arg=[widget(lab).element_handle(), sum(map(sum, m))],
    )

    # --- the kernel is busy: cell -> example -> both maps, with no message to it -------
    lab.run_cell(2)  # returns once the kernel is busy with it
    lab.start_counting_kernel_messages()
    lab.page.mouse.click(*cell_point(lab, r, c))
    buttons = widget(lab).locator(".nbviz-confusion__thumb-button")
    buttons.first.wait_for(state="visible")
    assert buttons.count() == min(16, m[r][c])
    buttons.first.click()
    why = widget(lab).locator(".nbviz-confusion__why")
    why.wait_for(state="visible")
    maps = widget(lab).locator(".nbviz-confusion__why-map")
    assert maps.nth(0).is_visible() and maps.nth(1).is_visible()
    captions = widget(lab).locator(".nbviz-confusion__why-caption")
    true_caption, pred_caption = captions.nth(0).inner_text(), captions.nth(1).inner_text()
    assert true_caption.startswith("true: ") and pred_caption.startswith("predicted: ")
    assert "Grad-CAM: true" in why.locator(".nbviz-confusion__why-label").inner_text()
    first = pixels(lab, 0), pixels(lab, 1)
    assert first[0] != first[1]  # the true class's map is not the predicted class's
    # the layer slider walks the layers; the outline toggle draws the mask or not
    slider = widget(lab).locator(".nbviz-confusion__why-layer")
    slider.fill("0")
    lab.page.wait_for_function(
        "(el) => el.textContent.startsWith('features.block1.conv')",
        arg=widget(lab).locator(".nbviz-confusion__why-layer-name").element_handle(),
    )
    assert pixels(lab, 0) != first[0]
    with_outline = pixels(lab, 0)
    widget(lab).locator(".nbviz-confusion__why-controls input[type=checkbox]").uncheck()
    assert pixels(lab, 0) != with_outline
    widget(lab).locator(".nbviz-confusion__why-controls input[type=checkbox]").check()
    slider.press("End")  # back to the deepest layer, for the pictures
    assert lab.cell_running(2)
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone
    lab.page.set_viewport_size({"width": 1280, "height": 1700})  # the whole widget in view
    widget(lab).scroll_into_view_if_needed()
    lab.page.mouse.move(0, 0)
    shots = {"light": lab.screenshot(widget(lab), "confusion-why-light")}
    lab.set_theme("dark")
    lab.page.wait_for_timeout(300)  # a frame to redraw in the new theme
    shots["dark"] = lab.screenshot(widget(lab), "confusion-why-dark")
    lab.set_theme("light")
    if os.environ.get("NBVIZ_UPDATE_DOCS"):  # refresh the README's pictures
        for theme, path in shots.items():
            shutil.copy(path, DOCS / f"confusion-why-{theme}.png")

    # --- a new epoch's examples: no maps yet, the view says when they come -------------
    (Path(lab.root_dir) / "stop-why").write_text("")
    lab.wait_cell(2, timeout=60)
    lab.run_cell(3)
    # the open gallery shows the new sample (new examples: the chosen one left it)
    lab.page.wait_for_function(
        "(el) => (el.dataset.epoch || '').startsWith('epoch 2')",
        arg=widget(lab).element_handle(),
        timeout=120_000,
    )
    lab.page.wait_for_function(
        "(el) => el.querySelector('.nbviz-confusion__thumb-button') && !el.querySelector('.nbviz-confusion__why')",
        arg=widget(lab).element_handle(),
        timeout=30_000,
    )
    buttons.first.click()
    note = widget(lab).locator(".nbviz-confusion__why-note")
    lab.page.wait_for_function(
        "(el) => el.textContent.includes('when the running cell ends')", arg=note.element_handle()
    )
    assert not maps.nth(0).is_visible()
    (Path(lab.root_dir) / "stop-why-2").write_text("")
    lab.wait_cell(3, timeout=120)
    maps.nth(0).wait_for(state="visible", timeout=60_000)  # they came with the cell's end
    assert lab.python("print(len(cm.cam_ids) == len(cm.examples_ids))").strip() == "True"


# A script in another process records a run with its examples' inputs and saves its model.
SCRIPT = """
import os, time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=400, size=32, seed=1)
model = SmallCNN(num_classes=6, width=8)
train(model, data.images[:300], data.labels[:300], epochs=2)
model.eval()
torch.save(model.state_dict(), "runs/why-model.pt")
cm = nbviz.ConfusionMatrix(classes=data.classes, logdir="runs/why", keep_inputs=True, seed=0)
for epoch in range(2):
    with torch.no_grad():
        x, y, m = data.images[300:], data.labels[300:], data.masks[300:]
        cm.update(model(x), y, x, masks=m)
    cm.end_epoch()   # the epoch's examples are recorded with their inputs
    while epoch == 0 and not os.path.exists("why-epoch-2"):
        time.sleep(0.05)   # the notebook looks at epoch 1 first
cm.close_log()
"""
FOLLOW = """
import json, torch, nbviz
from nbviz.examples import SmallCNN
model = SmallCNN(num_classes=6, width=8)
model.load_state_dict(torch.load("runs/why-model.pt"))
run = nbviz.follow("runs/why", interval=0.2)
run
"""


def test_a_followed_run_explains_a_clicked_cell_in_the_free_kernel(lab: Lab):
    root = Path(lab.root_dir)
    (root / "runs").mkdir(exist_ok=True)
    (root / "why_script.py").write_text(SCRIPT)
    script = subprocess.Popen([sys.executable, "why_script.py"], cwd=root)
    try:
        followed_run_explained_on_click(lab, root)
    finally:
        (root / "why-epoch-2").write_text("")
        script.wait(timeout=120)


def followed_run_explained_on_click(lab: Lab, root: Path) -> None:
    lab.open_notebook("why-followed.ipynb", [FOLLOW, "run.confusion.explain(model)"])
    while not (root / "runs" / "why-model.pt").exists():
        lab.page.wait_for_timeout(100)  # the script is still training
    lab.run_cell(0)
    lab.wait_cell(0)
    view = lab.cell_output(0).locator(ROOT)
    view.wait_for(state="visible", timeout=60_000)
    lab.page.wait_for_function(
        "(el) => (el.dataset.epoch || '').startsWith('epoch 1')",
        arg=view.element_handle(),
        timeout=60_000,
    )
    lab.run_cell(1)  # the model (the script's checkpoint): epoch 1's maps, computed now
    lab.wait_cell(1)
    explained = int(lab.python("print(len(run.confusion._maps.maps))"))
    assert explained > 0
    first_ids = int(lab.python("print(max(run.confusion.examples_ids))"))
    # epoch 2 arrives: new examples (new ids), no maps yet
    (root / "why-epoch-2").write_text("")
    lab.page.wait_for_function(
        "(el) => (el.dataset.epoch || '').startsWith('epoch 2')",
        arg=view.element_handle(),
        timeout=60_000,
    )
    while lab.python(f"print(min(run.confusion.examples_ids) > {first_ids})").strip() != "True":
        lab.page.wait_for_timeout(100)  # the examples record comes after the counts
    state = json.loads(lab.python("print(json.dumps(run.confusion.history[-1].tolist()))"))
    assert int(lab.python("print(len(run.confusion._maps.maps))")) == 0  # epoch 1's left
    r, c = max(((r, c) for r in range(6) for c in range(6)), key=lambda rc: state[rc[0]][rc[1]])
    overlay = view.locator(".nbviz-confusion__overlay")
    g = json.loads(overlay.get_attribute("data-geometry"))
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    lab.start_counting_kernel_messages()
    x, y = box["x"] + g["x0"] + (c + 0.5) * g["cell"], box["y"] + g["y0"] + (r + 0.5) * g["cell"]
    lab.page.mouse.click(x, y)
    lab.page.wait_for_function(
        "([el, n]) => Number(el.querySelector('.nbviz-confusion__thumb-button')?.dataset.example) > n",
        arg=[view.element_handle(), first_ids],
    )
    view.locator(".nbviz-confusion__thumb-button").first.click()
    # the free kernel computes that cell's maps on the click, and they arrive
    view.locator(".nbviz-confusion__why-map").first.wait_for(state="visible", timeout=60_000)
    assert lab.kernel_messages_sent("comm_msg") == 1
    computed = json.loads(
        lab.python(
            "print(json.dumps(sorted(set(int(c) for i, c in zip(run.confusion.examples_ids,"
            " run.confusion.examples_cells) if int(i) in run.confusion._maps.maps))))"
        )
    )
    assert computed == [r * 6 + c]  # that cell's examples, not all of them
    lab.python("run.close()")
