"""Leave a model as it was found: what every capability that runs a user's model needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def preserved(
    model: nn.Module,
    *,
    training: bool | None = None,
    requires_grad: bool | None = None,
    tensors: bool = False,
    buffer_values: bool = False,
) -> Iterator[None]:
    """Within the block, optionally set the model's mode and its parameters'
    ``requires_grad``; on exit (normal or not) put back every submodule's
    ``training`` flag and every parameter's ``requires_grad``.

    ``tensors``: also put back any parameter or buffer the block replaced by another
    object. ``buffer_values``: also the values of every buffer (a forward writes them:
    batch norm updates its running statistics inside the kernel, without bumping the
    tensor's version, so every buffer is copied first; buffers are small next to
    parameters), copied back where they differ.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with preserved(net, training=False, requires_grad=False):
    ...     net.training, net[0].weight.requires_grad
    (False, False)
    >>> net.training, net[0].weight.requires_grad
    (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    slots = [
        (store, name, t)
        for m in (model.modules() if tensors else ())
        for store in (m._parameters, m._buffers)
        if isinstance(store, dict)  # not a ScriptModule's read-only view
        for name, t in store.items()
    ]
    copies = [
        (t, t.clone())
        for m in (model.modules() if buffer_values else ())
        for t in m._buffers.values()
        if t is not None and not t.is_meta
    ]
    try:
        if training is not None:
            model.train(training)
        if requires_grad is not None:
            for p, _ in flags:
                p.requires_grad_(requires_grad)
        yield
    finally:
        for store, name, t in slots:
            if store.get(name) is not t:
                store[name] = t
        if copies:
            with torch.no_grad():
                for t, copy in copies:
                    if not torch.equal(t, copy):
                        t.copy_(copy)
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)


@contextlib.contextmanager
def scratch_buffers(model: nn.Module) -> Iterator[None]:
    """Within the block the model's buffers are copies; on exit the originals are back,
    untouched. For a forward that must leave no trace while autograd still holds the
    originals for a backward to come: copying values back (``preserved``'s
    ``buffer_values``) would change them in place, which autograd refuses.

    >>> bn = nn.BatchNorm1d(2)
    >>> mean = bn.running_mean
    >>> with scratch_buffers(bn):
    ...     _ = bn(torch.randn(4, 2))
    >>> bn.running_mean is mean and bool((mean == 0).all())
    True
    """
    saved = [(m, k, b) for m in model.modules() for k, b in m._buffers.items()]
    try:
        for m, k, b in saved:
            if b is not None:
                m._buffers[k] = b.clone()
        yield
    finally:
        for m, k, b in saved:
            m._buffers[k] = b
