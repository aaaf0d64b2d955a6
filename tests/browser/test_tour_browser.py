"""The tour notebook (what `make demo` opens) runs in JupyterLab and draws its widgets."""

from __future__ import annotations

from pathlib import Path

import nbformat

from .lab import Lab

TOUR = Path(__file__).resolve().parents[2] / "notebooks" / "01_tour.ipynb"


def test_tour_runs_in_jupyterlab(lab: Lab):
    nb = nbformat.read(TOUR, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    lab.open_notebook("01_tour.ipynb", code)
    lab.run_all_and_wait(timeout=600)
    graph = lab.page.locator(".nbviz-graph")
    assert graph.count() == 1
    lab.page.wait_for_function(
        "(el) => Number(el.dataset.layouts || 0) >= 1", arg=graph.element_handle()
    )
    assert graph.locator('.nbviz-graph__node--module[data-path="features.block1"]').count() == 1
    graph.scroll_into_view_if_needed()
    lab.screenshot(graph, "tour-graph")
    widgets = lab.page.locator(".nbviz-confusion")
    assert widgets.count() == 2
    train_view, test_view = widgets.nth(0), widgets.nth(1)
    # training matrix: the last of six epochs, all 3,000 images
    assert train_view.get_attribute("data-epoch") == "epoch 6"
    assert train_view.get_attribute("data-total") == "3000"
    # test matrix: normalized over the true class, as the notebook asks
    assert test_view.get_attribute("data-mode") == "true"
    assert test_view.get_attribute("data-total") == "600"
    accuracy = float(lab.python("print(test_cm.accuracy * 100)"))
    assert f"accuracy {accuracy:.1f} %" in test_view.locator(".nbviz-confusion__stats").inner_text()
    test_view.scroll_into_view_if_needed()
    lab.screenshot(test_view, "tour-test-matrix")
