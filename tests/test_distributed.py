"""A real torchrun job with two ranks (gloo on the CPU): the confusion matrix summed over
ranks equals one process counting all the data, a NaN on rank 1 alone is reported as rank
1's at the right step and layer, and the run directory is followed while the job runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

import nbviz
from nbviz.confusion.runlog import RecordedConfusion
from nbviz.monitor.runlog import RecordedRun

JOB = Path(__file__).parent / "jobs" / "ddp_shapes.py"
NAN_STEP, STEPS = 5, 12  # as in the job


def torchrun(*args: str) -> list[str]:
    """The command that runs the job on two ranks of this machine."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return [*launch, str(JOB), *args]


@pytest.mark.skipif(not dist.is_available(), reason="this torch has no torch.distributed")
def test_a_two_rank_torchrun_job(tmp_path):
    run_dir, result = tmp_path / "run", tmp_path / "result.json"

    def output() -> str:
        return (tmp_path / "job.log").read_text()[-5000:]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    log = open(tmp_path / "job.log", "w")  # a file, not a pipe that could fill up  # noqa: SIM115
    job = subprocess.Popen(
        torchrun(str(run_dir), str(result)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the ranks go with the launcher
    )
    try:
        # Follow the run while the job is alive (it waits for "release" before it ends).
        run = RecordedRun(run_dir)
        deadline = time.monotonic() + 300
        seen_steps = set()
        while not (run.steps == STEPS and run.nonfinite and run.nonfinite.get("rank") == 1):
            assert job.poll() is None, f"the job ended early:\n{output()}"
            assert time.monotonic() < deadline, "the run was not followed to its last step"
            run.update()
            seen_steps.add(run.steps)
            time.sleep(0.02)
        assert job.poll() is None  # followed while the job still runs
        (run_dir / "release").write_text("")
        job.wait(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        log.close()
    assert job.returncode == 0, output()
    ranks = [json.loads(Path(f"{result}.{r}").read_text()) for r in (0, 1)]
    # The merged matrix equals one process counting all the data, on both ranks.
    assert ranks[0]["merged"] == ranks[0]["alone"] == ranks[1]["merged"]
    assert sum(map(sum, ranks[0]["merged"])) == 192
    # Rank 0 recorded the merged matrix; rank 1 wrote no confusion records.
    recorded = RecordedConfusion(run_dir)
    recorded.update()
    assert len(recorded.reader.segments()) == 1
    ((index, value),) = recorded.history
    dense = np.zeros(36, np.int64)
    dense[index] = value
    assert dense.reshape(6, 6).tolist() == ranks[0]["merged"]
    # Rank 1's NaN: the activations of its first conv, at NAN_STEP; rank 0 saw it only in
    # the gradients DDP averaged with rank 1's. The run reports the earlier: rank 1's.
    assert ranks[1]["nonfinite"] == {
        "step": NAN_STEP,
        "where": "activations",
        "layer": "module.features.block1.conv",
        "rank": 1,
    }
    assert ranks[0]["nonfinite"]["where"] == "gradients" and ranks[0]["nonfinite"]["rank"] == 0
    assert run.nonfinite == ranks[1]["nonfinite"]
    assert any("(rank 1)" in w for w in ranks[1]["warnings"])
    # Rank 0 wrote the records: every step, the layers of the wrapped model.
    snap = run.snapshot()
    assert snap["steps"] == STEPS and snap["layers"][0] == "module.features.block1.conv"
    assert len(snap["grad_norm"][0]) == STEPS
    assert len(seen_steps) > 1  # read in more than one piece as it grew
    # Rank 0 recorded the wrapped module's graph; a follower colours it by the layers'
    # gradient norms, whose names carry DDP's "module." prefix.
    view = nbviz.follow(run_dir)
    view.stop()
    try:
        view.graph.flush()
        painted = set(view.graph.overlay_data["values"])
        assert {layer.removeprefix("module.") for layer in snap["layers"]} <= painted
        assert "features" in painted  # the folded top-level boxes too
    finally:
        view.close()


@pytest.mark.skipif(not dist.is_available(), reason="this torch has no torch.distributed")
def test_a_rank_that_skips_end_epoch_makes_the_others_fail_with_a_message(tmp_path):
    result = tmp_path / "result.json"
    job = subprocess.run(
        torchrun(str(tmp_path / "run"), str(result), "missing"),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    error = json.loads(Path(f"{result}.0").read_text())["error"]
    assert error.startswith(
        "ConfusionMatrix.end_epoch() must be called on every rank of the distributed job"
    ), error
    assert "rank 0 of 2 waited 3 s for the others" in error
