"""A PyTorch Lightning fit with nbviz's callback in a real JupyterLab: the callback displays
its dashboard and confusion matrix below the fit's cell, and both grow while that cell
still runs (the kernel is busy with ``trainer.fit`` the whole time)."""

from __future__ import annotations

import json
from pathlib import Path

from .lab import Lab
from .test_monitor_browser import CURVES_DRAWN

SETUP = """
import os, warnings, torch, nbviz
import torch.nn.functional as F
import lightning.pytorch as L
from torch.utils.data import DataLoader, TensorDataset
from nbviz.examples import SmallCNN
from nbviz.integrations.lightning import NbvizCallback

warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers).*")
torch.manual_seed(0)
torch.set_num_threads(1)
data = nbviz.datasets.shapes(n=704, size=32, seed=0)
train = DataLoader(TensorDataset(data.images[:576], data.labels[:576]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(data.images[576:], data.labels[576:]), batch_size=64)

class Shapes(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = SmallCNN(num_classes=6, width=8)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        self.log("train_acc", (out.argmax(1) == y).float().mean())
        if os.path.exists("stop-lightning"):
            self.trainer.should_stop = True
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())
        return {"preds": out, "target": y, "inputs": x}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

cb = NbvizCallback(classes=data.classes, probe=data.images[:6], every=5, hist_every=10,
                   features_every=20, title="SmallCNN on shapes, in Lightning")
trainer = L.Trainer(max_epochs=200, callbacks=[cb], accelerator="cpu", logger=False,
                    enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
print("ready")
"""

FIT = "trainer.fit(Shapes(), train, val)"


def monitor(lab: Lab):
    return lab.cell_output(1).locator(".nbviz-monitor")


def confusion(lab: Lab):
    return lab.cell_output(1).locator(".nbviz-confusion")


def wait_data(lab: Lab, locator, name: str, js_test: str, timeout: float = 120_000) -> None:
    lab.page.wait_for_function(
        f"(el) => {{ const v = el.dataset.{name}; return {js_test}; }}",
        arg=locator.element_handle(),
        timeout=timeout,
    )


def test_a_lightning_fit_updates_the_dashboard_live(lab: Lab):
    errors = []
    lab.page.on("pageerror", lambda e: errors.append(str(e)))
    lab.open_notebook("lightning.ipynb", [SETUP, FIT])
    lab.run_cell(0)
    lab.wait_cell(0, timeout=180)
    lab.run_cell(1)
    # The callback displays its views in the fit's own output, at the fit's start.
    monitor(lab).wait_for(state="visible", timeout=120_000)
    confusion(lab).wait_for(state="visible")
    assert lab.cell_output(1).get_by_text("SmallCNN on shapes, in Lightning").first.is_visible()
    # Steps arrive while the cell runs: three different counts, each larger.
    seen: list[int] = []
    for _ in range(3):
        wait_data(lab, monitor(lab), "steps", f"Number(v) > {max(seen, default=0)}")
        seen.append(int(monitor(lab).get_attribute("data-steps")))
        assert lab.cell_running(1)
    assert seen == sorted(seen) and len(set(seen)) == 3
    # Two curves (loss from training_step's return, acc from self.log); validation closes
    # epochs of the confusion matrix, counting the whole validation set each time.
    wait_data(lab, monitor(lab), "curves", "Number(v) >= 2")
    # A second validation run closed a second epoch, still while the fit runs.
    closed_two = (
        "v.startsWith('epoch ') && (parseInt(v.slice(6)) >= 3 || "
        "(parseInt(v.slice(6)) === 2 && !v.includes('progress')))"
    )
    wait_data(lab, confusion(lab), "epoch", closed_two, timeout=240_000)
    wait_data(lab, monitor(lab), "featureLayer", "v && v.length > 0")
    wait_data(lab, monitor(lab), "hist", "v && v.length > 0")
    assert lab.cell_running(1), "the fit ended before the views were checked"

    (Path(lab.root_dir) / "stop-lightning").write_text("")
    lab.wait_cell(1, timeout=180)
    steps = int(lab.python("print(cb.monitor.recorder.steps)"))
    wait_data(lab, monitor(lab), "steps", f"v === '{steps}'")  # the last step shown
    totals = json.loads(lab.python("print([int(m.sum()) for m in cb.confusion.history])"))
    assert len(totals) >= 2 and set(totals) == {128}, totals  # the whole validation set
    total = int(lab.python("print(int(cb.confusion.matrix.sum()))"))
    wait_data(lab, confusion(lab), "total", f"v === '{total}'")
    # The views stay reachable from the callback after fit, as shown.
    assert lab.python("print(cb.view.children == (cb.monitor, cb.confusion))").strip() == "True"
    assert lab.python("print(cb.monitor.recorder.attached)").strip() == "False"

    lab.page.set_viewport_size({"width": 1400, "height": 1800})
    lab.screenshot_themes(lab.cell_output(1), "lightning", ready=CURVES_DRAWN)
    assert errors == [], errors
