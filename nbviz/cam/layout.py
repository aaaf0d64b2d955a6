"""Where a layer's activations lie in space: the layouts Grad-CAM explains.

A layer method needs activations ``(N, C, *spatial)`` with the input's number of
spatial dimensions. Layers give them in four layouts, each turned into that one:

- channels first, ``(N, C, l)``, ``(N, C, h, w)``, ``(N, C, d, h, w)``: convolutions;
- channels last, ``(N, h, w, C)`` (Swin, ConvNeXt's blocks): found when ``(h, w)`` has
  the image's proportions and the channels-first reading does not;
- tokens ``(N, T, C)`` of an image model (ViT, DeiT, BEiT, DINOv2): a few extra tokens
  first (a class token, a distillation token, registers), then a grid of patch tokens
  in raster order. The grid comes from the image size and the patch embedding (a
  convolution whose stride is its kernel, as ``patch_embed.proj`` or Hugging Face's
  ``patch_embeddings.projection``): ``T = extras + gh * gw``, at most `MAX_EXTRAS`
  extras. Without a match, the grid with the image's proportions and the fewest extras;
- anything else, through a ``reshape=`` callable that returns ``(N, C, *spatial)``.

>>> lay = token_layout(17, (32, 32), [(4, 4)])
>>> lay.extras, lay.size
(1, (4, 4))
>>> lay.grid(torch.zeros(2, 17, 8)).shape
torch.Size([2, 8, 4, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

MAX_EXTRAS = 8  # class, distillation and register tokens before the patch grid
FIRST, LAST, TOKENS, CUSTOM = "channels first", "channels last", "tokens", "reshape"
# Modules whose outputs are channels first whatever their sizes.
CHANNELS_FIRST = (
    nn.modules.conv._ConvNd,
    *(
        getattr(nn, f"{kind}{d}d")
        for kind in ("BatchNorm", "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool")
        for d in (1, 2, 3)
    ),
    nn.SyncBatchNorm,
)


@dataclass(frozen=True)
class Layout:
    """How to read one layer's activations as ``(N, C, *size)``."""

    kind: str
    size: tuple[int, ...] = ()  # the map's size (for CUSTOM: known after the reshape)
    extras: int = 0  # TOKENS: the tokens before the grid
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None

    def grid(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (activations or their gradients, as the layer gives them) as ``(N, C,
        *size)``."""
        if self.kind == FIRST:
            return t
        if self.kind == LAST:
            return t.movedim(-1, 1)
        if self.kind == TOKENS:
            n, _, c = t.shape
            return t[:, self.extras :].transpose(1, 2).reshape(n, c, *self.size)
        return self.reshape(t)  # type: ignore[misc]


def plausible(size: tuple[int, ...], spatial: tuple[int, ...]) -> bool:
    """Is ``size`` a map of an input of size ``spatial``: no larger, and (for images and
    volumes) its height and width shrunk by about the same factor."""
    if len(size) != len(spatial) or any(s < 1 or s > S for s, S in zip(size, spatial, strict=True)):
        return False
    if len(size) == 1:
        return True
    fh, fw = spatial[-2] / size[-2], spatial[-1] / size[-1]
    return abs(fh - fw) <= 0.15 * max(fh, fw)


def layout_of(
    t: torch.Tensor, module: nn.Module, spatial: tuple[int, ...], grids: list[tuple[int, int]]
) -> Layout | str:
    """The layout of ``t``, the output of ``module`` for an input of size ``spatial``
    (``grids``: the output sizes of the patch embeddings that ran); or, when ``t`` is
    not a map, why not (words to finish "must output ...")."""
    k = len(spatial)
    if t.ndim == k + 2:
        first, last = tuple(t.shape[2:]), tuple(t.shape[1:-1])
        if (
            k > 1
            and not isinstance(module, CHANNELS_FIRST)
            and plausible(last, spatial)
            and not plausible(first, spatial)
        ):
            return Layout(LAST, last)
        return Layout(FIRST, first)
    if k == 2 and t.ndim == 3:
        return token_layout(t.shape[1], spatial, grids)
    return f"a spatial feature map {_shapes(k)}, got {tuple(t.shape)}"


def _shapes(k: int) -> str:
    where = {1: "l", 2: "h, w", 3: "d, h, w"}[k]
    tokens = " or patch tokens (N, extras + h*w, C)" if k == 2 else ""
    return f"(N, C, {where}){tokens}"


def token_layout(
    tokens: int, spatial: tuple[int, int], grids: list[tuple[int, int]]
) -> Layout | str:
    """The layout of ``tokens`` tokens of an image of size ``spatial``: the patch grid of
    a patch embedding that ran (``grids``) if it fits, else the grid with the image's
    proportions and the fewest extra tokens; or why no grid fits."""
    for gh, gw in grids:
        if 0 <= tokens - gh * gw <= MAX_EXTRAS:
            return Layout(TOKENS, (gh, gw), tokens - gh * gw)
    H, W = spatial
    for extras in range(min(MAX_EXTRAS, tokens - 1) + 1):
        n = tokens - extras
        # A grid of n cells with the image's proportions: h near sqrt(n H / W).
        near = round(math.sqrt(n * H / W))
        for h in (near, near - 1, near + 1):
            if h >= 1 and n % h == 0 and plausible((h, n // h), spatial):
                return Layout(TOKENS, (h, n // h), extras)
    patch = f" (the patch embedding gives a {grids[0][0]}x{grids[0][1]} grid)" if grids else ""
    return (
        f"tokens (N, T, C) that are a grid of patches with the image's proportions "
        f"({H}x{W}) after at most {MAX_EXTRAS} extra tokens, got {tokens} tokens{patch}; pass "
        "reshape= (a callable from the layer's output to (N, C, h, w)) for other layouts"
    )


def patch_convs(model: nn.Module) -> list[nn.Module]:
    """The model's patch embeddings: 2-D convolutions whose stride equals their kernel."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
        and tuple(m.stride) == tuple(m.kernel_size)
        and max(m.kernel_size) > 1
    ]


def repeated_blocks(model: nn.Module) -> set[nn.Module]:
    """The blocks of a transformer: members of a ``ModuleList`` or ``Sequential`` that holds
    at least two modules of one type (``blocks.0``, ``encoder.layer.3``, ``stages.1``)."""
    found: set[nn.Module] = set()
    for m in model.modules():
        if isinstance(m, (nn.ModuleList, nn.Sequential)):
            kids = list(m.children())
            types = [type(c) for c in kids]
            found.update(c for c in kids if types.count(type(c)) >= 2)
    return found
