"""What the run-directory tests share: waiting on a condition, comparing snapshots
bit for bit, a recorder that merges and writes often, and a failed torchrun job's output."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import torch
from monitor_helpers import shapes_data, train_step

from nbviz.monitor.core import TrainingRecorder


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def assert_same(a, b, path="snapshot"):
    """Equal nested snapshots: dicts, tuples, arrays (bitwise), plain values."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert a.dtype == b.dtype, path
    else:
        assert a == b, (path, a, b)


def train(recorder, model, steps: int, nan_at: int | None = None) -> None:
    data = shapes_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for s in range(steps):
        i = (s * 8) % 40
        x, y = data.images[i : i + 8], data.labels[i : i + 8]
        if s == nan_at:
            with torch.no_grad():
                model.features.block2.conv.weight[0, 0, 0, 0] = float("nan")
        train_step(model, opt, x, y, recorder)
        if s % 10 == 0:
            recorder.log_val(val_loss=0.5 + s)


def merging_recorder(model, logdir) -> TrainingRecorder:
    """A recorder whose histories merge often (capacity 8) and sample every few steps,
    writing to ``logdir`` at every step."""
    return TrainingRecorder(
        model,
        shapes_data().images[:4],
        every=3,
        hist_every=5,
        features_every=7,
        capacity=8,
        logdir=logdir,
        log_every=0.001,
    )


def failure(done: subprocess.CompletedProcess) -> str:
    """A failed job's output: each rank's traceback, not only the launcher's summary."""
    err = done.stderr
    start = err.find("Traceback")
    return done.stdout[-2000:] + (err[start : start + 6000] if start >= 0 else err[-4000:])
