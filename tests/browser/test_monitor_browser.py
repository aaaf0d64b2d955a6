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
    # The heat maps' rows are labelled with their layers (full path on hover).
    rows = w.locator(".nbviz-monitor__panel--flow .nbviz-monitor__rows span")
    bars = w.locator(".nbviz-monitor__panel--flow rect.nbviz-monitor__bar").count()
    assert rows.count() == bars == 9  # SmallCNN: 4 convs, 4 batch norms, the classifier
    assert rows.last.get_attribute("title") == "classifier.fc"
    assert "classifier.fc" in rows.last.inner_text()
    assert w.locator(".nbviz-monitor__panel--dead .nbviz-monitor__rows span").count() == 4
    w.locator(".nbviz-monitor__log").check()
    lab.page.wait_for_function(
        "(f) => f.textContent.includes('log10 loss')",
        arg=lab.cell_output(0).locator(".bqplot").first.element_handle(),
    )
    # The 100-step window changes the drawing only once more than 100 steps are shown: wait
    # for that (however slow the machine), then for the redraw the selection causes.
    wait_attr(lab, "steps", "Number(v) > 150", timeout=240_000)
    before = smooth_path(lab)
    draws = int(attr(lab, "curveDraws"))
    w.locator(".nbviz-monitor__window").select_option("100")
    wait_attr(lab, "curveDraws", f"Number(v) > {draws}")
    lab.page.wait_for_function(
        "([f, p]) => [...f.querySelectorAll('path.line')].map((x) => x.getAttribute('d')).join('|') !== p",
        arg=[lab.cell_output(0).locator(".bqplot").first.element_handle(), before],
        timeout=30_000,
    )
    assert lab.cell_running(1), "training ended before the interactions"
    assert lab.kernel_messages_sent("comm_msg") == 0  # the browser alone

    (Path(lab.root_dir) / "stop-monitor").write_text("")
    lab.wait_cell(1, timeout=120)
    steps = int(lab.python("print(mon.recorder.steps)"))
    wait_attr(lab, "steps", f"v === '{steps}'")  # the end-of-cell flush shows the last step
    # max |g| is sampled every `every` steps: the note says at which step the ticks are.
    max_step = int(lab.python("print(mon.recorder.latest_max_step)"))
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
    lab.screenshot_themes(out, "monitor", ready=CURVES_DRAWN)
    assert errors == []


# Both curve figures have drawn lines (bqplot redraws after a theme switch).
CURVES_DRAWN = """(el) => {
  const figs = [...el.querySelectorAll('.bqplot')];
  return figs.length >= 2 && figs.every((f) => [...f.querySelectorAll('path.line')]
    .some((p) => (p.getAttribute('d') || '').length > 20));
}"""


NAN_SETUP = """
import torch, nbviz
import torch.nn.functional as F
from nbviz.examples import SmallCNN
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=64, size=32, seed=0)
model = SmallCNN(num_classes=6, width=8)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
mon = nbviz.watch(model, every=2, title="a run that blows up")
mon
"""

# Six steps; at step 3 a weight becomes NaN, so the output, the loss and every later step
# are non-finite. Then a second cell keeps the kernel busy while the view is read.
NAN_TRAIN = """
import warnings
for step in range(6):
    if step == 3:
        with torch.no_grad():
            model.classifier.fc.weight[0, 0] = float("nan")
    x, y = data.images[:16], data.labels[:16]
    out = model(x)
    loss = F.cross_entropy(out, y)
    opt.zero_grad()
    loss.backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mon.step(loss=loss, acc=(out.argmax(1) == y).float().mean())
    opt.step()
print("warnings:", [str(c.message) for c in caught][:1])
"""


def tick_labels(lab: Lab, figure: int, axis: int) -> list[str]:
    """Tick texts of one axis (0: x, 1: y) of a curve figure."""
    return (
        lab.cell_output(0)
        .locator(".bqplot")
        .nth(figure)
        .evaluate(
            "(f, i) => [...f.querySelectorAll('.axis')][i] ? [...[...f.querySelectorAll('.axis')][i]"
            ".querySelectorAll('.tick text')].map((t) => t.textContent) : []",
            axis,
        )
    )


def test_non_finite_values_show_as_banner_gaps_and_marks(lab: Lab):
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))
    console = []
    lab.page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    lab.open_notebook("nan.ipynb", [NAN_SETUP, NAN_TRAIN])
    lab.run_cell(0)
    lab.wait_cell(0)
    widget(lab).wait_for(state="visible")
    banner = widget(lab).locator(".nbviz-monitor__nan")
    assert not banner.is_visible()  # nothing non-finite yet: no banner
    lab.run_cell(1)
    lab.wait_cell(1)
    wait_attr(lab, "steps", "v === '6'")
    # The banner is on screen (not only in the DOM) and says where it began.
    banner.wait_for(state="visible", timeout=30_000)
    text = banner.inner_text()
    assert "step 3" in text and "classifier.fc" in text, text
    assert banner.bounding_box()["height"] > 10
    # The loss curve: steps 3-5 are gaps with crosses, and a note says so.
    note = widget(lab).locator(".nbviz-monitor__curve-note")
    note.wait_for(state="visible")
    assert "loss: 3 non-finite values" in note.inner_text() and "from step 3" in note.inner_text()
    loss_fig = lab.cell_output(0).locator(".bqplot").first
    lab.page.wait_for_function(
        "(f) => f.querySelectorAll('.dot').length >= 3", arg=loss_fig.element_handle()
    )
    paths = smooth_path(lab)
    assert "NaN" not in paths and "undefined" not in paths, paths
    # A short run reads whole, distinct steps; value ticks are distinct too.
    xs = tick_labels(lab, 0, 0)
    assert xs and all(t.lstrip("-").isdigit() for t in xs) and len(set(xs)) == len(xs), xs
    for figure in (0, 1):  # both value axes: distinct labels, no more decimals than needed
        ys = tick_labels(lab, figure, 1)
        assert len(ys) >= 2 and len(set(ys)) == len(ys), ys
        decimals = {len(t.split(".")[1]) if "." in t else 0 for t in ys}
        assert len(decimals) == 1, ys
        assert decimals == {0} or any(t[-1] != "0" for t in ys), ys
    # The log toggle applies to the loss, not to the accuracy.
    widget(lab).locator(".nbviz-monitor__log").check()
    lab.page.wait_for_function(
        "(f) => f.textContent.includes('log10 loss')", arg=loss_fig.element_handle()
    )
    acc_fig = lab.cell_output(0).locator(".bqplot").nth(1)
    assert "log10" not in acc_fig.inner_text()
    widget(lab).locator(".nbviz-monitor__log").uncheck()
    # Python said it once too.
    assert "non-finite" in lab.cell_output(1).inner_text()
    lab.page.set_viewport_size({"width": 1400, "height": 1100})
    lab.screenshot_themes(lab.cell_output(0), "monitor-nan", ready=CURVES_DRAWN)
    assert errors == [], errors
    assert not [c for c in console if "Trailing garbage" in c or "NaN" in c], console
