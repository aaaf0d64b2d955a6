"""torch.distributed, as every capability sees it: which rank this is, and the one
collective nbviz makes (at a confusion matrix's end of epoch), with a deadline.

Nothing here launches processes: ``torchrun`` does, and the user's script calls
``torch.distributed.init_process_group``. Without an initialised process group this is
rank 0 of 1 and no collective runs.
"""

from __future__ import annotations

import datetime

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT = 300.0  # seconds a rank waits for the others at a collective


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` outside a distributed job."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(tensor: torch.Tensor, call: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Sum ``tensor`` over every rank, in place. Every rank must make the same ``call``
    (named in the error); one that does not makes the others fail after ``timeout``
    seconds with a RuntimeError saying so, instead of waiting forever."""
    if rank_and_world()[1] == 1:
        return
    deadline = datetime.timedelta(seconds=timeout)
    try:
        if dist.get_backend() == "gloo":
            # Names the ranks that did not arrive (gloo only).
            dist.monitored_barrier(timeout=deadline, wait_all_ranks=True)
        work = dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True)
        if not work.wait(timeout=deadline):
            raise RuntimeError(f"no answer within {timeout:g} s")
    except RuntimeError as exc:
        raise RuntimeError(
            f"{call} must be called on every rank of the distributed job, at the same point "
            f"(rank {dist.get_rank()} of {dist.get_world_size()} waited {timeout:g} s for the "
            f"others): {exc}"
        ) from exc


def local_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module to run for nbviz's own forwards (a NaN replay, the probe): the module that
    ``DistributedDataParallel`` or ``DataParallel`` wraps, whose forward makes no collective
    call (DDP's own broadcasts buffers: a forward on one rank alone would wait forever)."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model
