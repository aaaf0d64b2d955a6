"""A two-rank DDP job for tests/test_distributed.py, launched with torchrun (gloo, CPU).

1. An evaluation epoch: each rank counts its half of the data into a ConfusionMatrix;
   end_epoch() sums the ranks. Rank 0 also counts all the data alone, to compare.
2. Training with nbviz.watch(logdir=...) on every rank; at step NAN_STEP rank 1 alone
   gets a NaN in its input.
3. The job then waits for a file named "release" in the run directory, so that the test
   can follow the run while the job is still alive.

    torchrun --standalone --nproc_per_node=2 tests/jobs/ddp_shapes.py RUN_DIR RESULT.json

With a third argument "missing", rank 1 skips end_epoch() instead, and rank 0 records the
error its end_epoch() raises after a 3 s timeout.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import nbviz
from nbviz.examples import SmallCNN

NAN_STEP = 5
STEPS = 12

run_dir, result_path = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
torch.set_num_threads(1)
data = nbviz.datasets.shapes(n=192, size=32, seed=0)
model = DistributedDataParallel(SmallCNN(num_classes=len(data.classes), width=8))
per_rank = len(data.labels) // world
mine = slice(rank * per_rank, (rank + 1) * per_rank)

if sys.argv[3:] == ["missing"]:
    cm = nbviz.ConfusionMatrix(classes=data.classes, timeout=3)
    cm.update(data.labels[mine], data.labels[mine])
    error = None
    if rank == 0:
        try:
            cm.end_epoch()
        except RuntimeError as exc:
            error = str(exc)
    else:
        time.sleep(8)  # alive, but never at the collective
    Path(f"{result_path}.{rank}").write_text(json.dumps({"error": error}))
    sys.exit(0)

# 1. Evaluation: counts summed over ranks at end_epoch (rank 0 records the run).
cm = nbviz.ConfusionMatrix(classes=data.classes, logdir=run_dir)
model.eval()
with torch.no_grad():
    for i in range(mine.start, mine.stop, 32):
        cm.update(
            model(data.images[i : min(i + 32, mine.stop)]), data.labels[i : min(i + 32, mine.stop)]
        )
    merged = cm.end_epoch()
    cm.close_log()
    alone = None
    if rank == 0:
        single = nbviz.ConfusionMatrix(classes=data.classes)
        single.update(model.module(data.images), data.labels)
        alone = single.matrix.tolist()
model.train()

# 2. Training, watched on every rank; a NaN in rank 1's input at NAN_STEP.
opt = torch.optim.SGD(model.parameters(), lr=0.05)
mon = nbviz.watch(
    model, probe=data.images[:4], logdir=run_dir, log_every=0.05, every=2, hist_every=4
)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(STEPS):
        i = mine.start + (step * 16) % per_rank
        x, y = data.images[i : i + 16].clone(), data.labels[i : i + 16]
        if rank == 1 and step == NAN_STEP:
            x[0, 0, 0, 0] = float("nan")
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        mon.step(loss=loss)
        opt.step()
    mon.recorder.flush_pending()
    nonfinite = mon.recorder.nonfinite
mon.detach()  # writes what is left
result = {
    "rank": rank,
    "merged": merged.tolist(),
    "alone": alone,
    "nonfinite": nonfinite,
    "warnings": [str(w.message) for w in caught if "nbviz.watch" in str(w.message)],
}
Path(f"{result_path}.{rank}").write_text(json.dumps(result))

# 3. Alive until the test has followed the run (at most 10 minutes).
deadline = time.monotonic() + 600
while not (run_dir / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
dist.destroy_process_group()
