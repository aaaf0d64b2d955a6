"""nbviz.follow in a real JupyterLab: a script trains in another process and records to a
run directory; the notebook follows it live while its kernel stays free for other cells."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .lab import Lab
from .test_monitor_browser import CURVES_DRAWN

ROOT = ".nbviz-monitor"

# The training script: no display, records every 0.2 s, trains until told to stop.
SCRIPT = """
import os, torch, nbviz
import torch.nn.functional as F
from nbviz.examples import SmallCNN
torch.manual_seed(0)
torch.set_num_threads(1)
data = nbviz.datasets.shapes(n=640, size=32, seed=0)
model = SmallCNN(num_classes=6, width=8)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
rec = nbviz.watch(model, probe=data.images[:6], every=5, hist_every=10, features_every=20,
                  logdir="runs/script", log_every=0.2)
cm = nbviz.ConfusionMatrix(classes=data.classes, logdir="runs/script", log_every=0.2)
step = 0
while not os.path.exists("stop-script") and step < 20000:
    i = (step * 32) % 576
    x, y = data.images[i:i + 32], data.labels[i:i + 32]
    out = model(x)
    loss = F.cross_entropy(out, y)
    opt.zero_grad()
    loss.backward()
    rec.step(loss=loss, acc=(out.argmax(1) == y).float().mean())
    opt.step()
    cm.update(out, y, x)
    step += 1
    if step % 18 == 0:
        cm.end_epoch()
rec.detach()
cm.close_log()
"""

FOLLOW = """
import nbviz
run = nbviz.follow("runs/script", interval=0.2, title="a script's run, followed")
run
"""


def widget(lab: Lab):
    return lab.cell_output(0).locator(ROOT)


def shown_steps(lab: Lab) -> int:
    return int(widget(lab).get_attribute("data-steps") or 0)


def wait_steps_above(lab: Lab, n: int, timeout: float = 120_000) -> None:
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.steps || 0) > n",
        arg=[widget(lab).element_handle(), n],
        timeout=timeout,
    )


def test_follow_a_script_run_in_jupyterlab(lab: Lab):
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))
    root = Path(lab.root_dir)
    (root / "train_script.py").write_text(SCRIPT)
    script = subprocess.Popen([sys.executable, "train_script.py"], cwd=root)
    try:
        lab.open_notebook("follow.ipynb", [FOLLOW, "print(sum(range(10)))"])
        lab.run_cell(0)
        lab.wait_cell(0)
        widget(lab).wait_for(state="visible")
        out = lab.cell_output(0)
        assert out.get_by_text("a script's run, followed").is_visible()
        # It grows while no cell runs: the reading happens in a background thread.
        wait_steps_above(lab, 0)
        first = shown_steps(lab)
        wait_steps_above(lab, first)
        assert not lab.cell_running(0)
        # The kernel answers other cells meanwhile.
        lab.run_cell(1)
        lab.wait_cell(1)
        assert "45" in lab.cell_output(1).inner_text()
        wait_steps_above(lab, shown_steps(lab))  # and the view keeps following
        out.get_by_text("following runs/script:").wait_for(state="visible")
        widget(lab).locator(".nbviz-monitor__feature-layer option").first.wait_for(state="attached")
        # The model's graph, recorded once by the script, coloured by the gradient norms.
        graph = out.locator(".nbviz-graph")
        graph.wait_for(state="visible", timeout=60_000)
        lab.page.wait_for_function(
            "(el) => el.querySelectorAll('.nbviz-graph__node--valued').length > 0",
            arg=graph.element_handle(),
            timeout=60_000,
        )
        assert (
            graph.locator(".nbviz-graph__legend-label")
            .inner_text()
            .startswith("gradient norm (latest)")
        )
        # The run's confusion matrix appears below the dashboard once recorded, with epochs.
        out.locator(".nbviz-confusion").wait_for(state="visible", timeout=60_000)
        out.get_by_text("confusion matrix: epoch", exact=False).wait_for(state="visible")
        (root / "stop-script").write_text("")
        assert script.wait(timeout=120) == 0
    finally:
        if script.poll() is None:
            script.kill()
    # After the script's last write (detach), the view shows its last step.
    final = int(
        lab.python(
            "from nbviz.runs import RunReader\n"
            "last = [r for r in RunReader('runs/script', 'monitor').read() if r.kind == 'progress']\n"
            "print(last[-1].meta['steps'])"
        )
    )
    lab.page.wait_for_function(
        "([el, n]) => Number(el.dataset.steps || 0) === n",
        arg=[widget(lab).element_handle(), final],
        timeout=60_000,
    )
    out.get_by_text(f"following runs/script: {final:,} steps", exact=False).wait_for(
        state="visible"
    )
    lab.page.set_viewport_size({"width": 1400, "height": 2000})
    lab.screenshot_themes(out, "follow", ready=CURVES_DRAWN)
    assert lab.python("run.stop()\nprint(run.following)").strip() == "False"
    assert errors == []
