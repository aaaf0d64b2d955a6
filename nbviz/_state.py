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
