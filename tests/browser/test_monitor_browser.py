"""nbviz.watch in a real JupyterLab: the dashboard grows while a training cell
runs, and its controls (smoothing, histogram layer, feature layer) act in the
browser alone."""

from __future__ import annotations

from pathlib import Path

from .lab import Lab

ROOT = ".nbviz-monitor"

SETUP = """
import os, torch, nbviz
import torch.nn.functional as F
from nbviz.examples import SmallCNN
torch.manual_seed(0)
torch.set_num_threads(1)
data = nbviz.datasets.shapes(n=640, size=32, seed=0)
model = SmallCNN(num_classes=6, width=8)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
mon = nbviz.watch(model, probe=data.images[:6], every=5, hist_every=10, features_every=20,
                  title="SmallCNN on shapes")
mon
"""

TRAIN = """
step = 0
while not os.path.exists("stop-monitor") and step < 20000:
    i = (step * 32) % 576
    x, y = data.images[i:i + 32], data.labels[i:i + 32]
    out = model(x)
    loss = F.cross_entropy(out, y)
    opt.zero_grad()
    loss.backward()
    mon.step(loss=loss, acc=(out.argmax(1) == y).float().mean())
    opt.step()
    if step % 25 == 24:
        with torch.no_grad():
            model.eval()
            v = model(data.images[576:])
            model.train()
        mon.log_val(loss=F.cross_entropy(v, data.labels[576:]),
                    acc=(v.argmax(1) == data.labels[576:]).float().mean())
    step += 1
"""


def widget(lab: Lab):
    return lab.cell_output(0).locator(ROOT)


def attr(lab: Lab, name: str) -> str:
    """``data-*`` attribute by its dataset name ("flowColumns" -> data-flow-columns)."""
    kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in name)
    return widget(lab).get_attribute(f"data-{kebab}") or ""


def wait_attr(lab: Lab, name: str, js_test: str, timeout: float = 60_000) -> None:
    lab.page.wait_for_function(
        f"(el) => {{ const v = el.dataset.{name}; return {js_test}; }}",
        arg=widget(lab).element_handle(),
        timeout=timeout,
    )


def smooth_path(lab: Lab, figure: int = 0) -> str:
    """The drawn path of a curve figure's smoothed training line (the second mark)."""
    return (
        lab.cell_output(0)
        .locator(".bqplot")
        .nth(figure)
        .evaluate(
            "(f) => [...f.querySelectorAll('path.line')].map((p) => p.getAttribute('d')).join('|')"
        )
    )


def test_training_monitor_in_jupyterlab(lab: Lab):
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))  # bqplot's axes throw here
    lab.open_notebook("monitor.ipynb", [SETUP, TRAIN])
    lab.run_cell(0)
    lab.wait_cell(0)
    widget(lab).wait_for(state="visible")
    assert lab.cell_output(0).get_by_text("SmallCNN on shapes").is_visible()

    lab.run_cell(1)
    # Curves and heat maps grow while the cell runs.
    wait_attr(lab, "curves", "v === '2'")
    seen = set()
    for _ in range(3):
        wait_attr(lab, "flowColumns", f"Number(v) > {max(seen, default=0)}")
        seen.add(int(attr(lab, "flowColumns")))
    assert len(seen) == 3
    wait_attr(lab, "hist", "v && v.length > 0")
    wait_attr(lab, "featureLayer", "v && v.length > 0")
    assert lab.cell_running(1)
    paths = smooth_path(lab)
    lab.page.wait_for_function(
        "([f, p]) => [...f.querySelectorAll('path.line')].map((x) => x.getAttribute('d')).join('|') !== p",
        arg=[lab.cell_output(0).locator(".bqplot").first.element_handle(), paths],
        timeout=30_000,
    )  # the loss curve itself moved: new steps arrived

    lab.start_counting_kernel_messages()
    w = widget(lab)
    # Smoothing: the smoothed curve is recomputed in the browser.
    before = smooth_path(lab)
    w.locator(".nbviz-monitor__smoothing").fill("0.95")
    wait_attr(lab, "smoothing", "v === '0.95'")
    assert smooth_path(lab) != before
    # Another histogram layer and kind; another feature-map layer.
    layers = w.locator(".nbviz-monitor__hist-layer option").all_inner_texts()
    assert len(layers) == 4
    w.locator(".nbviz-monitor__hist-layer").select_option(layers[-1])
    wait_attr(lab, "hist", f"v === '{layers[-1]}|weights'")
    w.locator(".nbviz-monitor__hist-kind").select_option("gradients")
    wait_attr(lab, "hist", f"v === '{layers[-1]}|gradients'")
    feature_layers = w.locator(".nbviz-monitor__feature-layer option").all_inner_texts()
    assert len(feature_layers) == 4
    w.locator(".nbviz-monitor__feature-layer").select_option(feature_layers[2])
    wait_attr(lab, "featureLayer", f"v === '{feature_layers[2]}'")
    assert w.locator(".nbviz-monitor__tile").count() == 16
    w.locator(".nbviz-monitor__log").check()
    lab.page.wait_for_function(
        "(f) => f.textContent.includes('log10 loss')",
        arg=lab.cell_output(0).locator(".bqplot").first.element_handle(),
    )
    before = smooth_path(lab)
    w.locator(".nbviz-monitor__window").select_option("100")
    assert smooth_path(lab) != before
    assert lab.cell_running(1), "training ended before the interactions"
    assert lab.kernel_messages_sent("comm_msg") == 0  # the browser alone

    (Path(lab.root_dir) / "stop-monitor").write_text("")
    lab.wait_cell(1, timeout=120)
    steps = int(lab.python("print(mon.watcher.steps)"))
    wait_attr(lab, "steps", f"v === '{steps}'")  # the end-of-cell flush shows the last step
    # max |g| is sampled every `every` steps: the note says at which step the ticks are.
    max_step = int(lab.python("print(mon.watcher.latest_max_step)"))
    assert max_step % 5 == 0 and steps - 5 <= max_step < steps  # every=5 above
    lab.page.wait_for_function(
        "(s) => document.body.textContent.includes(`tick: max |g| at step ${s}`)", arg=max_step
    )

    # --- pictures, light and dark ----------------------------------------------------------
    w.locator(".nbviz-monitor__log").uncheck()
    w.locator(".nbviz-monitor__window").select_option("0")
    w.locator(".nbviz-monitor__smoothing").fill("0.6")
    lab.page.set_viewport_size({"width": 1400, "height": 1400})
    out = lab.cell_output(0)
    lab.screenshot_themes(out, "monitor")
    assert errors == []
