"""Benchmarks run as modules from the repository's root (``python -m benchmarks.<name>``)
and import the reference models as a package module, with no sys.path edits of their own."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, sys
before = list(sys.path)
for name in {names!r}:
    importlib.import_module("benchmarks." + name)
assert sys.path == before, "a benchmark changed sys.path"
print("imported", len({names!r}))
"""


def test_every_benchmark_imports_as_a_module_without_path_tricks():
    names = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py"))
    assert "monitor_overhead" in names and "_kernel" in names
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(names=names)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(names)}"
    for path in (REPO / "benchmarks").glob("*.py"):
        assert "sys.path.insert" not in path.read_text(), path.name
