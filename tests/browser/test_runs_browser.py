"""nbviz.follow on a folder of runs in a real JupyterLab: every run listed (one created
while followed too), curves overlaid in the picked runs' colours, runs picked and
filtered by name here, and a run's whole dashboard opened from its row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .lab import Lab

ROOT = ".nbviz-runs"

# Records one run of a small MLP into sweep/<name>; "nan" makes its loss blow up.
SCRIPT = """
import sys, torch, nbviz
import torch.nn.functional as F
name, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
x, y = torch.randn(256, 12), torch.randint(0, 3, (256,))
y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
opt = torch.optim.SGD(model.parameters(), lr=lr)
mon = nbviz.watch(model, logdir=f"sweep/{name}", log_every=0.05, on_nan="warn")
for step in range(steps):
    if name == "diverged" and step == steps // 2:
        with torch.no_grad():
            model[0].weight.mul_(1e38)
    out = model(x)
    loss = F.cross_entropy(out, y)
    opt.zero_grad()
    loss.backward()
    mon.step(loss=loss, acc=(out.argmax(1) == y).float().mean())
    opt.step()
    if step % 50 == 49:
        mon.log_val(loss=float(loss) * 1.1)
mon.detach()
"""

FOLLOW = """
import nbviz
runs = nbviz.follow("sweep", interval=0.2, title="a learning-rate sweep")
runs
"""

# Every chart has drawn a line for every picked run that matches the filter.
LINES_DRAWN = """(root) => {
  const charts = root.querySelectorAll('.nbviz-runs__chart');
  return charts.length > 0 && [...charts].every((c) => c.querySelector('path.nbviz-runs__line'));
}"""


def record(root: Path, name: str, lr: float, steps: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "record_run.py", name, str(lr), str(steps)],
        cwd=root,
        stderr=subprocess.DEVNULL,  # the diverged run's NaN warning
    )


def drawn_runs(lab: Lab, chart: str) -> list[str]:
    return (
        lab.cell_output(0)
        .locator(ROOT)
        .evaluate(
            "(root, chart) => [...root.querySelectorAll(`.nbviz-runs__chart[data-scalar='${chart}']"
            " path.nbviz-runs__line`)].map((p) => p.dataset.run)",
            chart,
        )
    )


def test_follow_a_folder_of_runs_in_jupyterlab(lab: Lab):
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))
    root = Path(lab.root_dir)
    (root / "record_run.py").write_text(SCRIPT)
    done = [
        record(root, n, lr, 300) for n, lr in [("lr0.1", 0.1), ("lr0.03", 0.03), ("diverged", 0.05)]
    ]
    for p in done:
        assert p.wait(timeout=180) == 0
    lab.open_notebook("runs.ipynb", [FOLLOW, "runs.overview.picked"])
    lab.run_cell(0)
    lab.wait_cell(0)
    out = lab.cell_output(0)
    view = out.locator(ROOT)
    view.wait_for(state="visible")
    assert out.get_by_text("a learning-rate sweep").is_visible()
    rows = view.locator(".nbviz-runs__row")
    rows.nth(2).wait_for(state="visible")
    assert rows.evaluate_all("rs => rs.map((r) => r.dataset.run)") == [
        "diverged",
        "lr0.03",
        "lr0.1",
    ]
    view.locator(".nbviz-runs__row[data-run='diverged'] .nbviz-runs__note").get_by_text(
        "non-finite from step", exact=False
    ).wait_for(state="visible")
    lab.page.wait_for_function(LINES_DRAWN, arg=view.element_handle(), timeout=30_000)
    assert sorted(drawn_runs(lab, "loss")) == ["diverged", "lr0.03", "lr0.1"]
    # Where the diverged run's loss turned non-finite is marked on its chart.
    mark = view.locator(".nbviz-runs__chart[data-scalar='loss'] .nbviz-runs__bad")
    assert mark.evaluate("(m) => m.dataset.run") == "diverged"
    assert "diverged: non-finite from step" in mark.locator("title").text_content()

    # A run that starts while the folder is followed joins the list and the charts.
    live = record(root, "lr0.3", 0.3, 400)
    try:
        view.locator(".nbviz-runs__row[data-run='lr0.3']").wait_for(
            state="visible", timeout=120_000
        )
        lab.page.wait_for_function(
            "(root) => root.querySelector(\".nbviz-runs__chart[data-scalar='loss'] path[data-run='lr0.3']\")",
            arg=view.element_handle(),
            timeout=60_000,
        )
        assert not lab.cell_running(0)  # followed from a background thread
    finally:
        assert live.wait(timeout=180) == 0

    # Distinct colours, one per picked run.
    colours = view.evaluate(
        "(root) => [...root.querySelectorAll(\".nbviz-runs__chart[data-scalar='loss'] path.nbviz-runs__line\")].map((p) => p.getAttribute('stroke'))"
    )
    assert len(set(colours)) == len(colours) == 4

    # Filter by name in the browser: only the matching rows and curves stay.
    view.locator(".nbviz-runs__filter").fill("lr0.")
    lab.page.wait_for_function(
        "(root) => root.querySelectorAll('.nbviz-runs__row:not([hidden])').length === 3",
        arg=view.element_handle(),
    )
    assert sorted(drawn_runs(lab, "loss")) == ["lr0.03", "lr0.1", "lr0.3"]
    view.locator(".nbviz-runs__filter").fill("")

    # Unpick a run here: the kernel hears of it, its curves go.
    view.locator(".nbviz-runs__row[data-run='lr0.03'] input[type=checkbox]").click()
    lab.page.wait_for_function(
        "(root) => !root.querySelector(\"path[data-run='lr0.03']\")", arg=view.element_handle()
    )
    lab.run_cell(1)
    lab.wait_cell(1)
    assert "lr0.03" not in lab.cell_output(1).inner_text()

    # Hovering a curve names the run and its value.
    plot = view.locator(".nbviz-runs__chart[data-scalar='loss'] svg")
    box = plot.bounding_box()
    lab.page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    view.locator(".nbviz-runs__readout").get_by_text("at step", exact=False).wait_for(
        state="visible"
    )

    # "open" asks the kernel for a run's whole dashboard; two open side by side.
    view.locator(".nbviz-runs__row[data-run='lr0.1'] .nbviz-runs__open").click()
    out.locator(".nbviz-monitor").first.wait_for(state="visible", timeout=60_000)
    view.locator(".nbviz-runs__row[data-run='diverged'] .nbviz-runs__open").click()
    lab.page.wait_for_function(
        "(out) => out.querySelectorAll('.nbviz-monitor').length === 2", arg=out.element_handle()
    )
    out.locator(".nbviz-monitor__nan").first.wait_for(state="attached")
    assert out.get_by_text("lr0.1", exact=True).count() >= 1

    lab.page.mouse.move(0, 0)
    lab.page.set_viewport_size({"width": 1400, "height": 2400})
    lab.screenshot(out, "runs-opened")
    lab.screenshot_themes(view, "runs", ready=LINES_DRAWN)
    assert lab.python("runs.stop()\nprint(runs.following)").strip() == "False"
    assert errors == []
