"""Leave a model as it was found: what every capability that runs a user's model needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def preserved(
    model: nn.Module, *, training: bool | None = None, requires_grad: bool | None = None
) -> Iterator[None]:
    """Within the block, optionally set the model's mode and its parameters'
    ``requires_grad``; on exit (normal or not) put back every submodule's
    ``training`` flag and every parameter's ``requires_grad``.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with preserved(net, training=False, requires_grad=False):
    ...     net.training, net[0].weight.requires_grad
    (False, False)
    >>> net.training, net[0].weight.requires_grad
    (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if training is not None:
            model.train(training)
        if requires_grad is not None:
            for p, _ in flags:
                p.requires_grad_(requires_grad)
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
