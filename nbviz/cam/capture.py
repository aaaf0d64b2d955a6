"""Forward hooks that keep the activations to explain, as their layers produced them.

Each hooked layer's output is kept, and the rest of the forward gets a copy of it (the
hook returns the copy): a later in-place operation (``ReLU(inplace=True)`` after a
convolution, ``out += identity`` after a ResNet's BatchNorm) changes the copy, never the
kept activation, and the gradient with respect to the copy is the gradient with respect
to the activation. The copy is copy-on-write where torch has it (``torch._lazy_clone``):
memory is only spent on the layers whose output is written over. An output that does not
need gradients (the layers after a backbone run under ``torch.no_grad()``, or any layer
when nothing before it has parameters that train) is kept as a new tensor that needs
them; parameters are not touched. Hooks are removed on exit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .layout import CUSTOM, FIRST, LAST, TOKENS, Layout, layout_of, patch_convs, repeated_blocks

# A copy that costs nothing until one of the two tensors is written (torch >= 2.3 on the
# CPU; elsewhere, or on older versions, a plain clone).
_LAZY_CLONE = getattr(torch, "_lazy_clone", None)


def _copy(t: torch.Tensor) -> torch.Tensor:
    if _LAZY_CLONE is not None and t.device.type == "cpu":
        try:
            return _LAZY_CLONE(t)
        except RuntimeError:  # a storage that cannot be shared copy-on-write
            pass
    return t.clone()


@dataclass
class Seen:
    """What one hooked layer gave in the forward."""

    path: str
    module: nn.Module
    order: int  # its place among the hooked layers that ran, in the order they finished
    calls: int = 0
    tensor: torch.Tensor | None = None  # the activation (a meta tensor in shape mode)
    got: str = ""  # what the layer returned, in words, when it was not a tensor
    no_grad: bool = False  # it ran with gradients off
    mark: int = 0  # the clock's reading when it finished (attention maps so far)


class Capture:
    """Hooks on ``chosen`` ({module: path}; ``None``: the automatic choice) for inputs of
    spatial size ``spatial``. ``gradients``: keep activations that need gradients (the
    layer methods); otherwise only their shapes and ``clock()`` at each layer's end."""

    def __init__(
        self,
        model: nn.Module,
        chosen: dict[nn.Module, str] | None,
        spatial: tuple[int, ...],
        *,
        gradients: bool = True,
        reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.explicit = chosen is not None
        self.blocks = repeated_blocks(model)
        # The automatic choice for CNNs: conv layers and modules with children.
        self.cnn = {
            m
            for m in model.modules()
            if isinstance(m, nn.modules.conv._ConvNd) or next(m.children(), None) is not None
        }
        if chosen is None:  # those and transformer blocks; checked as they run
            chosen = {
                m: p for p, m in model.named_modules() if p and (m in self.cnn or m in self.blocks)
            }
        self.chosen, self.spatial, self.gradients = chosen, spatial, gradients
        self.reshape, self.clock = reshape, clock
        self.patches = patch_convs(model) if len(spatial) == 2 else []
        self.grids: list[tuple[int, int]] = []  # the patch embeddings' output sizes
        self.seen: dict[str, Seen] = {}
        # id(copy) -> (copy, its version when made, its layer)
        self.copies: dict[int, tuple[weakref.ref, int, str]] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> Capture:
        for m in self.patches:
            self.handles.append(m.register_forward_hook(self._patch_hook))
        for m, path in self.chosen.items():
            self.handles.append(m.register_forward_hook(self._hook(path)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.copies.clear()

    def _patch_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            size = (int(output.shape[2]), int(output.shape[3]))
            if size not in self.grids:
                self.grids.append(size)

    def _maybe_map(self, t: torch.Tensor) -> bool:
        """Could ``t`` be a map (the automatic choice skips the rest as it runs)?"""
        k = len(self.spatial)
        return self.reshape is not None or t.ndim == k + 2 or (k == 2 and t.ndim == 3)

    def _hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            seen = self.seen.get(path)
            if seen is None:
                seen = self.seen[path] = Seen(path, module, len(self.seen))
            seen.calls += 1
            if seen.calls > 1:
                return None
            seen.mark = self.clock() if self.clock else 0
            t, rebuild = _main_tensor(output)
            if t is None:
                seen.got = type(output).__name__
                return None
            if not self.explicit and not self._maybe_map(t):
                return None
            known = self.copies.get(id(t))
            if known is not None and known[0]() is t and t._version == known[1]:
                # A block returning its child's output, unchanged since: the same activation.
                seen.tensor = self.seen[known[2]].tensor
                return None
            if not self.gradients:
                seen.tensor = torch.empty(t.shape, device="meta")
                return None
            if not torch.is_grad_enabled():
                seen.no_grad = True
                return None
            kept = t if t.requires_grad else t.detach().requires_grad_()
            copy = _copy(kept)
            seen.tensor = kept
            self.copies[id(copy)] = (weakref.ref(copy), copy._version, path)
            return rebuild(copy)

        return hook

    def layout(self, s: Seen) -> Layout | str:
        """The layout of a hooked layer's activations, or why they are not a map."""
        if s.tensor is None:
            return f"a map, got {s.got or 'nothing it could explain'}"
        if self.reshape is not None:
            return Layout(CUSTOM, reshape=self.reshape)
        return layout_of(s.tensor, s.module, self.spatial, self.grids)

    def activations(self) -> list[tuple[str, torch.Tensor, Layout]]:
        """(path, activation, layout) shallow to deep. Explicit layers: each one asked
        for, or a ValueError saying why it cannot be explained. The automatic choice: the
        blocks of a transformer (tokens or channels-last maps), else every conv layer and
        block with a map; each activation once, layers that ran once with gradients on."""
        found: list[tuple[Seen, Layout]] = []
        for s in sorted(self.seen.values(), key=lambda s: s.order):
            problem, lay = self._problem(s)
            if problem:
                if self.explicit:
                    raise ValueError(f"layer {s.path!r} {problem}")
                continue
            found.append((s, lay))
        if self.explicit:
            missing = [p for p in self.chosen.values() if p not in self.seen]
            if missing:
                raise ValueError(
                    f"layer {missing[0]!r} does not run in the model's forward: choose a "
                    "layer the class scores are computed through"
                )
        else:
            transformer = [
                (s, lay)
                for s, lay in found
                if s.module in self.blocks and lay.kind in (TOKENS, LAST, CUSTOM)
            ]
            if transformer and any(lay.kind in (TOKENS, CUSTOM) for _, lay in transformer):
                found = transformer
            elif self.reshape is not None:
                found = []
            else:
                found = [(s, lay) for s, lay in found if s.module in self.cnn]
            # Each activation once (a block returning its last child's output: the child).
            first: dict[int, tuple[Seen, Layout]] = {}
            for s, lay in found:
                first.setdefault(id(s.tensor), (s, lay))
            found = list(first.values())
        if not found:
            what = (
                "no transformer block (a member of a ModuleList or Sequential) to reshape"
                if self.reshape is not None
                else f"no layer with a spatial output {_spatial_words(len(self.spatial))}"
            )
            raise ValueError(f"the model has {what} to explain; name the layers with layers=")
        return [(s.path, s.tensor, lay) for s, lay in found]  # type: ignore[misc]

    def _problem(self, s: Seen) -> tuple[str | None, Layout]:
        if s.calls > 1:
            return f"runs {s.calls} times in one forward pass: its map is undefined", Layout(FIRST)
        if s.no_grad:
            return (
                "runs under torch.no_grad() inside the model's forward, so no gradient reaches "
                "it; choose a layer after the part that runs without gradients",
                Layout(FIRST),
            )
        lay = self.layout(s)
        if isinstance(lay, str):
            return f"must output {lay}", Layout(FIRST)
        return None, lay


def _spatial_words(k: int) -> str:
    return {1: "(N, C, l)", 2: "(N, C, h, w)", 3: "(N, C, d, h, w)"}[k]


def _main_tensor(output: Any) -> tuple[torch.Tensor | None, Callable[[Any], Any]]:
    """A layer's activation tensor (its output, or the first item of a tuple or list, as
    Hugging Face layers return ``(hidden_states, attentions)``), and how to rebuild the
    output around a replacement."""
    if isinstance(output, torch.Tensor):
        return output, lambda t: t
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        rest = list(output[1:])
        if hasattr(output, "_fields"):  # namedtuple
            return output[0], lambda t: type(output)(t, *rest)
        return output[0], lambda t: type(output)([t, *rest])
    return None, lambda t: output
