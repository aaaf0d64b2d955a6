"""What models take and return, and the layers the Grad-CAM core used to refuse.

Covers: every output structure real models return (tensor, tuple, list, dict,
namedtuple, dataclass, Hugging Face ``ModelOutput``) with ``output=`` and the error for
an ambiguous one; keyword inputs; 1-D ``(N, C, L)`` and 3-D ``(N, C, D, H, W)`` models
and their linear / trilinear upsampling; every convolution of a torchvision-style
VGG-16 (each followed by ``ReLU(inplace=True)``); a head after a backbone run under
``torch.no_grad()`` -- all equal to Captum's ``LayerGradCam``; and clear errors for bad
input with the model left as found.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from nbviz.cam import compute
from nbviz.examples import SmallCNN
from tests.test_cam_core import assert_unchanged, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def captum(model, layer: str, x, target, forward=None) -> torch.Tensor:
    module = model.get_submodule(layer)
    attr = LayerGradCam(forward or model, module).attribute(
        x, target=target, relu_attributions=True
    )
    return attr[:, 0].detach()


def assert_equals_captum(model, res, x, forward=None, layers=None) -> None:
    nonzero = 0
    for layer in layers or res.layers:
        for col in range(res.targets.shape[1]):
            ref = captum(model, layer, x, res.targets[:, col].tolist(), forward)
            got = res.raw(layer, col)
            assert got.shape == ref.shape, layer
            scale = float(ref.abs().max())
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * scale + 1e-12)
            nonzero += scale > 0
    assert nonzero, "every map is zero: the comparison proves nothing"


# --- 1. Outputs as models give them ---------------------------------------------------------


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    features: torch.Tensor


Pair = namedtuple("Pair", ["out", "features"])

WRAPS = {
    "tensor": lambda s, f: s,
    "tuple": lambda s, f: (s, f),
    "list": lambda s, f: [s],
    "dict": lambda s, f: {"logits": s, "features": f},
    "namedtuple": lambda s, f: Pair(s, f),
    "dataclass": lambda s, f: Out(s, f),
    "ModelOutput": lambda s, f: ImageClassifierOutput(logits=s, hidden_states=(f,)),
}
CHOOSE = {"tuple": 0, "namedtuple": "out"}  # several tensors, no "logits": name one


class Wrapped(nn.Module):
    def __init__(self, wrap):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.wrap = SmallCNN(num_classes=5, width=4, depth=2), wrap

    def forward(self, x):
        feats = self.body.features(x)
        return self.wrap(self.body.classifier(feats), feats)


@pytest.mark.parametrize("kind", list(WRAPS))
@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_every_output_structure(kind, method):
    model, x = Wrapped(WRAPS[kind]), rand(2, 3, 16, 16)
    expected = compute(model.body, x, targets="topk:2", method=method)
    res = compute(model, x, targets="topk:2", method=method, output=CHOOSE.get(kind))
    assert [p.removeprefix("body.") for p in res.layers] == expected.layers
    for a, b in zip(res.layers, expected.layers, strict=True):
        torch.testing.assert_close(res.raw(a, None), expected.raw(b, None))
    torch.testing.assert_close(res.probs, expected.probs)
    # The same through a callable.
    res = compute(model, x, targets="topk:2", method=method, output=_scores)
    torch.testing.assert_close(res.raw(-1, None), expected.raw(-1, None))


def _scores(o):
    if isinstance(o, torch.Tensor):
        return o
    if isinstance(o, dict):  # also a ModelOutput
        return o["logits"]
    return o[0] if isinstance(o, (tuple, list)) else o.logits


@pytest.mark.parametrize("kind", ["tuple", "namedtuple"])
def test_ambiguous_outputs_say_what_was_found_and_how_to_choose(kind):
    model, x = Wrapped(WRAPS[kind]), rand(2, 3, 16, 16)
    before = snapshot(model)
    for method in ("gradcam", "saliency", "rollout"):
        with pytest.raises(ValueError, match=r"the model returned .*\(2, 5\), .*\(2, 8, 4, 4\).*: "
                           r"which part holds the class scores\? pass output="):  # fmt: skip
            compute(model, x, method=method)
        assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"output='logits' names no part"):
        compute(model, x, output="logits")
    with pytest.raises(ValueError, match=r"class scores of shape \(N, classes\) with N = 2, got "
                       r"\(2, 8, 4, 4\) \(taken from"):  # fmt: skip
        compute(model, x, output=1)
    assert_unchanged(model, before)


def test_unsupported_output_structures():
    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return {"label": "cat", "n": 3, "conv": self.conv(x) is not None}

    model = Text()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"the model returned dict\(label: str, n: int, conv: bool\)"
                       r": no tensor of class scores in it; pass output="):  # fmt: skip
        compute(model, rand(2, 3, 8, 8))
    assert_unchanged(model, before)


class Keywords(nn.Module):
    """Takes the image and a per-image mask and a shared scale by keyword."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = SmallCNN(num_classes=4, width=4, depth=2)

    def forward(self, pixel_values, mask=None, scale=1.0):
        return self.body(pixel_values * mask[:, None, None, None] * scale)


def test_keyword_inputs_split_with_the_images():
    model, x = Keywords(), rand(5, 3, 16, 16)
    mask = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.25])
    direct = compute(model.body, x * mask[:, None, None, None] * 3, targets="topk:2")
    for batch_size in (32, 2):
        for method in ("gradcam", "integrated_gradients"):
            kw = {"mask": mask, "scale": torch.tensor(3.0)}
            res = compute(model, x, forward_kwargs=kw, targets="topk:2", batch_size=batch_size,
                          method=method, steps=3)  # fmt: skip
            as_dict = compute(model, {"pixel_values": x, **kw}, targets="topk:2",
                              batch_size=batch_size, method=method, steps=3)  # fmt: skip
            torch.testing.assert_close(res.raw(-1, None), as_dict.raw(-1, None))
            if method == "gradcam":
                assert [p.removeprefix("body.") for p in res.layers] == direct.layers
                for layer in res.layers:
                    torch.testing.assert_close(
                        res.raw(layer, None), direct.raw(layer.removeprefix("body."), None)
                    )
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"Keywords.forward takes no keyword 'msk'.*did you mean "
                       r"'mask'"):  # fmt: skip
        compute(model, x, forward_kwargs={"msk": mask})
    with pytest.raises(TypeError, match=r"forward_kwargs must be a dict"):
        compute(model, x, forward_kwargs=[mask])
    with pytest.raises(ValueError, match=r"images as a dict must hold the images under "
                       r"'pixel_values'.*\['x'\]"):  # fmt: skip
        compute(model, {"x": x})
    with pytest.raises(ValueError, match=r"'mask' given in images and forward_kwargs"):
        compute(model, {"pixel_values": x, "mask": mask}, forward_kwargs={"mask": mask})
    assert_unchanged(model, before)


# --- 2. 1-D and 3-D models ------------------------------------------------------------------


class Signal(nn.Module):
    """Audio / time series: (N, C, L)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv1d(8, 16, 5, stride=2, padding=2), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv1d(16, 16, 3, stride=2, padding=1), nn.ReLU()),
        )
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.features(x).amax(dim=2))


class Volume(nn.Module):
    """Video / volumes: (N, C, D, H, W)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv3d(4, 8, 3, stride=2, padding=1), nn.BatchNorm3d(8), nn.ReLU()),
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


@pytest.mark.parametrize(
    "make, shape, mode",
    [(Signal, (3, 2, 40), "linear"), (Volume, (2, 1, 6, 12, 10), "trilinear")],
    ids=["1d", "3d"],
)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_1d_and_3d_models_equal_captum(make, shape, mode, method):
    model, x = make().eval(), rand(*shape)
    before = snapshot(model)
    res = compute(model, x, targets="topk:2", method=method)
    assert res.image_size == shape[2:]
    convs = [p for p, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert [p for p in res.layers if p in convs] == convs
    assert_unchanged(model, before)
    if method != "gradcam":
        return
    assert_equals_captum(model, res, x)
    for layer in res.layers:  # upsampled as Captum interpolates, then scaled to [0, 1]
        assert res.raw(layer).ndim == len(shape) - 1
        ref = captum(model, layer, x, res.targets[:, 0].tolist())
        up = LayerAttribution.interpolate(ref[:, None], shape[2:], mode)[:, 0]
        peak = up.flatten(1).amax(1).clamp_min(1e-30).view(-1, *(1,) * (len(shape) - 2))
        torch.testing.assert_close(res.maps(layer), up / peak, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, shape", [(Signal, (2, 2, 24)), (Volume, (2, 1, 4, 8, 8))])
@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated_gradients"])
def test_input_methods_on_1d_and_3d(make, shape, method):
    model, x = make().eval(), rand(*shape)
    res = compute(model, x, targets="topk:2", method=method, samples=3, steps=3)
    assert res.raw("input", None).shape == (shape[0], 2, *shape[2:])
    assert res.maps("input").shape == (shape[0], *shape[2:])
    if method == "saliency":  # |gradient|, largest over channels, by autograd directly
        xg = x.clone().requires_grad_()
        score = model(xg).gather(1, res.targets[:, :1]).sum()
        (g,) = torch.autograd.grad(score, xg)
        torch.testing.assert_close(res.raw("input"), g.abs().amax(1))


BAD_RANK = [
    (Signal, rand(2, 40), r"batch of signals of shape \(N, C, L\) for this model \(its first conv "
     r"layer, a Conv1d, takes 2 channels\), got shape \(2, 40\) \(for one signal of shape "
     r"\(C, \.\.\.\), pass images\[None\]\)$"),
    (Signal, rand(2, 1, 40), r"must have 2 channels for this model.*got 1"),
    (Signal, rand(3, 2, 8, 8), r"signals of shape \(N, C, L\).*got shape \(3, 2, 8, 8\)$"),
    (Volume, rand(1, 6, 12, 10), r"volumes of shape \(N, C, D, H, W\) for this model \(its first "
     r"conv layer, a Conv3d, takes 1 channel\), got shape \(1, 6, 12, 10\) \(for one volume of "
     r"shape \(C, \.\.\.\), pass images\[None\]; for a batch of single-channel volumes, pass "
     r"images.unsqueeze\(1\)\)$"),
    (Volume, rand(6, 12, 10), r"got shape \(6, 12, 10\) \(for one single-channel volume, pass "
     r"images\[None, None\]\)$"),
    (Volume, rand(0, 1, 4, 4, 4), r"at least one volume"),
    (lambda: SmallCNN(3, width=4, depth=2), rand(5, 48), r"\(N, C, H, W\), got shape \(5, 48\)"),
    (lambda: SmallCNN(3, width=4, depth=2), rand(1, 3, 4, 16, 16), r"\(N, C, H, W\), got shape "
     r"\(1, 3, 4, 16, 16\)"),
]  # fmt: skip


@pytest.mark.parametrize("make, x, match", BAD_RANK)
def test_inputs_of_the_wrong_rank(make, x, match):
    model = make()
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        compute(model, x)
    assert_unchanged(model, before)


def test_masks_are_for_images():
    from nbviz.cam import agreement

    res = compute(Signal().eval(), rand(2, 2, 24))
    with pytest.raises(ValueError, match=r"agreement scores maps of images \(H, W\); these maps are "
                       r"of signals \(24,\)"):  # fmt: skip
        agreement(res, np.ones((2, 24)))


# --- 3. In-place operations after the layer, frozen parts before it -------------------------

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    """torchvision's VGG-16 layout (configuration "D"), channels / 16: every conv followed by
    ReLU(inplace=True)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v // 16, 3, padding=1), nn.ReLU(inplace=True)]
                c = v // 16
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(c, 64), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(64, num_classes)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_every_conv_of_vgg16_equals_captum():
    model, x = VGG16().eval(), rand(2, 3, 64, 64) * 2 - 1
    before = snapshot(model)
    convs = [p for p, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    res = compute(model, x, layers=convs, targets="topk:2")
    assert res.layers == convs
    assert_equals_captum(model, res, x)
    assert_unchanged(model, before)
    # Each map is the conv's output before the ReLU wrote over it: its ReLU's map differs.
    relu = compute(model, x, layers=["features.1"], targets=res.targets)
    a, b = relu.raw("features.1", None), res.raw("features.0", None)
    assert (a / a.max() - b / b.max()).abs().max() > 0.1
    assert_equals_captum(model, relu, x)


class Frozen(nn.Module):
    """Fine-tuning: a backbone run under torch.no_grad() (its parameters frozen), then a
    trainable head of convolutions."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = SmallCNN(num_classes=2, width=4, depth=2).features
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 6, 1)
        )

    def forward(self, x):
        with torch.no_grad():
            f = self.backbone(x)
        return self.head(f).mean(dim=(2, 3))


def test_a_head_after_a_frozen_backbone_equals_captum():
    model, x = Frozen().eval(), rand(3, 3, 32, 32)
    before = snapshot(model)
    res = compute(model, x, targets="topk:2")
    assert res.layers == ["head.0", "head.2"]  # the backbone gets no gradient
    assert_equals_captum(model, res, x, layers=["head.0", "head.2"])
    assert_unchanged(model, before)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(ValueError, match=r"layer 'backbone.block1' runs under torch.no_grad\(\) "
                       r"inside the model's forward, so no gradient reaches it"):  # fmt: skip
        compute(model, x, layers=["backbone.block1", "head.0"])
    with pytest.raises(ValueError, match=r"saliency needs the gradient of the class scores at the "
                       r"input.*torch.no_grad\(\)"):  # fmt: skip
        compute(model, x, method="saliency")
    assert_unchanged(model, before)


def test_a_model_whose_scores_need_no_gradient():
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3)).detach()

    model = Detached()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"the class scores do not depend on any explained layer "
                       r"through autograd"):  # fmt: skip
        compute(model, rand(2, 3, 8, 8))
    assert_unchanged(model, before)


def test_a_layer_that_never_runs():
    model = SmallCNN(num_classes=3, width=4, depth=2)
    model.spare = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match=r"layer 'spare' does not run in the model's forward"):
        compute(model, rand(2, 3, 16, 16), layers=["spare", "features.block1"])
