"""GradCAM explorer in a real JupyterLab: every control repaints from data
already in the browser, while another cell keeps the kernel busy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def pixels_of(lab: Lab, root) -> str:
    return root.locator(".nbviz-cam__canvas").evaluate("(c) => c.toDataURL()")


def pixels(lab: Lab) -> str:
    return pixels_of(lab, widget(lab))


def drag_in(lab: Lab, root, selector: str, start: float, end: float) -> None:
    """Press on a slider of the widget ``root`` at fraction ``start`` of its width and
    drag to ``end``."""
    slider = root.locator(selector)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    lab.page.mouse.move(box["x"] + 2 + start * (box["width"] - 4), y)
    lab.page.mouse.down()
    for i in range(1, 9):
        f = start + (end - start) * i / 8
        lab.page.mouse.move(box["x"] + 2 + f * (box["width"] - 4), y)
    lab.page.mouse.up()


def drag(lab: Lab, selector: str, start: float, end: float) -> None:
    """``drag_in`` on the first explorer."""
    drag_in(lab, widget(lab), selector, start, end)


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


FAITHFUL = """
import json, os, time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=366, seed=0)
model = SmallCNN(num_classes=len(data.classes), width=8, depth=3)
train(model, data.images[:360], data.labels[:360], epochs=3, seed=0)
pick = torch.arange(360, 366)
cam = nbviz.GradCAM(model, data.images[pick], labels=data.labels[pick], masks=data.masks[pick],
                    classes=list(data.classes), methods=["gradcam", "saliency"], topk=1,
                    faithfulness=True, title="Does the map show what the model uses?")
cam
"""
FAITHFUL_BUSY = BUSY.replace("stop-gradcam", "stop-gradcam-faithful")
# What the selector offers, by option value (the metric's place in each image's scores).
METRIC_LABELS = {
    "1": "energy in mask",
    "0": "pointing game",
    "2": "IoU of top 15%",
    "3": "deletion AUC",
    "4": "insertion AUC",
    "5": "similarity to a randomised model",
}
BETTER = {"0": "higher", "1": "higher", "2": "higher", "3": "lower", "4": "higher", "5": "zero"}


def chart_facts(w) -> dict:
    """What the chart draws: the y axis's labels, the zero line, each bar's top and bottom."""
    return w.evaluate(
        """(root) => {
            const svg = root.querySelector('.nbviz-cam__chart svg');
            const zero = svg.querySelector('.nbviz-cam__grid--zero');
            return {
                yLabels: [...svg.querySelectorAll('text[text-anchor="end"]')].map((t) => t.textContent),
                zero: zero ? Number(zero.getAttribute('y1')) : null,
                bars: [...svg.querySelectorAll('.nbviz-cam__bar-rect')].map((r) => [
                    Number(r.getAttribute('y')),
                    Number(r.getAttribute('y')) + Number(r.getAttribute('height')),
                ]),
            };
        }"""
    )


def test_gradcam_faithfulness_metrics_in_jupyterlab(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("gradcam-faithful.ipynb", [FAITHFUL, FAITHFUL_BUSY])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)
    widget(lab).wait_for(state="visible")
    w = widget(lab)
    # Grad-CAM's layers and, per metric, the mean over images of column 0 (the top
    # prediction, shown first) per layer, from the numbers Python sent.
    facts = json.loads(
        lab.python(
            "import numpy as np\n"
            "rows = [e for e in cam.maps_index if e['method'] == 'gradcam']\n"
            "def mean(e, k):\n"
            "    v = [r[k] for r in e['agreement'][0] if r[k] is not None]\n"
            "    return float(np.mean(v)) if v else None\n"
            "print(json.dumps({'layers': [e['layer'] for e in rows], "
            "'means': {k: [mean(e, k) for e in rows] for k in range(6)}, "
            "'baseline': cam.faithfulness_settings['baseline']}))"
        )
    )
    assert facts["baseline"].startswith("blur (Gaussian, sigma 5 px")

    lab.run_cell(1)
    assert lab.cell_running(1)
    lab.start_counting_kernel_messages()

    metric = w.locator(".nbviz-cam__metric")
    options = metric.locator("option")
    offered = {options.nth(i).get_attribute("value"): options.nth(i).inner_text()
               for i in range(options.count())}  # fmt: skip
    assert offered == METRIC_LABELS
    assert metric.input_value() == "1"  # energy in mask first, as before
    title, better = w.locator(".nbviz-cam__chart-title"), w.locator(".nbviz-cam__better")
    note = w.locator(".nbviz-cam__note").first
    for value in ["3", "4", "5", "0", "2", "1"]:
        metric.select_option(value)
        head = title.inner_text()
        assert ("human mask" in head) == (value in "012"), head
        word = {"higher": "higher is better", "lower": "lower is better", "zero": "nearer 0"}
        assert word[BETTER[value]] in better.inner_text()
        chart = chart_facts(w)
        if value == "5":  # a rank correlation: -1 .. 1, bars from the zero line
            assert chart["yLabels"] == ["-1", "-0.5", "0", "0.5", "1"]
        else:
            assert chart["yLabels"] == ["0", "0.5", "1"] and chart["zero"] is None
        means = facts["means"][value]
        assert len(chart["bars"]) == len(facts["layers"]) == len(means)
        base = chart["zero"] if value == "5" else chart["bars"][0][1]
        for (top, bottom), m in zip(chart["bars"], means, strict=True):
            if m is None or m == 0:
                assert top == bottom  # nothing to draw
            elif m > 0:
                assert bottom == pytest.approx(base) and top < bottom
            else:
                assert top == pytest.approx(base) and bottom > top  # below the zero line
        # A layer without a value (all its maps empty) says so instead of showing a zero.
        assert w.locator(".nbviz-cam__na").count() == sum(m is None for m in means)
        # The "best" layer follows the metric's direction.
        key = {"higher": lambda v: -v, "lower": lambda v: v, "zero": abs}[BETTER[value]]
        known = [(key(m), i) for i, m in enumerate(means) if m is not None]
        best = facts["layers"][min(known)[1]]
        assert note.inner_text().startswith(f"best: {best} ("), (value, note.inner_text())
        about = w.locator(".nbviz-cam__metric-note")
        if value in "34":
            assert facts["baseline"] in about.inner_text() and "10 steps" in about.inner_text()
        elif value == "5":
            assert "Spearman" in about.inner_text() and "re-initialised" in about.inner_text()
        else:
            assert about.count() == 0
    # Clicking a bar still picks its layer.
    changes(lab, lambda: w.locator(".nbviz-cam__bar-hit").nth(0).click())
    assert w.locator(".nbviz-cam__layer-name").inner_text().startswith(facts["layers"][0])
    # Saliency has one "layer": one bar, the chart still there.
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("saliency"))
    metric.select_option("3")
    assert w.locator(".nbviz-cam__bar-rect").count() == 1
    assert lab.cell_running(1), "the busy cell ended before the interactions"
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone
    (Path(lab.root_dir) / "stop-gradcam-faithful").write_text("")
    lab.wait_cell(1, timeout=60)

    # --- pictures, light and dark: deletion AUC, then the randomised-model similarity ----
    w.locator(".nbviz-cam__method").select_option("gradcam")
    drag(lab, ".nbviz-cam__layer", 0.0, 0.6)
    lab.page.mouse.move(0, 0)
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    lab.screenshot_themes(w, "gradcam-deletion")
    lab.set_theme("light")
    metric.select_option("5")
    lab.page.mouse.move(0, 0)
    lab.screenshot_themes(w, "gradcam-randomised")
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


VIT = """
import json, torch, nbviz
from transformers import ViTConfig, ViTForImageClassification
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=6, seed=0)
cfg = ViTConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=4,
                num_attention_heads=4, intermediate_size=64, num_labels=len(data.classes))
model = ViTForImageClassification(cfg).eval()   # untrained: the view is what is tested
cam = nbviz.GradCAM(model, {"pixel_values": data.images}, labels=data.labels, masks=data.masks,
                    classes=list(data.classes), methods=["gradcam", "layercam", "rollout"],
                    title="A Hugging Face ViT")
cam
"""


def test_gradcam_explorer_on_a_hugging_face_vit(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("gradcam-vit.ipynb", [VIT])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)
    widget(lab).wait_for(state="visible")
    w = widget(lab)
    blocks = [f"vit.layers.{i}" for i in range(4)]
    facts = json.loads(
        lab.python(
            "print(json.dumps({'layers': cam.results[0].layers, "
            "'silent': list(cam.results[0].no_gradient)}))"
        )
    )
    assert facts == {"layers": blocks, "silent": ["vit.layers.3"]}
    layer_name = w.locator(".nbviz-cam__layer-name")
    note = w.locator(".nbviz-cam__empty")
    # It opens on the deepest block with a map: after the last one the head reads only the
    # class token, so no gradient reaches that block's patch tokens.
    assert layer_name.inner_text() == "vit.layers.2 · 8×8"
    assert not note.is_visible()
    assert not w.locator(".nbviz-cam__slice").is_visible()  # images: no slice slider
    changes(lab, lambda: drag(lab, ".nbviz-cam__layer", 0.66, 1.0))
    assert layer_name.inner_text().startswith("vit.layers.3")
    note.wait_for(state="visible")
    assert "does not depend on vit.layers.3" in note.inner_text()
    assert "class token" in note.inner_text()
    # Attention rollout at the same block: a map (rollout through all four attentions).
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("rollout"))
    assert layer_name.inner_text().startswith("vit.layers.3")
    note.wait_for(state="hidden")
    assert "Attention rollout at vit.layers.3" in w.locator(".nbviz-cam__caption").inner_text()
    changes(lab, lambda: drag(lab, ".nbviz-cam__layer", 1.0, 0.0))
    assert layer_name.inner_text().startswith("vit.layers.0")
    changes(lab, lambda: w.locator(".nbviz-cam__method").select_option("gradcam"))
    changes(lab, lambda: drag(lab, ".nbviz-cam__layer", 0.0, 0.66))
    assert layer_name.inner_text().startswith("vit.layers.2")
    assert w.locator(".nbviz-cam__bar-rect").count() == 4  # the agreement chart: a bar a block
    changes(lab, lambda: w.locator(".nbviz-cam__mask").check())
    lab.page.mouse.move(0, 0)
    lab.screenshot_themes(w, "gradcam-vit")
    assert dialogs == []


SIGNALS_AND_VOLUMES = """
import json, math, torch, nbviz
from torch import nn
torch.manual_seed(0)

# Signals: a burst in channel 0 at the start, middle or end (the class); a slow wave in
# channel 1. The model is built, not trained: a matched filter, then one region per class.
L = 256
t = torch.arange(L).float()
y = torch.tensor([0, 1, 2, 1, 0, 2])
centre = (y.float() * 0.3 + 0.2) * L
signals = torch.randn(6, 2, L) * 0.25
signals[:, 0] += 2 * torch.exp(-((t - centre[:, None]) / 8) ** 2) * torch.sin(t / 2)
signals[:, 1] += torch.sin(t / 20 + torch.arange(6.0)[:, None])
burst = torch.exp(-((torch.arange(15.0) - 7) / 8) ** 2)
bumps = nn.Sequential(nn.Conv1d(2, 2, 15, padding=7), nn.ReLU(inplace=True), nn.MaxPool1d(4),
                      nn.Flatten(), nn.Linear(2 * L // 4, 3))
with torch.no_grad():
    bumps[0].weight.zero_(); bumps[0].bias.zero_()
    for k, phase in enumerate((0.0, math.pi / 2)):
        bumps[0].weight[k, 0] = burst * torch.sin(torch.arange(15.0) / 2 + phase)
    region = ((torch.arange(L // 4) * 4.0)[None] // (L / 3)) == torch.arange(3.0)[:, None]
    bumps[4].weight.copy_(region.float().repeat(1, 2)); bumps[4].bias.zero_()
sig = nbviz.GradCAM(bumps, signals, labels=y, classes=["start", "middle", "end"],
                    layers=["0", "1", "2"], methods=["gradcam", "saliency"],
                    title="Where is the burst?")
sig
"""

VOLUME = """
# Volumes: a bright blob in the front, middle or back third of a 12 x 32 x 32 volume.
D = 12
z, yy, xx = torch.meshgrid(torch.arange(float(D)), torch.arange(32.0), torch.arange(32.0),
                           indexing="ij")
vy = torch.tensor([0, 2, 1, 0])
volumes = torch.rand(4, 1, D, 32, 32) * 0.3
for i, k in enumerate(vy.tolist()):
    cz, cy, cx = 2 + 4 * k, 8 + 5 * i, 20 - 3 * i
    volumes[i, 0] += torch.exp(-((z - cz) ** 2 + ((yy - cy) ** 2 + (xx - cx) ** 2) / 9) / 2)
blobs = nn.Sequential(nn.Conv3d(1, 1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool3d(2),
                      nn.Flatten(), nn.Linear(D // 2 * 16 * 16, 3))
with torch.no_grad():
    blobs[0].weight.fill_(1 / 27); blobs[0].bias.fill_(-0.3)
    third = (torch.arange(D // 2)[:, None, None].expand(D // 2, 16, 16) * 2 // 4).flatten()
    blobs[4].weight.copy_((third[None] == torch.arange(3)[:, None]).float()); blobs[4].bias.zero_()
vol = nbviz.GradCAM(blobs, volumes, labels=vy, classes=["front", "middle", "back"],
                    layers=["0", "2"], methods="gradcam", title="Which third holds the blob?")
vol
"""


def test_gradcam_explorer_on_signals_and_volumes(lab: Lab):
    dialogs = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open_notebook("gradcam-1d-3d.ipynb", [SIGNALS_AND_VOLUMES, VOLUME])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=300)
    lab.run_cell(1)
    lab.wait_cell(1, timeout=300)
    sig = lab.cell_output(0).locator(ROOT)
    vol = lab.cell_output(1).locator(ROOT)
    sig.wait_for(state="visible")
    vol.wait_for(state="visible")

    # --- a signal: curves over their map, the map as a band below -----------------------
    assert "nbviz-cam--signal" in sig.get_attribute("class")
    canvas = sig.locator(".nbviz-cam__canvas")
    assert canvas.evaluate("(c) => [c.width, c.height]") == [512, 196]
    assert sig.locator(".nbviz-cam__thumb").count() == 6
    assert not sig.locator(".nbviz-cam__slice").is_visible()
    assert sig.locator(".nbviz-cam__layer-name").inner_text() == "2 · 64"  # the pool, 256 / 4
    peaks = json.loads(
        lab.python(
            "r = sig.results[0]\n"
            "print(json.dumps([int(r.maps('2')[i].argmax()) for i in range(6)]))"
        )
    )
    band = """([root, x]) => {
        const c = root.querySelector('.nbviz-cam__canvas');
        return Array.from(c.getContext('2d').getImageData(x, 186, 1, 1).data.slice(0, 3));
    }"""
    for image in (0, 1):
        if image:
            sig.locator(".nbviz-cam__thumb").nth(1).click()
        x_peak = int((peaks[image] + 0.5) * 512 / 256)
        x_far = (x_peak + 256) % 512  # half the view away: outside the burst
        hot = lab.page.evaluate(band, [sig.element_handle(), x_peak])
        cold = lab.page.evaluate(band, [sig.element_handle(), x_far])
        background = lab.page.evaluate(band, [sig.element_handle(), 0])
        # The map's peak is coloured (inferno's top: bright yellow), far from it the band
        # fades into the background.
        assert hot != cold and sum(hot) > 400, (hot, cold)
        assert max(abs(a - b) for a, b in zip(cold, background, strict=True)) < 40
    caption = sig.locator(".nbviz-cam__caption").inner_text()
    assert caption.startswith("signal 2 of 6, true class middle")
    with_band = pixels_of(lab, sig)
    drag_in(lab, sig, ".nbviz-cam__threshold", 0.0, 0.9)
    assert pixels_of(lab, sig) != with_band
    drag_in(lab, sig, ".nbviz-cam__threshold", 0.9, 0.0)
    sig.locator(".nbviz-cam__method").select_option("saliency")
    assert sig.locator(".nbviz-cam__layer-name").inner_text() == "input · 256"
    sig.locator(".nbviz-cam__method").select_option("gradcam")

    # --- a volume: one slice at a time ---------------------------------------------------
    assert vol.locator(".nbviz-cam__slice").is_visible()
    assert vol.locator(".nbviz-cam__slice-name").inner_text() == "7 of 12"
    assert vol.locator(".nbviz-cam__layer-name").inner_text() == "2 · 6×16×16"
    assert "slice 7 of 12" in vol.locator(".nbviz-cam__caption").inner_text()
    before = pixels_of(lab, vol)
    drag_in(lab, vol, ".nbviz-cam__slice", 0.55, 0.1)
    assert vol.locator(".nbviz-cam__slice-name").inner_text() == "2 of 12"
    assert pixels_of(lab, vol) != before
    drag_in(lab, vol, ".nbviz-cam__layer", 1.0, 0.0)
    assert vol.locator(".nbviz-cam__layer-name").inner_text() == "0 · 12×32×32"
    # Image 1 (blob in the back third, at slice 11): the map is hottest near that slice.
    vol.locator(".nbviz-cam__thumb").nth(1).click()
    hottest = lab.page.evaluate(
        """(root) => {
            const slider = root.querySelector('.nbviz-cam__slice');
            const canvas = root.querySelector('.nbviz-cam__canvas');
            const sums = [];
            for (let z = 0; z <= Number(slider.max); z++) {
                slider.value = String(z);
                slider.dispatchEvent(new Event('input'));
                const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let s = 0;
                for (let i = 0; i < px.length; i += 4) s += px[i] - px[i + 2];  // warm minus cool
                sums.push(s);
            }
            const hottest = sums.indexOf(Math.max(...sums));
            slider.value = String(hottest);  // the picture: the map's hottest slice
            slider.dispatchEvent(new Event('input'));
            return hottest;
        }""",
        vol.element_handle(),
    )
    assert hottest >= 8, hottest
    assert vol.locator(".nbviz-cam__slice-name").inner_text() == f"{hottest + 1} of 12"
    lab.page.mouse.move(0, 0)
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    lab.screenshot_themes(sig, "gradcam-signal")
    lab.set_theme("light")
    lab.screenshot_themes(vol, "gradcam-volume")
    assert dialogs == []
