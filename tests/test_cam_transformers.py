"""Grad-CAM on vision transformers and channels-last maps, and attention rollout.

Covers: Grad-CAM on ViT tokens (the in-repo timm-style ViT, Hugging Face's
``ViTForImageClassification``, register tokens, non-square images) equal to Captum's
``LayerGradCam`` on the same model with the tokens laid out on their grid; Swin-style
channels-last maps; ``reshape=``; the default layers of a transformer (its blocks);
attention rollout against a direct numpy implementation fed attention weights taken
independently (Hugging Face's ``output_attentions`` and a numpy re-run of each
attention); clear errors for layouts nbviz cannot read, with the model left as found.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn
from transformers import ViTConfig, ViTForImageClassification

from nbviz.cam import compute
from tests.models import ViT, vit
from tests.test_cam_core import assert_unchanged, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


def images(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def hf_vit(layers: int = 3, image: int | tuple = 32, attn: str = "sdpa", seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = ViTConfig(
        image_size=image,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=5,
        **kw,
    )
    model = ViTForImageClassification(cfg).eval()
    model.set_attn_implementation(attn)
    return model


def small_vit(seed: int = 0, **kwargs) -> ViT:
    torch.manual_seed(seed)
    return vit(**kwargs).eval()


# --- Captum on the token grid ---------------------------------------------------------------


class Merge(nn.Module):
    """Puts the extra tokens and the grid back together. Captum explains its inputs
    (``attribute_to_layer_input=True``): the grid ``(N, C, h, w)`` is the second."""

    def forward(self, extras: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return torch.cat([extras, grid.flatten(2).transpose(1, 2)], dim=1)


class OnGrid(nn.Module):
    """A transformer block whose output tokens pass through a (N, C, h, w) grid on their way
    out: the same function, with a layer Captum's LayerGradCam can read."""

    def __init__(self, block: nn.Module, extras: int, size: tuple[int, int]):
        super().__init__()
        self.block, self.extras, self.size = block, extras, size
        self.merge = Merge()

    def forward(self, *args, **kwargs):
        out = self.block(*args, **kwargs)
        t = out[0] if isinstance(out, tuple) else out
        n, _, c = t.shape
        grid = t[:, self.extras :].transpose(1, 2).reshape(n, c, *self.size)
        merged = self.merge(t[:, : self.extras], grid)
        return (merged, *out[1:]) if isinstance(out, tuple) else merged


class LastOnFirst(nn.Module):
    """A channels-last (N, h, w, C) layer whose output passes through (N, C, h, w)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer, self.back = layer, nn.Identity()

    def forward(self, x):
        return self.back(self.layer(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def swap(model: nn.Module, path: str, make) -> tuple[nn.Module, nn.Module]:
    """A deep copy of ``model`` with the module at ``path`` wrapped by ``make``."""
    twin = copy.deepcopy(model)
    parent_path, _, name = path.rpartition(".")
    parent = twin.get_submodule(parent_path) if parent_path else twin
    wrapped = make(getattr(parent, name))
    setattr(parent, name, wrapped)
    return twin, wrapped


def captum_on_grid(model, path, x, targets, extras, size, logits=lambda o: o):
    twin, wrapped = swap(model, path, lambda b: OnGrid(b, extras, size))
    cam = LayerGradCam(lambda inp: logits(twin(inp)), wrapped.merge)
    attr = cam.attribute(x, target=targets, relu_attributions=True, attribute_to_layer_input=True)
    return attr[1][:, 0].detach()


def assert_close_to(ref: torch.Tensor, got: torch.Tensor) -> None:
    assert got.shape == ref.shape
    scale = float(ref.abs().max())
    assert scale > 0, "the reference map is zero: the comparison proves nothing"
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * scale)


# --- 1. Grad-CAM on ViT tokens equals Captum on the grid -------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_vit_default_layers_are_its_blocks(method):
    model, x = small_vit(), images(3, 3, 32, 32)
    before = snapshot(model)
    res = compute(model, x, targets="topk:2", method=method)
    assert res.layers == [f"blocks.{i}" for i in range(4)]
    assert res.raw("blocks.0").shape == (3, 4, 4) and res.maps(0).shape == (3, 32, 32)
    # The head reads the class token alone after the last block: no gradient reaches the
    # patch tokens there, and the result says so.
    assert res.no_gradient == ("blocks.3",)
    assert torch.equal(res.raw("blocks.3", None), torch.zeros(3, 2, 4, 4))
    assert_unchanged(model, before)


def test_vit_gradcam_equals_captum_on_the_token_grid():
    model, x = small_vit(), images(3, 3, 32, 32)
    res = compute(model, x, targets=[[1, 4], [0, 0], [9, 2]])
    for layer in res.layers[:-1]:
        for col in range(2):
            ref = captum_on_grid(model, layer, x, res.targets[:, col].tolist(), 1, (4, 4))
            assert_close_to(ref, res.raw(layer, col))


def test_hugging_face_vit_equals_captum_and_takes_what_it_returns():
    model, x = hf_vit(), images(2, 3, 32, 32)
    before = snapshot(model)
    res = compute(model, x, targets="topk:2")  # an ImageClassifierOutput: its logits
    assert res.layers == ["vit.layers.0", "vit.layers.1", "vit.layers.2"]
    assert res.no_gradient == ("vit.layers.2",)
    with torch.no_grad():
        torch.testing.assert_close(res.probs, model(x).logits.softmax(1))
    for layer in res.layers[:-1]:
        for col in range(2):
            ref = captum_on_grid(
                model, layer, x, res.targets[:, col].tolist(), 1, (4, 4), lambda o: o.logits
            )
            assert_close_to(ref, res.raw(layer, col))
    # Explicit layers inside a block: the attention (a tuple: its first item) and the MLP.
    res = compute(model, x, layers=["vit.layers.1.attention", "vit.layers.1.mlp"])
    assert res.raw("vit.layers.1.mlp").shape == (2, 4, 4)
    assert_unchanged(model, before)


def test_hugging_face_processor_dict_and_forward_kwargs():
    model, x = hf_vit(), images(2, 3, 32, 32)
    ref = compute(model, x, targets=[1, 3])
    as_dict = compute(model, {"pixel_values": x}, targets=[1, 3])
    kw = compute(model, x, targets=[1, 3], forward_kwargs={"interpolate_pos_encoding": False})
    for res in (as_dict, kw):
        assert res.layers == ref.layers
        for layer in ref.layers:
            torch.testing.assert_close(res.raw(layer, None), ref.raw(layer, None))


class Registers(nn.Module):
    """A ViT with a class token and four register tokens before the patches (DINOv2-style),
    on non-square images."""

    def __init__(self, regs: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.inner = vit(image_size=32, patch_size=8, dim=32, depth=3, heads=4)
        self.regs = nn.Parameter(torch.randn(1, regs, 32) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, 1 + regs + 4 * 6, 32) * 0.02)

    def forward(self, x):
        v = self.inner
        t = v.patch_embed(x)
        n = t.shape[0]
        t = torch.cat([v.cls_token.expand(n, -1, -1), self.regs.expand(n, -1, -1), t], 1)
        t = t + self.pos
        for block in v.blocks:
            t = block(t)
        return v.head(v.norm(t)[:, 0])


def test_register_tokens_and_non_square_images():
    model, x = Registers().eval(), images(2, 3, 32, 48)
    res = compute(model, x, targets=[[2, 5], [7, 1]])
    assert res.layers == ["inner.blocks.0", "inner.blocks.1", "inner.blocks.2"]
    assert res.raw(0).shape == (2, 4, 6)  # 5 extra tokens, then the 4 x 6 patch grid
    assert res.maps(0).shape == (2, 32, 48)
    for layer in res.layers[:-1]:
        ref = captum_on_grid(model, layer, x, res.targets[:, 0].tolist(), 5, (4, 6))
        assert_close_to(ref, res.raw(layer))


class NoPatchConv(nn.Module):
    """Tokens from a linear patch embedding (no convolution to read the grid from): the
    grid is the one with the image's proportions; here two extra tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(3 * 8 * 8, 16)
        self.extra = nn.Parameter(torch.randn(1, 2, 16))
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Linear(16, 16), nn.GELU()), nn.Sequential(nn.Linear(16, 16), nn.GELU())
        )
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        n = x.shape[0]
        p = x.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(n, -1, 192)
        t = torch.cat([self.extra.expand(n, -1, -1), self.embed(p)], 1)
        return self.head(self.blocks(t).mean(1))


def test_grid_without_a_patch_convolution():
    model, x = NoPatchConv(), images(2, 3, 24, 40)
    res = compute(model, x, targets=2)
    assert res.layers == ["blocks.0", "blocks.1"]
    assert res.raw(0).shape == (2, 3, 5)
    ref = captum_on_grid(model, "blocks.0", x, 2, 2, (3, 5))
    assert_close_to(ref, res.raw("blocks.0"))


# --- 2. Channels-last maps and reshape= ------------------------------------------------------


class ChannelsLast(nn.Module):
    """Swin/ConvNeXt-style stages working on (N, h, w, C) maps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 12, 4, 4)
        self.stages = nn.Sequential(
            nn.Sequential(nn.LayerNorm(12), nn.Linear(12, 12), nn.GELU()),
            nn.Sequential(nn.LayerNorm(12), nn.Linear(12, 12), nn.GELU()),
        )
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        h = self.stages(self.stem(x).permute(0, 2, 3, 1))
        return self.head(h.mean(dim=(1, 2)))


def test_channels_last_maps_equal_captum():
    model, x = ChannelsLast().eval(), images(2, 3, 32, 32)
    res = compute(model, x, targets="topk:2")
    assert "stages.0" in res.layers and res.raw("stages.0").shape == (2, 8, 8)
    for layer in ("stages.0", "stages.1"):
        twin, wrapped = swap(model, layer, LastOnFirst)
        for col in range(2):
            ref = LayerGradCam(twin, wrapped.back).attribute(
                x, target=res.targets[:, col].tolist(), relu_attributions=True
            )
            assert_close_to(ref[:, 0].detach(), res.raw(layer, col))


def test_reshape_reads_a_layout_nbviz_cannot_infer():
    # Tokens in column-major order: the inferred raster grid would be transposed.
    model, x = small_vit(), images(2, 3, 32, 32)

    def column_major(t):
        return t[:, 1:].reshape(t.shape[0], 4, 4, -1).permute(0, 3, 2, 1)

    res = compute(model, x, layers=["blocks.1"], targets=3, reshape=column_major)
    inferred = compute(model, x, layers=["blocks.1"], targets=3)
    torch.testing.assert_close(res.raw("blocks.1"), inferred.raw("blocks.1").transpose(1, 2))
    # Without layers=, reshape= applies to the blocks.
    assert compute(model, x, reshape=column_major).layers == [f"blocks.{i}" for i in range(4)]


# --- 3. Attention rollout --------------------------------------------------------------------


def numpy_rollout(attentions: list[np.ndarray], extras: int, size) -> list[np.ndarray]:
    """Abnar & Zuidema, directly: per layer, heads averaged, identity added, rows
    normalised, multiplied through; the class token's row over the patch tokens."""
    n, _, t, _ = attentions[0].shape
    joint = np.stack([np.eye(t)] * n)
    out = []
    for a in attentions:
        a = a.mean(axis=1) + np.eye(t)
        a = a / a.sum(axis=-1, keepdims=True)
        joint = np.einsum("nij,njk->nik", a, joint)
        row = joint[:, 0] if extras else joint.mean(axis=1)
        out.append(row[:, extras:].reshape(n, *size))
    return out


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_rollout_equals_numpy_on_hugging_face_attentions(attn):
    model, x = hf_vit(layers=4, attn=attn), images(3, 3, 32, 32)
    before = snapshot(model)
    res = compute(model, x, method="rollout", targets="topk:2")
    assert res.layers == [f"vit.layers.{i}" for i in range(4)]
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = [a.double().numpy() for a in eager(x, output_attentions=True).attentions]
    expected = numpy_rollout(attentions, 1, (4, 4))
    for layer, ref in zip(res.layers, expected, strict=True):
        for col in range(2):  # the same map for every target
            np.testing.assert_allclose(res.raw(layer, col).numpy(), ref, rtol=1e-4, atol=1e-6)
    assert_unchanged(model, before)
    assert model.config._attn_implementation == attn


def numpy_attention(block, x: np.ndarray) -> np.ndarray:
    """The attention weights of one in-repo ViT block, in numpy, from its input."""
    p = {k: v.detach().double().numpy() for k, v in block.state_dict().items()}
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    h = (x - mu) / np.sqrt(var + 1e-5) * p["norm1.weight"] + p["norm1.bias"]
    qkv = h @ p["attn.qkv.weight"].T + p["attn.qkv.bias"]
    n, t, _ = x.shape
    heads = block.attn.heads
    qkv = qkv.reshape(n, t, 3, heads, -1).transpose(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    logits = q @ k.transpose(0, 1, 3, 2) * q.shape[-1] ** -0.5
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_rollout_equals_numpy_on_the_in_repo_vit():
    model, x = small_vit(depth=3), images(2, 3, 32, 32)
    inputs = []
    handles = [b.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    attentions = [
        numpy_attention(b, i.double().numpy()) for b, i in zip(model.blocks, inputs, strict=True)
    ]
    res = compute(model, x, method="rollout")
    for layer, ref in zip(res.layers, numpy_rollout(attentions, 1, (4, 4)), strict=True):
        np.testing.assert_allclose(res.raw(layer).numpy(), ref, rtol=1e-4, atol=1e-6)
    # Rollout at chosen blocks rolls out every attention before them, listed or not.
    only = compute(model, x, method="rollout", layers=["blocks.2"])
    torch.testing.assert_close(only.raw("blocks.2"), res.raw("blocks.2"))


def test_rollout_by_hand():
    # One layer, one head, a class token and a 1x2 grid: W = [[.5, .5, 0], [0, 1, 0],
    # [0, 0, 1]]; (W + I) / rows = [[.75, .25, 0], ...]: the class row over the patches is
    # (.25, 0).
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(1, 2, 4, 4)
            self.blocks = nn.ModuleList([Attend(), Attend()])

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([torch.zeros_like(t[:, :1]), t], 1)
            t = self.blocks[0](t)
            return t[:, 0]

    class Attend(nn.Module):
        def forward(self, t):
            logits = torch.tensor([[0.0, 0.0, -1e9], [-1e9, 0.0, -1e9], [-1e9, -1e9, 0.0]])
            w = logits.expand(t.shape[0], 1, 3, 3).softmax(dim=-1)
            return t + (w @ t[:, None])[:, 0]

    res = compute(Fixed(), images(1, 1, 4, 8), method="rollout", layers=["blocks.0"])
    torch.testing.assert_close(res.raw("blocks.0"), torch.tensor([[[0.25, 0.0]]]))


# --- 4. Errors: what was expected, nothing changed -------------------------------------------


def test_a_token_count_that_is_no_grid_is_refused():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 8, 8)
            self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)  # 16 tokens
            t = torch.cat([t, t, t[:, :3]], 1)  # 35 tokens: no square grid after <= 8 extras
            for b in self.blocks:
                t = b(t)
            return self.head(t.mean(1))

    model, x = Odd(), images(2, 3, 32, 32)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layer 'blocks.0' must output .*got 35 tokens \(the patch "
                       r"embedding gives a 4x4 grid\); pass reshape="):  # fmt: skip
        compute(model, x, layers=["blocks.0"])
    assert_unchanged(model, before)
    assert compute(model, x).layers == ["patch"]  # blocks without a grid are no default
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    "reshape, match",
    [
        (lambda t: t[:, 1:], r"reshape must turn layer 'blocks.1'.*\(2, 17, 32\) into \(N, C, h, w\) "
         r"with N = 2, got \(2, 16, 32\)"),
        (lambda t: t.mean(), r"got \(\)"),
        (lambda t: "grid", r"got str"),
        (lambda t: t[:1, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2), r"N = 2, got \(1, 32, 4, 4\)"),
    ],
)  # fmt: skip
def test_a_reshape_of_the_wrong_shape_is_refused(reshape, match):
    model, x = small_vit(), images(2, 3, 32, 32)
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        compute(model, x, layers=["blocks.1"], reshape=reshape)
    assert_unchanged(model, before)


def test_reshape_errors_and_rollout_errors():
    model, x = small_vit(), images(2, 3, 32, 32)
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"reshape must be a callable"):
        compute(model, x, reshape="tokens")
    with pytest.raises(ValueError, match=r"reshape= is for the layer methods"):
        compute(model, x, method="rollout", reshape=lambda t: t)
    with pytest.raises(ValueError, match=r"rollout explains the token outputs.*'patch_embed.proj' "
                       r"outputs \(2, 32, 4, 4\)"):  # fmt: skip
        compute(model, x, method="rollout", layers=["patch_embed.proj", "blocks.0"])
    assert_unchanged(model, before)
    from nbviz.examples import SmallCNN

    cnn = SmallCNN(num_classes=3, width=4, depth=2)
    before = snapshot(cnn)
    with pytest.raises(ValueError, match=r"attention rollout needs a vision transformer"):
        compute(cnn, x, method="rollout")
    assert_unchanged(cnn, before)


def test_rollout_without_readable_attention():
    class Mixer(nn.Module):  # token mixing by a linear layer: no attention weights anywhere
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 8, 8)
            self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            for b in self.blocks:
                t = b(t)
            return self.head(t.mean(1))

    with pytest.raises(ValueError, match=r"found no attention weights over the 16 tokens"):
        compute(Mixer(), images(2, 3, 32, 32), method="rollout")


class TorchEncoder(nn.Module):
    """A ViT on PyTorch's own nn.TransformerEncoder (its attention: nn.MultiheadAttention,
    with fused inference paths that never form the weights)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Conv2d(3, 32, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 32) * 0.1)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        return self.head(self.encoder(t)[:, 0])


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_rollout_through_torch_multihead_attention(grad):
    model, x = TorchEncoder().eval(), images(2, 3, 32, 32)
    before = snapshot(model)
    with torch.set_grad_enabled(grad):
        res = compute(model, x, method="rollout")
    assert res.layers == ["encoder.layers.0", "encoder.layers.1", "encoder.layers.2"]
    inputs = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for m in model.encoder.layers
    ]
    with torch.no_grad():
        model(x)
        attentions = [
            layer.self_attn(t, t, t, need_weights=True, average_attn_weights=False)[1]
            for layer, t in zip(model.encoder.layers, inputs, strict=True)
        ]
    for h in hooks:
        h.remove()
    expected = numpy_rollout([a.double().numpy() for a in attentions], 1, (4, 4))
    for layer, ref in zip(res.layers, expected, strict=True):
        np.testing.assert_allclose(res.raw(layer).numpy(), ref, rtol=1e-4, atol=1e-6)
    assert_unchanged(model, before)
    # Grad-CAM on the same model: its blocks, the last one unreached.
    cam = compute(model, x)
    assert cam.layers == res.layers and cam.no_gradient == ("encoder.layers.2",)


def hf_classifier(kind: str):
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ResNetConfig,
        ResNetForImageClassification,
        SwinConfig,
        SwinForImageClassification,
    )

    torch.manual_seed(0)
    if kind == "resnet":
        cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                           num_labels=5)  # fmt: skip
        return ResNetForImageClassification(cfg).eval()
    if kind == "convnext":
        cfg = ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 2, 1], num_labels=5)
        return ConvNextForImageClassification(cfg).eval()
    cfg = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4],
                     window_size=4, num_labels=5)  # fmt: skip
    return SwinForImageClassification(cfg).eval()


@pytest.mark.parametrize("kind", ["resnet", "convnext", "swin"])
def test_hugging_face_image_classifiers_equal_captum(kind):
    # Each returns an ImageClassifierOutput; Swin's blocks and stages return tuples whose
    # first item is tokens (N, h*w, C) without extra tokens.
    model, x = hf_classifier(kind), images(2, 3, 64, 64)
    before = snapshot(model)
    res = compute(model, x, targets="topk:2")
    assert_unchanged(model, before)
    logits = lambda o: o.logits  # noqa: E731
    if kind != "swin":  # channels first: Captum reads every layer as it is
        for layer in res.layers:
            module = model.get_submodule(layer)
            for col in range(2):
                ref = (
                    LayerGradCam(lambda i: logits(model(i)), module)
                    .attribute(x, target=res.targets[:, col].tolist(), relu_attributions=True)[:, 0]
                    .detach()
                )
                scale = float(ref.abs().max())
                torch.testing.assert_close(res.raw(layer, col), ref.detach(), rtol=1e-4,
                                           atol=1e-5 * scale + 1e-12)  # fmt: skip
        return
    assert "swin.encoder.layers.0.blocks.0" in res.layers
    assert res.raw("swin.encoder.layers.0.blocks.1").shape == (2, 16, 16)
    assert res.raw("swin.encoder.layers.0").shape == (2, 8, 8)  # after the patch merging
    for layer, size in (
        ("swin.encoder.layers.0.blocks.1", (16, 16)),
        ("swin.encoder.layers.1.blocks.0", (8, 8)),
    ):
        ref = captum_on_grid(model, layer, x, res.targets[:, 0].tolist(), 0, size, logits)
        assert_close_to(ref, res.raw(layer))
