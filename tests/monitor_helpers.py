"""What the monitor's tests share: small models, a data set, direct computations to
compare with, and a snapshot of every hook a model carries."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_globals

from nbviz.datasets import shapes
from nbviz.examples import SmallCNN

CNN_LAYERS = [f"features.block{i}.{n}" for i in range(1, 5) for n in ("conv", "bn")] + [
    "classifier.fc"
]


def shapes_data():
    return shapes(n=48, size=32, seed=0)


def small_cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes=6, width=8)


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(12, 16),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def tiny(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def modules(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


def own_params(module: nn.Module) -> list[torch.Tensor]:
    return list(module.parameters(recurse=False))


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def direct_grad_stats(model: nn.Module, layers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: ||concatenated grads of its own parameters|| and their max |g|."""
    by_path = modules(model)
    norms, maxes = [], []
    for name in layers:
        g = flat(p.grad for p in own_params(by_path[name]))
        norms.append(float(torch.linalg.vector_norm(g)))
        maxes.append(float(g.abs().max()))
    return np.array(norms), np.array(maxes)


def hook_state(model: nn.Module) -> dict:
    """Every hook dict of every module (and the global ones), as comparable key tuples."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    state = {
        (name, kind): tuple(getattr(m, kind)) for name, m in model.named_modules() for kind in kinds
    }
    for g in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks"):
        state[("<global>", g)] = tuple(getattr(module_globals, g))
    return state


def train_step(model, opt, x, y, mon=None, **extra):
    opt.zero_grad()
    out = model(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    if mon is not None:
        mon.step(loss=loss, acc=(out.argmax(1) == y).float().mean(), **extra)
    opt.step()
    return loss
