"""The README's snippets run as written: each ```python block is one notebook cell, run in
order in one fresh kernel, and the blocks that make a widget show it.

Jupyter displays only the value of a cell's last line. So a block that ends with an
expression (``cm``, ``mon``) must show a widget; a value that is not a widget is printed
instead; and a display line in the middle of a block (``cm`` followed by a training loop)
is an error, since it would show nothing. ```sh and ```text blocks are not run.
"""

import ast
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

README = Path(__file__).parent.parent / "README.md"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# A ```python fence on its own line, up to the next closing fence.
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in FENCE.finditer(text)]


def shows_its_value(source: str) -> bool:
    """Whether the cell ends with an expression other than a call (``cm``, ``mon``): a value
    the user is meant to see, which for the README must be a widget."""
    body = ast.parse(source).body
    return (
        bool(body) and isinstance(body[-1], ast.Expr) and not isinstance(body[-1].value, ast.Call)
    )


def lost_displays(source: str) -> list[str]:
    """Lines meant to show something that Jupyter never shows: an expression such as ``cm``
    or ``nbviz.GradCAM(...)`` before the block's last statement (its value is dropped)."""
    body = ast.parse(source).body
    lost = []
    for node in body[:-1]:
        if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Constant):
            continue
        value = node.value
        if isinstance(value, ast.Call):
            func = value.func
            made_by_nbviz = (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "nbviz"
                and (func.attr[:1].isupper() or func.attr == "watch")
            )
            if not made_by_nbviz:
                continue  # a call for its effect, e.g. cm.end_epoch()
        lost.append(ast.get_source_segment(source, node).splitlines()[0])
    return lost


def widget_outputs(cell) -> list[dict]:
    return [out for out in cell.get("outputs", []) if WIDGET_MIME in out.get("data", {})]


def run_readme(path: Path, workdir: Path, timeout: int = 300) -> list:
    """Execute the README's python blocks as the cells of one notebook; return its cells.

    Raises an AssertionError naming the block (its first line and the error) that failed.
    """
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"no ```python blocks in {path}"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(b) for b in blocks]
    # As `make test` and `make demo` do: spinning OpenMP threads slow torch down on a busy
    # machine (see the Makefile).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    with client.setup_kernel(env=env):  # a fresh kernel, as the README's reader has
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                first = cell.source.strip().splitlines()[0]
                raise AssertionError(
                    f"README block {index + 1} (starting {first!r}) failed:\n{error}"
                ) from None
    return nb.cells


def check_widgets(cells) -> int:
    """Each block that ends with an expression shows a widget; no block shows anything else
    as its value. Returns the number of widget blocks."""
    shown = 0
    for index, cell in enumerate(cells):
        first = cell.source.strip().splitlines()[0]
        results = [out for out in cell.outputs if out.get("output_type") == "execute_result"]
        for out in results:
            assert WIDGET_MIME in out.get("data", {}), (
                f"README block {index + 1} (starting {first!r}) shows a value that is not a "
                f"widget: {out['data'].get('text/plain', '')[:200]!r}; print it instead"
            )
        if shows_its_value(cell.source):
            assert widget_outputs(cell), (
                f"README block {index + 1} (starting {first!r}) ends with "
                f"{cell.source.strip().splitlines()[-1]!r} but shows no widget"
            )
            shown += 1
    return shown


def test_no_display_line_in_the_middle_of_a_block():
    for index, block in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        assert not lost_displays(block), (
            f"README block {index + 1}: {lost_displays(block)} would show nothing: Jupyter "
            "shows only a cell's last line, so end the block there"
        )


def test_block_rules():
    assert python_blocks("```python\na = 1\n```\n```sh\nmake\n```\n```python\na\n```\n") == [
        "a = 1\n",
        "a\n",
    ]
    assert shows_its_value("cm = 1\ncm  # shows it\n")
    assert shows_its_value("cm.history")
    assert not shows_its_value("print(cm)")
    assert not shows_its_value("for x in y:\n    cm\n")
    assert lost_displays("cm = f()\ncm\ntrain(cm)\n") == ["cm"]
    assert lost_displays("nbviz.GradCAM(m, x,\n    y)\nprint(1)\n") == ["nbviz.GradCAM(m, x,"]
    assert lost_displays('cm.end_epoch()\nprint(cm.history)\n"""text"""\ncm\n') == []


@pytest.mark.timeout(600)
def test_readme_snippets_run_and_show_their_widgets(tmp_path):
    cells = run_readme(README, tmp_path)
    # The displayed widgets, by the class in their text form (what a frontend without a
    # widget manager shows): every widget of the README appears.
    texts = " ".join(
        out["data"].get("text/plain", "") for cell in cells for out in widget_outputs(cell)
    )
    for name in ("ConfusionMatrix", "ModelGraph", "GradCAM", "Monitor"):
        assert name in texts, f"no {name} shown by the README's blocks: {texts[:500]!r}"
    assert check_widgets(cells) >= 4
