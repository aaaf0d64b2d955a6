"""Train the demo CNN on the shapes data set, recorded to a run directory, on one process
or under torchrun; follow it from a notebook with ``nbviz.follow(logdir)``.

    python examples/train_ddp.py --logdir runs/lr-0.01
    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --logdir runs/ddp

Every rank trains on its share of each epoch's batches (DistributedDataParallel averages
the gradients); rank 0 writes the run. Each epoch ends with a validation pass whose
confusion matrix is summed over the ranks.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import nbviz
from nbviz.examples import SmallCNN


def main() -> None:
    """Train for --epochs, recording to --logdir; validate after every epoch."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logdir", required=True, help="the run directory to record to")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=32, help="per rank")
    args = ap.parse_args()

    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    data = nbviz.datasets.shapes(n=2400, size=64, seed=0)
    train_x, train_y = data.images[:2000], data.labels[:2000]
    val_x, val_y = data.images[2000:], data.labels[2000:]
    model = SmallCNN(num_classes=len(data.classes))
    if distributed:
        model = DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    mon = nbviz.watch(model, probe=val_x[:8], logdir=args.logdir, every=5, hist_every=10)
    cm = nbviz.ConfusionMatrix(classes=data.classes, logdir=args.logdir)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(epoch))
        mine = order[rank::world]  # this rank's share of the epoch
        for i in range(0, len(mine) - args.batch_size + 1, args.batch_size):
            idx = mine[i : i + args.batch_size]
            out = model(train_x[idx])
            loss = F.cross_entropy(out, train_y[idx])
            opt.zero_grad()
            loss.backward()
            mon.step(loss=loss, acc=(out.argmax(1) == train_y[idx]).float().mean())
            opt.step()
        model.eval()
        with torch.no_grad():
            share = slice(rank * len(val_y) // world, (rank + 1) * len(val_y) // world)
            out = model(val_x[share])
            cm.update(out, val_y[share], val_x[share])
            mon.log_val(loss=F.cross_entropy(out, val_y[share]))
        matrix = cm.end_epoch()  # every rank: the counts are summed over them
        if rank == 0:
            print(f"epoch {epoch + 1}: validation accuracy {matrix.trace() / matrix.sum():.3f}")
    mon.detach()
    cm.close_log()
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
