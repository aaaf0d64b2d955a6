"""GradCAM explorer in a real JupyterLab: every control repaints from data
already in the browser, while another cell keeps the kernel busy."""

from __future__ import annotations

import json
from pathlib import Path

from .lab import Lab

EVIL = "<img src=x onerror=alert(1)>"
ROOT = ".nbviz-cam"

SETUP = f"""
import json, os, time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=900, seed=0)
classes = list(data.classes)
classes[0] = {EVIL!r}   # a hostile class name must show as text
model = SmallCNN(num_classes=len(classes))
train(model, data.images[:800], data.labels[:800], epochs=3, seed=0)
test = torch.arange(800, 900)
pick = torch.cat([test[data.labels[test] == 0][:1], test[data.labels[test] != 0][:7]])
cam = nbviz.GradCAM(model, data.images[pick], labels=data.labels[pick], masks=data.masks[pick],
                    classes=classes, title="Where does the SmallCNN look?")
cam
"""

BUSY = """
while not os.path.exists("stop-gradcam"):
    time.sleep(0.05)
"""


def widget(lab: Lab):
    return lab.cell_output(0).locator(ROOT)


def pixels(lab: Lab) -> str:
    return widget(lab).locator(".nbviz-cam__canvas").evaluate("(c) => c.toDataURL()")


def drag(lab: Lab, selector: str, start: float, end: float) -> None:
    """Press on a slider at fraction ``start`` of its width and drag to ``end``."""
    slider = widget(lab).locator(selector)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    lab.page.mouse.move(box["x"] + 2 + start * (box["width"] - 4), y)
    lab.page.mouse.down()
    for i in range(1, 9):
        f = start + (end - start) * i / 8
        lab.page.mouse.move(box["x"] + 2 + f * (box["width"] - 4), y)
    lab.page.mouse.up()


def changes(lab: Lab, action) -> None:
    """``action`` must repaint the canvas with different pixels."""
    before, paints = pixels(lab), widget(lab).get_attribute("data-paints")
    action()
    lab.page.wait_for_function(
        "([el, n]) => el.dataset.paints !== n", arg=[widget(lab).element_handle(), paints]
    )
    assert pixels(lab) != before


def test_gradcam_explorer_in_jupyterlab(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("gradcam.ipynb", [SETUP, BUSY])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)
    widget(lab).wait_for(state="visible")
    w = widget(lab)
    assert w.locator(".nbviz-cam__title").inner_text() == "Where does the SmallCNN look?"
    assert w.locator(".nbviz-cam__thumb").count() == 8
    facts = json.loads(
        lab.python(
            "print(json.dumps({'layers': cam.results[0].layers, "
            "'methods': [r.method for r in cam.results]}))"
        )
    )

    # --- everything below happens while another cell keeps the kernel busy ------------
    lab.run_cell(1)
    lab.page.wait_for_function("() => true")
    assert lab.cell_running(1)
    lab.start_counting_kernel_messages()

    # The view opens on the deepest layer; drag the layer slider to the shallowest.
    layer_name = w.locator(".nbviz-cam__layer-name")
    assert layer_name.inner_text().startswith(facts["layers"][-1])
    changes(lab, lambda: drag(lab, ".nbviz-cam__layer", 1.0, 0.0))
    assert layer_name.inner_text().startswith(facts["layers"][0])
    changes(lab, lambda: drag(lab, ".nbviz-cam__layer", 0.0, 0.5))
    chosen = layer_name.inner_text().split(" · ")[0]
    assert chosen in facts["layers"][1:-1]
    changes(lab, lambda: drag(lab, ".nbviz-cam__opacity", 0.5, 0.95))
    changes(lab, lambda: drag(lab, ".nbviz-cam__threshold", 0.0, 0.6))
    changes(lab, lambda: drag(lab, ".nbviz-cam__threshold", 0.6, 0.1))
    # Switching method keeps the chosen layer (CAM methods share their layers) ...
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("gradcam++"))
    assert layer_name.inner_text().split(" · ")[0] == chosen
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("saliency"))
    assert w.locator(".nbviz-cam__layer").is_disabled()  # one "layer": the input
    assert layer_name.inner_text().startswith("input")
    # ... and an input-gradient method in between does not forget it.
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("layercam"))
    assert layer_name.inner_text().split(" · ")[0] == chosen
    assert w.locator(".nbviz-cam__layer").input_value() == str(facts["layers"].index(chosen))
    changes(lab, lambda: w.locator(".nbviz-cam__cmap").select_option("viridis"))
    changes(lab, lambda: w.locator(".nbviz-cam__mask").check())
    changes(lab, lambda: w.locator(".nbviz-cam__choice").nth(1).click())
    changes(lab, lambda: w.locator(".nbviz-cam__thumb").nth(3).click())
    assert w.locator(".nbviz-cam__thumb").nth(3).get_attribute("aria-selected") == "true"

    # The hostile class name (image 1's true class) is text, never markup.
    changes(lab, lambda: w.locator(".nbviz-cam__thumb").nth(0).click())
    assert EVIL in w.locator(".nbviz-cam__classes").inner_text()
    assert w.locator("img").count() == 0

    # The agreement chart: a bar per layer; clicking one picks that layer.
    bars = w.locator(".nbviz-cam__bar-rect")
    assert bars.count() == len(facts["layers"])
    changes(lab, lambda: bars.nth(1).click())
    assert layer_name.inner_text().startswith(facts["layers"][1])
    assert "best:" in w.locator(".nbviz-cam__note").inner_text()
    w.locator(".nbviz-cam__metric").select_option("2")  # IoU: the chart redraws

    assert float(w.get_attribute("data-paint-ms")) >= 0
    assert lab.cell_running(1), "the busy cell ended before the interactions"
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone
    (Path(lab.root_dir) / "stop-gradcam").write_text("")
    lab.wait_cell(1, timeout=60)

    # --- pictures, light and dark ------------------------------------------------------
    w.locator(".nbviz-cam__method").select_option("gradcam")
    drag(lab, ".nbviz-cam__layer", 0.0, 0.75)
    drag(lab, ".nbviz-cam__threshold", 0.1, 0.0)
    drag(lab, ".nbviz-cam__opacity", 0.99, 0.6)
    w.locator(".nbviz-cam__choice").nth(0).click()
    lab.page.mouse.move(0, 0)
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    lab.screenshot_themes(w, "gradcam")

    # A low-resolution map (the deepest block, 4x4) upsampled to the view: weak values
    # fade into the image instead of drawing dark or bright patches.
    lab.set_theme("light")
    drag(lab, ".nbviz-cam__layer", 0.75, 1.0)
    assert layer_name.inner_text() == f"{facts['layers'][-1]} · 4×4"
    w.locator(".nbviz-cam__cmap").select_option("inferno")  # the default colours
    lab.page.mouse.move(0, 0)
    lab.screenshot_themes(w, "gradcam-lowres")
    assert dialogs == []


SIGNED = """
import torch, nbviz
class Signed(torch.nn.Module):
    # Class 0 scores minus the mean of a ReLU layer, class 1 plus it: Grad-CAM's channel
    # weights for class 0 there are negative and its activations >= 0, so that map is
    # exactly zero; class 1's is not.
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=8, stride=8)  # 64x64 -> 8x8
        self.relu = torch.nn.ReLU()
    def forward(self, x):
        s = self.relu(self.conv(x)).mean(dim=(1, 2, 3))
        return torch.stack([-s, s], dim=1)
torch.manual_seed(0)
model = Signed()
with torch.no_grad():
    model.conv.bias.fill_(0.2)
data = nbviz.datasets.shapes(n=4, seed=0)
names = ["handwritten digit sample of class three", "handwritten digit sample of class seven"]
cam = nbviz.GradCAM(model, data.images, labels=[0, 1, 0, 1], classes=names,
                    layers=["conv", "relu"], title="A model with an empty map")
cam
"""
NAMES = ["handwritten digit sample of class three", "handwritten digit sample of class seven"]


def test_gradcam_empty_map_no_masks_and_long_class_names(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("gradcam-empty.ipynb", [SIGNED])
    lab.run_cell(0)
    lab.wait_cell(0)
    widget(lab).wait_for(state="visible")
    w = widget(lab)
    note = w.locator(".nbviz-cam__empty")

    # No masks were given: no mask control at all (and no agreement chart).
    assert not w.locator(".nbviz-cam__check").is_visible()
    assert not w.locator(".nbviz-cam__mask").is_visible()
    assert not w.locator(".nbviz-cam__agreement").is_visible()

    # Long names sharing a prefix: shortened, still distinguishable, full name on hover.
    shown = w.locator(".nbviz-cam__cls")
    assert shown.count() == 2
    texts = [shown.nth(i).inner_text() for i in range(2)]
    titles = [shown.nth(i).get_attribute("title") for i in range(2)]
    assert titles == [NAMES[1], NAMES[0]]  # #1 is "seven": the model's top class
    assert texts[0] != texts[1]
    for text, title in zip(texts, titles, strict=True):
        assert "…" in text and len(text) < len(title)
        assert text.startswith("handwritten") and text.endswith(title.split()[-1])

    # The view opens on the deepest layer (relu) explaining "seven": a map, no note.
    assert w.locator(".nbviz-cam__layer-name").inner_text().startswith("relu")
    assert not note.is_visible()
    assert w.get_attribute("data-empty") == "false"

    # "three" at relu is all zero: the plain image, and words saying why.
    changes(lab, lambda: w.locator(".nbviz-cam__choice").nth(1).click())
    note.wait_for(state="visible")
    text = note.inner_text()
    assert f"no positive evidence for “{NAMES[0]}” at relu" in text
    assert "Grad-CAM keeps only the positive part" in text and "early in training" in text
    assert w.get_attribute("data-empty") == "true"
    # The canvas is the plain image: compare with the image scaled the same way.
    diff = lab.page.evaluate(
        """(root) => {
            const c = root.querySelector('.nbviz-cam__canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const th = root.querySelector('.nbviz-cam__thumb');
            const big = document.createElement('canvas');
            big.width = big.height = c.width;
            const g = big.getContext('2d');
            g.imageSmoothingEnabled = true;
            g.drawImage(th, 0, 0, c.width, c.height);
            const e = g.getImageData(0, 0, c.width, c.height).data;
            let diff = 0;
            for (let i = 0; i < d.length; i++) diff = Math.max(diff, Math.abs(d[i] - e[i]));
            return diff;
        }""",
        w.element_handle(),
    )
    assert diff <= 2, f"an empty map must show the plain image (max difference {diff})"
    lab.page.mouse.move(0, 0)
    lab.screenshot_themes(w, "gradcam-empty")

    # Back to "seven": the note goes away.
    changes(lab, lambda: w.locator(".nbviz-cam__choice").nth(0).click())
    note.wait_for(state="hidden")
    assert w.get_attribute("data-empty") == "false"
    assert dialogs == []
