"""Small CNNs and a plain training loop, for notebooks and tests (not the core API).

``SmallCNN`` is a four-block network that learns the shapes data in a minute; ``VGG11``
is a narrow VGG-11 (the classic subject of Grad-CAM) with torchvision's module paths;
``SmallViT`` a small vision transformer on a convolutional stem (a "hybrid" ViT).

The loop has two hooks so that live views can watch training: ``on_batch(outputs,
targets, inputs)`` after every optimisation step (for example a confusion matrix's
``update``) and ``on_epoch(epoch, stats)`` after every epoch.

Example:
    >>> from nbviz.datasets import shapes
    >>> from nbviz.examples import SmallCNN, evaluate, train
    >>> data = shapes(n=120, size=32, seed=0)
    >>> model = SmallCNN(num_classes=len(data.classes))
    >>> history = train(model, data.images, data.labels, epochs=1)
    >>> sorted(history[0])
    ['accuracy', 'epoch', 'loss', 'seconds']
    >>> 0.0 <= evaluate(model, data.images, data.labels) <= 1.0
    True
"""

from __future__ import annotations

import math
import numbers
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import int_at_least
from ._state import preserved

__all__ = ["SmallCNN", "VGG11", "batches", "evaluate", "train"]


class SmallCNN(nn.Module):
    """Conv blocks (conv-bn-relu-maxpool), then global pooling and a linear layer.

    Module paths read ``features.block1.conv``, ``features.block1.bn``,
    ``features.block1.relu``, ``features.block1.pool``, ..., ``features.block4.pool``,
    ``classifier.pool``, ``classifier.flatten``, ``classifier.fc``. Block ``i`` has
    ``width * 2**(i-1)`` channels. Each block halves the resolution, so inputs need at
    least ``2**depth`` pixels a side (16 x 16 with the default four blocks).

    Args:
        num_classes: outputs of the final linear layer.
        in_channels: channels of the input images.
        width: channels of the first block.
        depth: number of conv blocks.
        pool: global pooling before the linear layer, ``"max"`` (default) or ``"avg"``.
            On the shapes data set, global max pooling learns far faster: a class is
            told by the presence of a local feature (a corner, a hole, a spike), and
            averaging dilutes that with the object's size and the cluttered background.

    Example:
        >>> import torch
        >>> model = SmallCNN(num_classes=6)
        >>> model(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 6])
        >>> model.features.block1.conv
        Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    """

    def __init__(
        self,
        num_classes: int = 6,
        in_channels: int = 3,
        width: int = 16,
        depth: int = 4,
        pool: str = "max",
    ):
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("width", width),
            ("depth", depth),
        ):
            int_at_least(name, value)
        pools = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}
        if pool not in pools:
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        channels = [in_channels] + [width * 2**i for i in range(depth)]
        blocks = OrderedDict(
            (f"block{i + 1}", self._block(channels[i], channels[i + 1])) for i in range(depth)
        )
        self.features = nn.Sequential(blocks)
        self.classifier = nn.Sequential(
            OrderedDict(
                pool=pools[pool](1),
                flatten=nn.Flatten(),
                fc=nn.Linear(channels[-1], num_classes),
            )
        )

    @staticmethod
    def _block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                bn=nn.BatchNorm2d(c_out),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(2),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.classifier(self.features(x))


# VGG-11's feature layers (configuration "A"): conv output channels, "M" a 2 x 2 max pool.
_VGG11_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 with batch norm (configuration "A"), narrowed by ``width``, for small images.

    ``features`` is laid out exactly as torchvision's ``vgg11_bn().features``: eight
    3 x 3 convolutions (padding 1), each followed by batch norm and ReLU, and a 2 x 2 max
    pool after convolutions 1, 2, 4, 6 and 8, in one flat ``nn.Sequential``. Module paths
    therefore read ``features.0`` (conv), ``features.1`` (bn), ``features.2`` (relu),
    ``features.3`` (pool), ``features.4`` (conv), ... up to ``features.28`` (the last
    pool); the convolutions are ``features.0, 4, 8, 11, 15, 18, 22, 25``. Then ``pool``
    (global pooling) and ``classifier`` (``Linear, ReLU, Dropout, Linear`` as
    ``classifier.0`` to ``classifier.3``).

    The classic conv widths 64, 128, 256, 256, 512, 512, 512, 512 are multiplied by
    ``width`` (rounded, at least one channel): the default 1/8 gives 8, 16, 32, 32, 64, 64,
    64, 64, which trains on a laptop CPU in a minute or two on 64 x 64 images. The five
    pools divide the resolution by 32, so inputs need at least 32 pixels a side (a 64 x 64
    image leaves maps of 64, 32, 16, 8 and 4 pixels a side for the conv stages).

    Unlike torchvision's (7 x 7 average pooling and a 4096-wide classifier, made for
    224 x 224 ImageNet photos), the head is a global pool and a small two-layer
    classifier. Global max pooling is the default for the reason given in
    :class:`SmallCNN`: on the shapes data a class is told by the presence of a local
    feature, which averaging dilutes.

    Args:
        num_classes: outputs of the final linear layer.
        in_channels: channels of the input images.
        width: factor on VGG-11's channel counts, a number > 0 (1 is the full network).
        pool: global pooling before the classifier, ``"max"`` (default) or ``"avg"``.
        dropout: dropout probability in the classifier, in [0, 1) (none by default: on
            the shapes data it made learning slower).

    Example:
        >>> import torch
        >>> model = VGG11(num_classes=6)
        >>> model(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 6])
        >>> [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
        [8, 16, 32, 32, 64, 64, 64, 64]
        >>> model.features[25]
        Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> len(model.features), type(model.features[28]).__name__
        (29, 'MaxPool2d')
    """

    def __init__(
        self,
        num_classes: int = 6,
        in_channels: int = 3,
        width: float = 1 / 8,
        pool: str = "max",
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            int_at_least(name, value)
        if (
            isinstance(width, bool)
            or not isinstance(width, numbers.Real)
            or not math.isfinite(width)
            or width <= 0
        ):
            raise ValueError(f"width must be a number > 0, got {width!r}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1
        ):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        pools = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}
        if pool not in pools:
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for v in _VGG11_A:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = max(1, round(int(v) * width))
                layers += [
                    nn.Conv2d(channels, out, kernel_size=3, padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = pools[pool](1)
        self.classifier = nn.Sequential(
            nn.Linear(channels, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(float(dropout)),
            nn.Linear(channels, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class TransformerBlock(nn.Module):
    """A pre-norm transformer block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``;
    tokens ``(N, T, dim)`` in and out. Attention is ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim={dim}, heads={heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = (
            nn.Linear(dim, int(dim * mlp_ratio)),
            nn.Linear(int(dim * mlp_ratio), dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, T, C / heads)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, c)
        x = x + self.proj(attended)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class SmallViT(nn.Module):
    """A small vision transformer for 64 x 64 images, on a convolutional stem.

    Three conv-BN-ReLU-maxpool stages bring the image to an 8 x 8 grid; a 1 x 1 patch
    embedding (``patch_embed``) makes its 64 cells tokens of width ``dim``; a class token
    and learned position embeddings go in front; ``depth`` pre-norm transformer blocks
    (``blocks[i]``) follow, and the head reads the class token. This is the "hybrid" ViT
    of Dosovitskiy et al. (2021): on a few thousand images a plain ViT, patches straight
    from the pixels, learns far too slowly on a CPU (26 % on the shapes after 12 epochs);
    this one reaches about 94 % with ``train(..., schedule="cosine")`` on 9,000 images.
    Keep PyTorch's default initialisation: ViTs' usual truncated normal (std 0.02) made it
    stall for several epochs here.

    Example:
        >>> import torch
        >>> vit = SmallViT(num_classes=6)
        >>> vit(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 6])
        >>> vit.blocks[0](torch.zeros(2, 65, 64)).shape  # a class token and 8 x 8 patches
        torch.Size([2, 65, 64])
    """

    def __init__(
        self,
        num_classes: int = 6,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        stem: tuple[int, ...] = (16, 32, 64),
        image_size: int = 64,
    ):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("dim", dim), ("depth", depth)):
            int_at_least(name, value)
        grid = image_size // 2 ** len(stem)
        if grid < 1:
            raise ValueError(
                f"image_size must be at least {2 ** len(stem)} for this stem, got {image_size}"
            )
        channels = [3, *stem]
        self.stem = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
                for c_in, c_out in zip(channels, channels[1:], strict=False)
            ]
        )
        self.patch_embed = nn.Conv2d(channels[-1], dim, kernel_size=1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, dim) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, 3, H, W)``."""
        tokens = self.patch_embed(self.stem(x)).flatten(2).transpose(1, 2)  # (N, 64, dim)
        cls = self.cls_token.expand(len(tokens), -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def _as_tensors(images: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.ndim < 1 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            "expected images (N, ...) and labels (N,) of the same length, got shapes "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    return images, labels


def _check_batch_size(batch_size: int) -> int:
    return int_at_least("batch_size", batch_size)


def batches(
    images: Any,
    labels: Any,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` minibatches; the last one may be smaller.

    With ``shuffle`` the order is a permutation drawn from a local generator seeded with
    ``seed`` (the same seed gives the same batches; global random state is untouched).

    Example:
        >>> import torch
        >>> x, y = torch.zeros(10, 3, 8, 8), torch.arange(10)
        >>> [len(yb) for _, yb in batches(x, y, batch_size=4)]
        [4, 4, 2]
    """
    images, labels = _as_tensors(images, labels)
    batch_size = _check_batch_size(batch_size)
    n = len(labels)
    if shuffle:
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield images[idx], labels[idx]


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def train(
    model: nn.Module,
    images: Any,
    labels: Any,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    on_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any] | None = None,
    on_epoch: Callable[[int, dict], Any] | None = None,
    *,
    val: tuple[Any, Any] | None = None,
    schedule: str = "constant",
) -> list[dict]:
    """Train ``model`` with Adam and cross-entropy; return one stats dict per epoch.

    The model is in train mode during training; afterwards every submodule's mode is put
    back as it was. Batches are moved to the device of the model's parameters.

    Args:
        model: a classifier returning logits ``(B, num_classes)``.
        images: the training images, ``(N, C, H, W)``.
        labels: their integer classes, ``(N,)``.
        epochs: number of passes over the data.
        batch_size: minibatch size.
        lr: Adam's learning rate.
        seed: seeds the shuffling (epoch ``e`` uses its own seed derived from it).
        on_batch: called after each optimisation step as ``on_batch(outputs, targets,
            inputs)`` with the batch's detached logits, its targets and its inputs.
        on_epoch: called after each epoch as ``on_epoch(epoch, stats)``, ``epoch``
            counting from 1 and ``stats`` the dict appended to the history.
        val: optional ``(images, labels)``; if given, each epoch's stats also hold
            ``val_accuracy`` from :func:`evaluate`.
        schedule: ``"constant"`` keeps ``lr``; ``"cosine"`` warms up linearly over the first
            tenth of the steps, then decays to 0 along a half cosine (what transformers
            need: at a constant rate, the small ViT stalls).

    Returns:
        A list with a dict per epoch: ``epoch`` (from 1), ``loss`` (mean training loss),
        ``accuracy`` (training accuracy over the epoch, measured on the fly),
        ``seconds`` (the epoch's time, ``on_batch`` and validation included) and, with ``val``,
        ``val_accuracy``.

    Example:
        >>> from nbviz.datasets import shapes
        >>> data = shapes(n=60, size=32)
        >>> model = SmallCNN()
        >>> seen = []
        >>> history = train(model, data.images, data.labels, epochs=1, batch_size=32,
        ...                 on_batch=lambda out, y, x: seen.append(tuple(out.shape)))
        >>> seen
        [(32, 6), (28, 6)]
    """
    images, labels = _as_tensors(images, labels)
    batch_size = _check_batch_size(batch_size)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    device = _device_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(labels) // batch_size)
    rate = _cosine(steps) if schedule == "cosine" else None
    step = 0
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total_loss = 0.0
        correct = 0
        seen = 0
        epoch_seed = int(np.random.SeedSequence([int(seed), epoch]).generate_state(1)[0])
        with preserved(model, training=True):
            for x, y in batches(images, labels, batch_size, shuffle=True, seed=epoch_seed):
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                outputs = model(x)
                loss = F.cross_entropy(outputs, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if rate is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = lr * rate(step)
                optimizer.step()
                step += 1
                outputs = outputs.detach()
                total_loss += float(loss.detach()) * len(y)
                correct += int((outputs.argmax(dim=1) == y).sum())
                seen += len(y)
                if on_batch is not None:
                    on_batch(outputs, y, x)
        stats: dict[str, float] = {
            "epoch": epoch,
            "loss": total_loss / max(seen, 1),
            "accuracy": correct / max(seen, 1),
        }
        if val is not None:
            stats["val_accuracy"] = evaluate(model, *val)
        stats["seconds"] = time.perf_counter() - start
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history


SCHEDULES = ("constant", "cosine")


def _cosine(steps: int) -> Callable[[int], float]:
    """The learning-rate factor at each step: a linear warm-up over the first tenth, then a
    half cosine down to 0."""
    warm = max(1, steps // 10)

    def rate(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    return rate


def evaluate(model: nn.Module, images: Any, labels: Any, batch_size: int = 256) -> float:
    """Accuracy of ``model`` on ``(images, labels)``, in eval mode and under ``no_grad``.

    Every submodule's train/eval mode is restored afterwards.

    Example:
        >>> import torch
        >>> model = SmallCNN(num_classes=2)
        >>> acc = evaluate(model, torch.rand(8, 3, 16, 16), torch.zeros(8, dtype=torch.long))
        >>> 0.0 <= acc <= 1.0
        True
    """
    images, labels = _as_tensors(images, labels)
    batch_size = _check_batch_size(batch_size)
    if len(labels) == 0:
        raise ValueError("evaluate needs at least one sample, got 0")
    device = _device_of(model)
    correct = 0
    with preserved(model, training=False), torch.no_grad():
        for x, y in batches(images, labels, batch_size, shuffle=False):
            outputs = model(x.to(device))
            correct += int((outputs.argmax(dim=1) == y.to(device)).sum())
    return correct / len(labels)
