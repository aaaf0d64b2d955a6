"""Graph.summary() against golden files: the text a user prints, kept exactly.

A change to the table (columns, widths, totals, repeated-block folding) shows as a diff
here. If the change is meant, rewrite the files and review them with ``git diff``:

    NBVIZ_UPDATE_GOLDEN=1 python -m pytest tests/test_graph_summary_golden.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import torch

import nbviz
from nbviz.examples import SmallCNN
from tests.models import dict_net, example_input, gpt, resnet18, shared_layer

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "smallcnn": lambda: (SmallCNN(num_classes=6), (torch.zeros(2, 3, 64, 64),)),
    "resnet18": lambda: (resnet18(), (example_input("resnet18"),)),
    "gpt": lambda: (gpt(), (example_input("gpt"),)),  # repeated blocks fold into one row
    "dict_net": lambda: (dict_net(), (example_input("dict_net"),)),
    "shared_layer": lambda: (shared_layer(), (example_input("shared_layer"),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_summary_matches_its_golden_file(name):
    torch.manual_seed(0)
    model, args = CASES[name]()
    text = nbviz.trace(model, *args).summary() + "\n"
    path = GOLDEN / f"summary-{name}.txt"
    if os.environ.get("NBVIZ_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with NBVIZ_UPDATE_GOLDEN=1 once"
    expected = path.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), text.splitlines(True), str(path), "summary() now"
        )
    )
    assert text == expected, f"summary() changed (NBVIZ_UPDATE_GOLDEN=1 rewrites):\n{diff}"
