"""GradCAM explorer in a real JupyterLab: every control repaints from data
already in the browser, while another cell keeps the kernel busy."""

from __future__ import annotations

import json
from pathlib import Path

from .lab import Lab

EVIL = "<img src=x onerror=alert(1)>"
ROOT = ".nbviz-gradcam"

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
    return widget(lab).locator(".nbviz-gradcam__canvas").evaluate("(c) => c.toDataURL()")


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
    assert w.locator(".nbviz-gradcam__title").inner_text() == "Where does the SmallCNN look?"
    assert w.locator(".nbviz-gradcam__thumb").count() == 8
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
    layer_name = w.locator(".nbviz-gradcam__layer-name")
    assert layer_name.inner_text().startswith(facts["layers"][-1])
    changes(lab, lambda: drag(lab, ".nbviz-gradcam__layer", 1.0, 0.0))
    assert layer_name.inner_text().startswith(facts["layers"][0])
    changes(lab, lambda: drag(lab, ".nbviz-gradcam__layer", 0.0, 0.5))
    changes(lab, lambda: drag(lab, ".nbviz-gradcam__opacity", 0.5, 0.95))
    changes(lab, lambda: drag(lab, ".nbviz-gradcam__threshold", 0.0, 0.6))
    changes(lab, lambda: drag(lab, ".nbviz-gradcam__threshold", 0.6, 0.1))
    changes(lab, lambda: w.locator(".nbviz-gradcam__method").select_option("gradcam++"))
    changes(lab, lambda: w.locator(".nbviz-gradcam__method").select_option("saliency"))
    assert w.locator(".nbviz-gradcam__layer").is_disabled()  # one "layer": the input
    changes(lab, lambda: w.locator(".nbviz-gradcam__method").select_option("layercam"))
    changes(lab, lambda: w.locator(".nbviz-gradcam__cmap").select_option("viridis"))
    changes(lab, lambda: w.locator(".nbviz-gradcam__mask").check())
    changes(lab, lambda: w.locator(".nbviz-gradcam__choice").nth(1).click())
    changes(lab, lambda: w.locator(".nbviz-gradcam__thumb").nth(3).click())
    assert w.locator(".nbviz-gradcam__thumb").nth(3).get_attribute("aria-selected") == "true"

    # The hostile class name (image 1's true class) is text, never markup.
    changes(lab, lambda: w.locator(".nbviz-gradcam__thumb").nth(0).click())
    assert EVIL in w.locator(".nbviz-gradcam__classes").inner_text()
    assert w.locator("img").count() == 0

    # The agreement chart: a bar per layer; clicking one picks that layer.
    bars = w.locator(".nbviz-gradcam__bar-rect")
    assert bars.count() == len(facts["layers"])
    changes(lab, lambda: bars.nth(1).click())
    assert layer_name.inner_text().startswith(facts["layers"][1])
    assert "best:" in w.locator(".nbviz-gradcam__note").inner_text()
    w.locator(".nbviz-gradcam__metric").select_option("2")  # IoU: the chart redraws

    assert float(w.get_attribute("data-paint-ms")) >= 0
    assert lab.cell_running(1), "the busy cell ended before the interactions"
    assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser alone
    (Path(lab.root_dir) / "stop-gradcam").write_text("")
    lab.wait_cell(1, timeout=60)

    # --- pictures, light and dark ------------------------------------------------------
    w.locator(".nbviz-gradcam__method").select_option("gradcam")
    drag(lab, ".nbviz-gradcam__layer", 0.0, 0.75)
    drag(lab, ".nbviz-gradcam__threshold", 0.1, 0.0)
    drag(lab, ".nbviz-gradcam__opacity", 0.99, 0.6)
    w.locator(".nbviz-gradcam__choice").nth(0).click()
    lab.page.mouse.move(0, 0)
    lab.page.set_viewport_size({"width": 1280, "height": 1100})
    lab.screenshot_themes(w, "gradcam")
    assert dialogs == []
