"""A projector linked to a confusion matrix in a real JupyterLab (`Embeddings.link`):
selecting a cell in the matrix selects the projector's items the model puts in that
cell, and a point selected in the projector (with its neighbours) outlines the cells
where those items sit. The views talk in the browser: it all works while the kernel is
busy, and the kernel hears nothing."""

from __future__ import annotations

import json

from .lab import Lab

SETUP = """
import json, os, time, torch, nbviz
from nbviz.examples import SmallCNN, train
torch.manual_seed(0)
data = nbviz.datasets.shapes(n=300, size=32, seed=0)
model = SmallCNN(num_classes=len(data.classes))
train(model, data.images, data.labels, epochs=2, seed=0)   # some mistakes to link
emb = nbviz.Embeddings(model, data.images, data.labels, classes=data.classes, title="Shapes")
emb
"""
MATRIX = """
cm = nbviz.ConfusionMatrix(data.classes, title="The same 300 shapes")
model.eval()
with torch.no_grad():
    cm.update(model(data.images), data.labels)
cm.end_epoch()
emb.link(cm)
cm
"""
BUSY = """
while not os.path.exists("stop-link"):   # the kernel is busy (a long cell)
    time.sleep(0.05)
"""


def projector(lab: Lab):
    return lab.cell_output(0).locator(".nbviz-projector")


def matrix(lab: Lab):
    return lab.cell_output(1).locator(".nbviz-confusion")


def cell_point(lab: Lab, r: int, c: int) -> tuple[float, float]:
    overlay = matrix(lab).locator(".nbviz-confusion__overlay")
    g = json.loads(overlay.get_attribute("data-geometry"))
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    return box["x"] + g["x0"] + (c + 0.5) * g["cell"], box["y"] + g["y0"] + (r + 0.5) * g["cell"]


def point(lab: Lab, item: int) -> tuple[float, float]:
    stage = projector(lab).locator(".nbviz-projector__stage")
    stage.scroll_into_view_if_needed()
    box = stage.bounding_box()
    x, y = stage.evaluate("(s, i) => s.nbvizScreen(i)", item)
    return box["x"] + x, box["y"] + y


def test_projector_linked_to_confusion_matrix(lab: Lab):
    lab.open_notebook("link.ipynb", [SETUP, MATRIX, BUSY])
    for i in (0, 1):
        lab.run_cell(i)
        lab.wait_cell(i)
    projector(lab).wait_for(state="visible")
    matrix(lab).wait_for(state="visible")
    lab.page.wait_for_function(
        "(el) => Number(el.dataset.drawn || 0) >= 1 && el.dataset.drawing === '0'",
        arg=projector(lab).element_handle(),
        timeout=30_000,
    )
    py = json.loads(
        lab.python(
            "e = emb.embedded; print(json.dumps({'matrix': cm.matrix.tolist(),"
            " 'labels': data.labels.tolist(), 'predicted': e.predicted.tolist(),"
            " 'near': emb.frames[-1].neighbours.tolist()}))"
        )
    )
    matrix_counts = py["matrix"]
    k = len(matrix_counts)
    wrong = [(r, c) for r in range(k) for c in range(k) if r != c and matrix_counts[r][c]]
    assert wrong, matrix_counts  # the half-trained model makes mistakes
    r, c = max(wrong, key=lambda rc: matrix_counts[rc[0]][rc[1]])

    lab.run_cell(2)  # from here on the kernel is busy
    while not lab.cell_running(2):
        lab.page.wait_for_timeout(50)
    lab.start_counting_kernel_messages()
    try:
        # --- a cell in the matrix selects its items in the projector ----------------------
        lab.page.mouse.click(*cell_point(lab, r, c))
        lab.page.wait_for_function(
            "([el, cell]) => el.dataset.linkedCell === cell",
            arg=[projector(lab).element_handle(), f"{r},{c}"],
        )
        selected = int(projector(lab).get_attribute("data-selected"))
        assert selected == matrix_counts[r][c]  # same data, same model: the same items
        panel = projector(lab).locator(".nbviz-projector__panel")
        assert projector(lab).locator(".nbviz-projector__item").count() == selected
        assert "in the matrix's cell true" in panel.inner_text()

        # --- clearing the cell clears the projector's selection ---------------------------
        lab.page.mouse.click(*cell_point(lab, r, c))
        lab.page.wait_for_function(
            "(el) => el.dataset.linkedCell === undefined", arg=projector(lab).element_handle()
        )
        panel.wait_for(state="hidden")

        # --- a point in the projector: its cell and its neighbours' cells, outlined -------
        item = next(
            i for i, (t, p) in enumerate(zip(py["labels"], py["predicted"], strict=True)) if t != p
        )
        lab.page.mouse.move(*point(lab, item))  # the scatterplot sees the pointer first
        lab.page.wait_for_function(
            "(el) => el.dataset.hovered !== undefined", arg=projector(lab).element_handle()
        )
        lab.page.mouse.click(*point(lab, item))
        lab.page.wait_for_function(
            "(el) => el.dataset.focus !== undefined", arg=projector(lab).element_handle()
        )
        focus = int(projector(lab).get_attribute("data-focus"))
        items = [focus, *py["near"][focus]]
        expected: dict[tuple[int, int], int] = {}
        for i in items:
            key = (py["labels"][i], py["predicted"][i])
            expected[key] = expected.get(key, 0) + 1
        lab.page.wait_for_function(
            "(el) => el.dataset.linked !== undefined", arg=matrix(lab).element_handle()
        )
        shown = {
            (int(a), int(b)): int(n)
            for a, b, n in (
                part.split(",") for part in matrix(lab).get_attribute("data-linked").split(";")
            )
        }
        assert shown == expected
        note = matrix(lab).locator(".nbviz-confusion__linked").inner_text()
        assert f"{len(items)} selected points in the projector" in note

        assert lab.kernel_messages_sent("comm_msg") == 0  # all of it in the browser
        assert lab.cell_running(2)  # and the kernel stayed busy throughout

        lab.screenshot_themes(matrix(lab), "projector-link-matrix")
        lab.set_theme("light")
        lab.screenshot_themes(projector(lab), "projector-link-points")

        # --- closing the projector's panel clears the matrix's outlines -------------------
        projector(lab).locator(".nbviz-projector__panel .nbviz-close").click()
        lab.page.wait_for_function(
            "(el) => el.dataset.linked === undefined", arg=matrix(lab).element_handle()
        )
    finally:
        (lab.root_dir / "stop-link").write_text("")
    lab.wait_cell(2)
