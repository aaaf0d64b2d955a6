"""What ``mode="auto"`` runs: the cheaper of the two passes that give the real forward's graph.

A real pass runs the forward itself, so its graph is the real one by definition; it costs
the forward's arithmetic. A meta pass runs the same Python with the weights swapped for
shape-only (meta) stand-ins: what does not depend on the weights (the inputs, masks and
positions built from them) keeps its values, what does is computed as shapes only, meta
tensors report the model's device, and the pass stops at the first read of a value it
does not have (``.item()`` of a layer's output, a branch on it), where the real pass takes
over. So where it finishes, it took every branch the real forward takes. It costs no
arithmetic, but torch works out each result's shape in Python (a fraction of a
millisecond per op; repeated blocks are cached), and the first meta pass in a process
imports about a second of torch's code (symbolic shapes, dynamo).

So auto runs real unless the forward's arithmetic is estimated to cost more than meta's
extra work (mostly one shape function per distinct layer: a stack of identical blocks
costs one block), which only large models at realistic input sizes reach. The estimate needs
no run: 2 FLOPs per parameter (embedding tables aside) per input position (a token, a
16x16 patch of an image, a row of a feature matrix), at a CPU speed per thread. An estimate off by a few times only
costs time (both passes give the same graph), never correctness.

>>> import torch
>>> choose(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), {}, torch.device("cpu"))
'real'
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

import torch
from torch import nn

from .module_info import ModuleRow, module_table
from .nested import tensors_in

CPU_FLOPS_PER_THREAD = 60e9  # what a real forward reaches on large layers, per thread
# Meta's extra work: torch's Python shape functions for each distinct layer (repeats are
# cached: twelve identical blocks cost one), some bookkeeping for every module.
META_PER_DISTINCT_LAYER = 0.6e-3  # s
META_PER_MODULE = 0.05e-3  # s
META_FIRST_IMPORTS = 1.0  # s: torch's imports on the first meta pass in a process
_META_MODULES = ("torch._dynamo", "torch.fx.experimental.symbolic_shapes")


class Estimate(NamedTuple):
    """Seconds each pass is expected to cost beyond what both pay (recording the graph)."""

    flops: float  # of the real forward
    real: float
    meta: float

    @property
    def mode(self) -> str:
        """The cheaper pass: "meta" or "real"."""
        return "meta" if self.meta < self.real else "real"


def estimate(
    model: nn.Module, args: tuple, kwargs: dict, rows: list[ModuleRow] | None = None
) -> Estimate:
    """The expected extra cost of a real and of a meta pass of ``model`` on these inputs
    (``rows``: the model's `module_table`, when the caller has it)."""
    rows = rows if rows is not None else module_table(model)
    params = _compute_params(rows)
    layers = {
        (type(row.module), tuple((n, tuple(p.shape), p.dtype) for n, p in row.own))
        for row in rows
        if row.own
    }
    positions = max((_positions(t) for t in tensors_in((args, kwargs))), default=1)
    flops = 2.0 * params * positions
    real = flops / (CPU_FLOPS_PER_THREAD * max(1, torch.get_num_threads()))
    meta = META_PER_DISTINCT_LAYER * len(layers) + META_PER_MODULE * len(rows)
    meta += 0.0 if meta_ready() else META_FIRST_IMPORTS
    return Estimate(flops, real, meta)


def choose(
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    device: torch.device | None,
    rows: list[ModuleRow] | None = None,
) -> str:
    """The cheaper pass that gives the real forward's graph: "meta" or "real".

    Off the CPU (a GPU forward is cheap, and devices differ in what code they run) and
    where meta can't stand in for the weights (TorchScript, weights on several devices),
    always "real"."""
    if device is not None and device.type != "cpu":
        return "real"
    if not meta_swappable(model, rows):
        return "real"
    return estimate(model, args, kwargs, rows).mode


def meta_ready() -> bool:
    """Whether torch's meta machinery is imported already (no first-pass import cost)."""
    return all(name in sys.modules for name in _META_MODULES)


def meta_swappable(model: nn.Module, rows: list[ModuleRow] | None = None) -> bool:
    """Whether meta stand-ins can replace every weight of ``model`` for one call: not in
    TorchScript, nor for weights on several devices."""
    modules = [r.module for r in rows] if rows is not None else list(model.modules())
    if any(isinstance(m, torch.jit.ScriptModule) for m in modules):
        return False
    devices = {
        t.device
        for m in modules
        for store in (m._parameters, m._buffers)
        for t in store.values()
        if t is not None
    }
    return len(devices) <= 1


def _compute_params(rows: list[ModuleRow]) -> int:
    """Parameters that cost arithmetic: all but embedding tables (a lookup reads one row
    per token), unless a layer shares the table (GPT-2's tied output layer)."""
    lookups = (nn.Embedding, nn.EmbeddingBag)
    weights = {}
    for row in rows:
        if not isinstance(row.module, lookups):
            weights.update((id(p), p.numel()) for _, p in row.own)
    return sum(weights.values())


def _positions(t: torch.Tensor) -> int:
    """Where a model applies its weights, for one input tensor: each token of integer
    ids; each row of a (batch, features) matrix; each step of a (batch, steps, features)
    sequence; each 16x16 patch of an image or volume (a CNN's late, heavy layers and a
    ViT's tokens both see about that many)."""
    shape = [int(s) for s in t.shape]
    if not shape:
        return 1
    if not (t.is_floating_point() or t.is_complex()):
        return math.prod(shape)
    if len(shape) <= 2:
        return shape[0]
    if len(shape) == 3:
        return shape[0] * min(shape[1], shape[2])
    return max(1, shape[0] * math.prod(shape[2:]) // 256)
