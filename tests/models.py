"""Reference architectures for the layer-graph tests and benchmarks.

Small but faithful layouts: the module names, nesting and control flow follow
the usual implementations (torchvision's VGG and ResNet, a timm-style ViT,
nanoGPT), so paths such as ``layer1.0.conv1`` or ``transformer.h.3.attn`` mean
what they mean there. Defaults are tiny so tests stay fast; the arguments reach
the real sizes for benchmarks::

    from tests.models import gpt, resnet50, vit

    resnet50(num_classes=1000, width=64)                 # ResNet-50, 25.6 M params
    vit(224, 16, 768, 12, 12, 3072, num_classes=1000)   # ViT-B/16, 86.6 M params
    gpt(50257, 12, 12, 768, 1024)                        # GPT-2 small, 124 M params

Every function returns an ``nn.Module``; ``example_input(name)`` gives a
matching input for the small defaults.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --- VGG -------------------------------------------------------------------------------------

# VGG-11 ("A"): numbers are output channels relative to 64, "M" a 2x2 max-pool.
_VGG11 = [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"]


class VGG(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 8, hidden: int = 64, pool: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in _VGG11:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v * width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v * width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def vgg11(num_classes: int = 10, width: int = 8, hidden: int = 64, pool: int = 1) -> VGG:
    """VGG-11 layout; ``vgg11(1000, width=64, hidden=4096, pool=7)`` is the real one."""
    return VGG(num_classes, width, hidden, pool)


# --- ResNet ----------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity  # the residual addition, in place as in torchvision
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, layers: list[int], num_classes: int = 10, width: int = 16):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes: int = 10, width: int = 16) -> ResNet:
    """ResNet-18 layout (BasicBlocks 2-2-2-2); ``width=64`` is the real one."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width)


def resnet50(num_classes: int = 10, width: int = 16) -> ResNet:
    """ResNet-50 layout (Bottlenecks 3-4-6-3); ``resnet50(1000, width=64)`` is the real one."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, width)


# --- MobileNetV2 -----------------------------------------------------------------------------


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_res = stride == 1 and inp == out
        layers: list[nn.Module] = [ConvBNReLU(inp, hidden, 1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out, 1, bias=False),  # linear bottleneck
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


# (expansion, channels, repeats, first stride) of torchvision's MobileNetV2.
_MOBILENET_V2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10, width: float = 0.25):
        super().__init__()
        c = lambda v: max(8, int(v * width + 4) // 8 * 8)  # noqa: E731  (torchvision's rounding)
        inp = c(32)
        layers: list[nn.Module] = [ConvBNReLU(3, inp, 3, 2)]
        for t, ch, n, s in _MOBILENET_V2:
            for i in range(n):
                layers.append(InvertedResidual(inp, c(ch), s if i == 0 else 1, t))
                inp = c(ch)
        last = max(1280, c(1280)) if width > 1 else 1280
        layers.append(ConvBNReLU(inp, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = 10, width: float = 0.25) -> MobileNetV2:
    """MobileNetV2 layout (torchvision's module paths, 141 leaf modules); ``width=1.0`` is the
    real one (3.5 M parameters with 1,000 classes)."""
    return MobileNetV2(num_classes, width)


# --- ViT -------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image_size, patch_size, dim, depth, heads, mlp_dim, num_classes, channels):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, channels, dim)
        num_patches = (image_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([ViTBlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def vit(
    image_size: int = 32,
    patch_size: int = 8,
    dim: int = 32,
    depth: int = 4,
    heads: int = 4,
    mlp_dim: int = 64,
    num_classes: int = 10,
    channels: int = 3,
) -> ViT:
    """ViT encoder; ``vit(224, 16, 768, 12, 12, 3072, 1000)`` is ViT-B/16."""
    return ViT(image_size, patch_size, dim, depth, heads, mlp_dim, num_classes, channels)


# --- GPT -------------------------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    def __init__(self, n_head: int, d_model: int, ctx: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        # The causal mask is state, not a parameter: a (non-persistent) buffer as in nanoGPT.
        mask = torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)).view(1, 1, ctx, ctx)
        self.register_buffer("bias", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.bias[:, :, :T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPTMLP(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class GPTBlock(nn.Module):
    def __init__(self, n_head: int, d_model: int, ctx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(n_head, d_model, ctx)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = GPTMLP(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, n_layer: int, n_head: int, d_model: int, ctx: int):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, d_model),
                wpe=nn.Embedding(ctx, d_model),
                drop=nn.Dropout(0.0),
                h=nn.ModuleList([GPTBlock(n_head, d_model, ctx) for _ in range(n_layer)]),
                ln_f=nn.LayerNorm(d_model),
            )
        )
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one shared Parameter

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def gpt(
    vocab: int = 128, n_layer: int = 2, n_head: int = 2, d_model: int = 32, ctx: int = 32
) -> GPT:
    """nanoGPT-style decoder with weight tying; ``gpt(50257, 12, 12, 768, 1024)`` is GPT-2 small."""
    return GPT(vocab, n_layer, n_head, d_model, ctx)


# --- Built-in recurrent and transformer modules ---------------------------------------------


class LSTMClassifier(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, num_layers: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, (h, c) = self.lstm(self.embed(tokens))
        return self.fc(out[:, -1])


def lstm(
    vocab: int = 50, embed: int = 16, hidden: int = 24, num_layers: int = 2, num_classes: int = 5
) -> LSTMClassifier:
    """Embedding -> 2-layer ``nn.LSTM`` -> linear head on the last step."""
    return LSTMClassifier(vocab, embed, hidden, num_layers, num_classes)


class TransformerClassifier(nn.Module):
    def __init__(self, d_model: int, nhead: int, num_layers: int, num_classes: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


def transformer_encoder(
    d_model: int = 32, nhead: int = 4, num_layers: int = 3, num_classes: int = 5
) -> TransformerClassifier:
    """``nn.TransformerEncoder`` (deep copies of one layer) with a mean-pooled head."""
    return TransformerClassifier(d_model, nhead, num_layers, num_classes)


# --- Special cases ---------------------------------------------------------------------------


class Branchy(nn.Module):
    """Data-dependent control flow: the branch depends on the values of the input."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.stem = nn.Linear(dim, dim)
        self.positive = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.negative = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if h.sum() > 0:  # a Python branch on a tensor value
            return self.positive(h)
        return torch.tanh(self.negative(h))


def branchy(dim: int = 8) -> Branchy:
    return Branchy(dim)


class DictNet(nn.Module):
    """Takes a dict of tensors and returns a dict (as many detection/HF models do)."""

    def __init__(self, dim: int = 8, num_classes: int = 3):
        super().__init__()
        self.encoder = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, batch: dict, scale: float = 1.0) -> dict:
        features = self.encoder(batch["x"]) * batch["mask"] * scale
        return {"logits": self.head(features), "features": features}


def dict_net(dim: int = 8, num_classes: int = 3) -> DictNet:
    return DictNet(dim, num_classes)


class SharedLayer(nn.Module):
    """One ``Linear`` applied ``times`` times (ALBERT-style weight sharing by reuse)."""

    def __init__(self, dim: int = 8, times: int = 3):
        super().__init__()
        self.times = times
        self.inp = nn.Linear(dim, 2 * dim)
        self.shared = nn.Linear(2 * dim, 2 * dim)
        self.out = nn.Linear(2 * dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for _ in range(self.times):
            x = self.shared(x)
        return self.out(x)


def shared_layer(dim: int = 8, times: int = 3) -> SharedLayer:
    return SharedLayer(dim, times)


class Broken(nn.Module):
    """Fails in its 3rd layer: ``fc3`` expects 32 features but gets 16."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.ReLU()
        self.fc3 = nn.Linear(32, 4)
        self.never = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.never(self.fc3(self.act(self.fc1(x))))


def broken() -> Broken:
    return Broken()


class InplaceNet(nn.Module):
    """Conv -> in-place ReLU -> conv, plus an in-place add and an indexed assignment."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        z = self.conv2(y)
        z.add_(y)
        z[:, 0] = 0.0
        return z.mean(dim=(2, 3))


def inplace_net() -> InplaceNet:
    return InplaceNet()


# --- Inputs ----------------------------------------------------------------------------------


def example_input(name: str, batch: int = 2):
    """A small input matching the default sizes of the reference model ``name``."""
    g = torch.Generator().manual_seed(0)
    if name in ("vgg11", "resnet18", "resnet50", "vit", "inplace_net"):
        return torch.randn(batch, 3, 32, 32, generator=g)
    if name == "gpt":
        return torch.randint(0, 128, (batch, 16), generator=g)
    if name == "lstm":
        return torch.randint(0, 50, (batch, 7), generator=g)
    if name == "transformer_encoder":
        return torch.randn(batch, 6, 32, generator=g)
    if name in ("branchy", "shared_layer", "broken"):
        return torch.randn(batch, 8, generator=g)
    if name == "dict_net":
        return {"x": torch.randn(batch, 8, generator=g), "mask": torch.ones(batch, 8)}
    raise ValueError(f"no example input for {name!r}")


# The reference models and their example inputs, for parametrised tests.
ZOO = {
    "vgg11": vgg11,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vit": vit,
    "gpt": gpt,
    "lstm": lstm,
    "transformer_encoder": transformer_encoder,
    "branchy": branchy,
    "dict_net": dict_net,
    "shared_layer": shared_layer,
    "inplace_net": inplace_net,
}


# --- Hugging Face --------------------------------------------------------------------------------


def hf_vit(
    image_size: int = 16, layers: int = 1, width: int = 16, heads: int = 2, num_labels: int = 3
) -> nn.Module:
    """A small ``transformers`` ViT image classifier built from its config (no weights),
    in train mode; 8-pixel patches, an MLP twice the width."""
    import transformers

    config = transformers.ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * width,
        num_labels=num_labels,
    )
    return transformers.ViTForImageClassification(config)
