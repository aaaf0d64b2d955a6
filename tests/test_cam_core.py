"""The Grad-CAM core (`nbviz.cam.core`) against Captum, closed forms and its own contract.

Covers: equality with Captum's ``LayerGradCam``; hand-computed Grad-CAM++, Layer-CAM,
saliency, integrated gradients and SmoothGrad; one forward and one backward per target;
the model left exactly as found (hooks, modes, ``requires_grad``, ``.grad``, BatchNorm
statistics, grad mode), also on error; flat memory over 1,000 calls; the agreement
metrics on maps with known answers; clear ``ValueError``s for bad input.
"""

from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn
from torch.nn.modules import module as module_globals

import nbviz
from nbviz.cam import CamResult, agreement, compute
from nbviz.cam.core import ATTENTION_METHODS, CAM_METHODS, INPUT, METHODS
from nbviz.examples import SmallCNN
from tests.models import example_input, resnet18, vgg11

SMALL_LAYERS = [
    f"features.block{i}{suffix}" for i in range(1, 5) for suffix in (".conv", "")
]  # block1.conv, block1, block2.conv, ..., block4


def small_cnn(seed: int = 0, **kwargs) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(**{"num_classes": 6, **kwargs})


def images(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
CNN_METHODS = [m for m in METHODS if m not in ATTENTION_METHODS]  # rollout: test_cam_transformers


def tiny_cnn(seed: int = 0) -> SmallCNN:
    """Two blocks, four channels: fast enough for loops and parametrised state checks."""
    return small_cnn(seed, width=4, depth=2)


# --- 1. Grad-CAM equals Captum's LayerGradCam ---------------------------------------------------


def captum_gradcam(model: nn.Module, layer: str, x: torch.Tensor, target) -> torch.Tensor:
    model.eval()  # compute explains the eval-mode model; Captum must see the same
    module = dict(model.named_modules())[layer]
    attr = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
    return attr[:, 0].detach()


def assert_matches_captum(model: nn.Module, x: torch.Tensor, res, layers=None) -> None:
    nonzero = 0
    for layer in layers or res.layers:
        for col in range(res.targets.shape[1]):
            ref = captum_gradcam(model, layer, x, res.targets[:, col].tolist())
            got = res.raw(layer, col)
            assert got.shape == ref.shape, layer
            scale = float(ref.abs().max())
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * scale + 1e-12)
            nonzero += scale > 0
    assert nonzero > 0, "every map is zero: the comparison proves nothing"


def expected_targets(model: nn.Module, x: torch.Tensor, targets) -> torch.Tensor:
    with torch.no_grad():
        logits = model.eval()(x)
    if targets is None:
        return logits.argmax(1, keepdim=True)
    if isinstance(targets, str):
        return logits.topk(int(targets.split(":")[1]), dim=1).indices
    t = torch.as_tensor(targets)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t[:, None] if t.ndim == 1 else t


TARGETS = [None, 2, [0, 5, 3], "topk:3", [[1, 4], [0, 0], [5, 2]]]


@pytest.mark.parametrize("targets", TARGETS, ids=["pred", "int", "per-image", "topk3", "NxT"])
def test_gradcam_equals_captum_small_cnn(targets):
    model, x = small_cnn(), images(3, 3, 32, 32)
    res = compute(model, x, targets=targets)
    assert res.method == "gradcam"
    assert res.layers == SMALL_LAYERS
    torch.testing.assert_close(res.targets, expected_targets(model, x, targets))
    with torch.no_grad():
        torch.testing.assert_close(res.probs, model.eval()(x).softmax(1))
    assert_matches_captum(model, x, res)


def test_gradcam_equals_captum_small_cnn_explicit_layers():
    model, x = small_cnn(3), images(2, 3, 32, 32)
    # An in-place ReLU (same tensor as its BatchNorm), a pool, a 1 x 1 pooled map, a module.
    layers = ["features.block2.relu", "features.block3.pool", "classifier.pool"]
    res = compute(model, x, layers=[*layers[:2], model.classifier.pool], targets="topk:2")
    assert res.layers == layers
    assert res.raw("classifier.pool").shape == (2, 1, 1)
    assert_matches_captum(model, x, res)


def test_gradcam_equals_captum_vgg11():
    model, x = vgg11(), example_input("vgg11", batch=3)
    torch.manual_seed(0)
    # Every conv is followed by ReLU(inplace=True): its map is the conv's output as the conv
    # produced it, before the ReLU overwrote it (as Captum's is).
    layers = ["features.0", "features.1", "features.2", "features.9", "features.18", "features"]
    for targets in (None, [1, 7, 9], "topk:2"):
        res = compute(model, x, layers=layers, targets=targets)
        assert res.layers == layers
        torch.testing.assert_close(res.targets, expected_targets(model, x, targets))
        assert_matches_captum(model, x, res)
    convs = [p for p, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    res = compute(model, x, targets="topk:2")
    assert res.layers == [*convs, "features"]  # every conv, then the block
    assert_matches_captum(model, x, res)


def test_gradcam_equals_captum_resnet18_every_default_layer():
    model, x = resnet18(), example_input("resnet18", batch=3)
    res = compute(model, x, targets=[[0, 9], [3, 3], [8, 1]])
    assert res.layers[:4] == ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.0"]
    assert "layer2.0.downsample" in res.layers and res.layers[-1] == "layer4.1"
    # layer1 is layer1.1's very tensor: once.
    assert "layer1" not in res.layers
    assert_matches_captum(model, x, res)
    # Every BatchNorm, although `out += identity` or ReLU(inplace=True) overwrites it.
    bns = [p for p, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    res = compute(model, x, layers=bns, targets=[[0, 9], [3, 3], [8, 1]])
    assert res.layers == bns and len(bns) == 20
    assert_matches_captum(model, x, res)


def test_maps_are_captum_upsampled_and_normalized():
    model, x = small_cnn(), images(2, 3, 32, 48)
    res = compute(model, x, layers=["features.block2", "features.block3.conv"], targets=[4, 1])
    for layer in res.layers:
        ref = captum_gradcam(model, layer, x, [4, 1])
        up = LayerAttribution.interpolate(ref[:, None], (32, 48), "bilinear")[:, 0]
        peak = up.flatten(1).amax(1).clamp_min(1e-30)[:, None, None]
        torch.testing.assert_close(res.maps(layer), up / peak, rtol=1e-4, atol=1e-5)


# --- 2. Hand-checked methods on tiny networks ---------------------------------------------------

# One image, two channels, 2 x 2 pixels. With an identity 1x1 conv the activations A are the
# image: A0 = [[1, 2], [3, 4]] (sum 10), A1 = [[4, 0], [0, 0]] (sum 4).
HAND_IMAGE = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[4.0, 0.0], [0.0, 0.0]]]])
HAND_WEIGHTS = torch.tensor([[4.0, -8.0], [4.0, 8.0]])  # class 0, class 1


def hand_net(pool: type[nn.Module]) -> nn.Sequential:
    conv = nn.Conv2d(2, 2, 1, bias=False)
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2)[:, :, None, None])
        fc.weight.copy_(HAND_WEIGHTS)
    return nn.Sequential(conv, pool(1), nn.Flatten(), fc)


T = torch.tensor
# Average pooling: dS_k/dA_c = U_kc / 4 everywhere, i.e. g = (1, -2) for class 0, (1, 2) for 1.
#   Grad-CAM:   relu(sum_c mean(g_c) A_c): class 0 relu(A0 - 2 A1) = [[0, 2], [3, 4]],
#               class 1 A0 + 2 A1 = [[9, 2], [3, 4]].
#   Layer-CAM:  relu(sum_c relu(g_c) A_c): class 0 A0, class 1 A0 + 2 A1.
#   Grad-CAM++: alpha_c = g^2 / (2 g^2 + sum(A_c) g^3), w_c = sum_ij alpha_c relu(g_c):
#               ch0 (g=1):  alpha = 1 / (2 + 10) = 1/12, w = 4 / 12 = 1/3;
#               ch1 (g=2):  alpha = 4 / (8 + 4 * 8) = 0.1, w = 4 * 0.1 * 2 = 0.8; (g=-2): w = 0.
# Max pooling: the gradient is U_kc at channel c's peak ((1, 1) for A0, (0, 0) for A1), else 0.
#   Grad-CAM:   mean gradient U_kc / 4, as with average pooling.
#   Layer-CAM:  class 0: 4 * A0 at (1, 1) = 16; class 1: also 8 * A1 at (0, 0) = 32.
#   Grad-CAM++: ch0 (g=4): alpha = 16 / (32 + 10 * 64) = 1/42, w = 4/42 = 2/21;
#               ch1 (g=8): alpha = 64 / (128 + 4 * 512) = 1/34, w = 8/34 = 4/17.
A0, A1 = HAND_IMAGE[0, 0], HAND_IMAGE[0, 1]
HAND_EXPECTED = {
    ("avg", "gradcam"): (T([[0.0, 2.0], [3.0, 4.0]]), T([[9.0, 2.0], [3.0, 4.0]])),
    ("avg", "layercam"): (A0, T([[9.0, 2.0], [3.0, 4.0]])),
    ("avg", "gradcam++"): (A0 / 3, A0 / 3 + 0.8 * A1),
    ("max", "gradcam"): (T([[0.0, 2.0], [3.0, 4.0]]), T([[9.0, 2.0], [3.0, 4.0]])),
    ("max", "layercam"): (T([[0.0, 0.0], [0.0, 16.0]]), T([[32.0, 0.0], [0.0, 16.0]])),
    ("max", "gradcam++"): (2 / 21 * A0, 2 / 21 * A0 + 4 / 17 * A1),
}


@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("method", CAM_METHODS)
def test_layer_methods_by_hand(pool, method):
    model = hand_net({"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}[pool])
    res = compute(model, HAND_IMAGE, targets=[[0, 1]], method=method)
    assert res.layers == ["0"] and res.method == method
    for col, expected in enumerate(HAND_EXPECTED[pool, method]):
        torch.testing.assert_close(res.raw("0", col), expected[None], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(res.maps(0, col), (expected / expected.max())[None])


class Quadratic(nn.Module):
    """f_k(x) = sum_cij w_k[c, i, j] x[c, i, j]^2: gradient 2 w x, integrated gradients w x^2
    (the midpoint rule is exact: the integrand is linear in the path position)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kchw,nchw->nk", self.w, x**2)


QUAD_W = torch.tensor(
    [
        [[[1.0, -2.0], [0.5, 0.0]], [[-3.0, 1.0], [0.0, 2.0]]],  # class 0, channels 0 and 1
        [[[2.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 3.0]]],  # class 1, all positive
    ]
)
QUAD_X = torch.tensor([[[[1.0, 2.0], [2.0, 1.0]], [[1.0, -1.0], [3.0, 0.5]]]])


def test_saliency_by_hand():
    res = compute(Quadratic(QUAD_W), QUAD_X, targets=[[0, 1]], method="saliency")
    assert res.layers == [INPUT] and res.raw(INPUT).shape == (1, 2, 2)
    # max_c |2 w x|: class 0 ch0 [[2, -8], [2, 0]], ch1 [[-6, -2], [0, 2]] -> [[6, 8], [2, 2]]
    torch.testing.assert_close(res.raw(INPUT, 0), T([[[6.0, 8.0], [2.0, 2.0]]]))
    # class 1: ch0 [[4, 4], [4, 2]], ch1 [[2, -2], [6, 3]] -> [[4, 4], [6, 3]]
    torch.testing.assert_close(res.raw(INPUT, 1), T([[[4.0, 4.0], [6.0, 3.0]]]))
    torch.testing.assert_close(res.maps(INPUT, 1), T([[[4.0, 4.0], [6.0, 3.0]]]) / 6)


@pytest.mark.parametrize("steps", [1, 5, 32])
def test_integrated_gradients_by_hand_quadratic(steps):
    model = Quadratic(QUAD_W)
    res = compute(model, QUAD_X, targets=[[0, 1]], method="integrated_gradients", steps=steps)
    # sum_c w x^2: class 0 ch0 [[1, -8], [2, 0]] + ch1 [[-3, 1], [0, 0.5]] = [[-2, -7], [2, .5]]
    torch.testing.assert_close(res.raw(INPUT, 0), T([[[0.0, 0.0], [2.0, 0.5]]]))
    # class 1 is all positive, so completeness holds for the map itself: sum = f(x) - f(0)
    torch.testing.assert_close(res.raw(INPUT, 1), T([[[3.0, 5.0], [13.0, 1.75]]]))
    with torch.no_grad():
        gain = model(QUAD_X)[0, 1] - model(torch.zeros_like(QUAD_X))[0, 1]
    torch.testing.assert_close(res.raw(INPUT, 1).sum(), gain)


def test_integrated_gradients_completeness_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 4, 4))
    with torch.no_grad():
        model[1].weight[2] = model[1].weight[2].abs() + 0.1  # class 2: f increases in every pixel
    x = images(3, 3, 5, 4) + 0.1  # positive: every pixel's channel sum is positive for class 2
    res = compute(model, x, targets=2, method="integrated_gradients", steps=3)
    with torch.no_grad():
        gain = model(x)[:, 2] - model(torch.zeros_like(x))[:, 2]  # the bias cancels
    torch.testing.assert_close(res.raw(INPUT).sum(dim=(1, 2)), gain, rtol=1e-5, atol=1e-5)
    # Signed weights: attribution per pixel is relu(sum_c x_c W_c) exactly (linear f).
    res = compute(model, x, targets=[0, 1, 3], method="integrated_gradients", steps=2)
    w = model[1].weight.detach().view(4, 3, 5, 4)[[0, 1, 3]]
    expected = (x * w).sum(1).clamp_min(0)
    assert (expected == 0).any() and (expected > 0).any()
    torch.testing.assert_close(res.raw(INPUT), expected, rtol=1e-5, atol=1e-6)


def test_smoothgrad_without_noise_is_saliency():
    model, x = tiny_cnn(), images(2, 3, 16, 16)
    sal = compute(model, x, targets="topk:2", method="saliency")
    smooth = compute(model, x, targets="topk:2", method="smoothgrad", samples=1, noise=0.0)
    assert sal.raw(INPUT).abs().sum() > 0
    for col in range(2):
        torch.testing.assert_close(smooth.raw(INPUT, col), sal.raw(INPUT, col))
    noisy = compute(model, x, targets="topk:2", method="smoothgrad", samples=4, noise=0.3)
    again = compute(model, x, targets="topk:2", method="smoothgrad", samples=4, noise=0.3)
    torch.testing.assert_close(noisy.raw(INPUT), again.raw(INPUT))  # the same noise each call
    assert not torch.allclose(noisy.raw(INPUT), sal.raw(INPUT))


@pytest.mark.parametrize(
    "method, kwargs, per_image",
    [
        ("smoothgrad", {"samples": 5, "batch_size": 2}, 5),
        ("integrated_gradients", {"steps": 5, "batch_size": 3}, 5),
        ("integrated_gradients", {"steps": 4, "batch_size": 64}, 4),
        ("saliency", {"batch_size": 2}, 1),
    ],
)
def test_batch_size_bounds_the_forward_batch(method, kwargs, per_image):
    model, x = tiny_cnn(), images(3, 3, 16, 16)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        res = compute(model, x, targets="topk:2", method=method, **kwargs)
    finally:
        handle.remove()
    bs = kwargs["batch_size"]
    assert max(seen) <= bs
    first = [min(bs, 3 - i) for i in range(0, 3, bs)]  # the logits pass, in batches too
    assert seen[: len(first)] == first
    # Then every (image, copy) row goes forward once, whatever the number of targets, in
    # full batches.
    rows = seen[len(first) :]
    assert sum(rows) == 3 * per_image
    assert len(rows) == math.ceil(3 * per_image / bs)
    # The chunking does not change the result.
    one = compute(model, x, targets="topk:2", method=method, **{**kwargs, "batch_size": 1})
    torch.testing.assert_close(res.raw(INPUT), one.raw(INPUT), rtol=1e-4, atol=1e-6)


# --- 3. One forward, one backward per target column ---------------------------------------------


@pytest.mark.parametrize("method", CAM_METHODS)
@pytest.mark.parametrize(
    "layers, targets, columns",
    [
        (None, None, 1),
        (None, "topk:3", 3),
        (["features.block2", "features.block1.conv"], [[0, 1], [2, 3]], 2),
        (["features.block4"], 5, 1),
    ],
)
def test_one_forward_and_one_backward_per_target(monkeypatch, method, layers, targets, columns):
    model, x = small_cnn(), images(2, 3, 32, 32)
    forwards, logit_grads, grad_calls = [], [], []

    def on_output(module, args, output):
        output.register_hook(lambda g: logit_grads.append(1))  # once per backward through it

    handles = [
        model.register_forward_pre_hook(lambda m, args: forwards.append(1)),
        model.register_forward_hook(on_output),
    ]
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        grad_calls.append(1)
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    try:
        res = compute(model, x, layers=layers, targets=targets, method=method)
    finally:
        for h in handles:
            h.remove()
    assert len(res.layers) == (8 if layers is None else len(layers))
    assert res.targets.shape == (2, columns)
    assert len(forwards) == 1
    assert len(logit_grads) == columns
    assert len(grad_calls) == columns


# --- 4. The model is left as found --------------------------------------------------------------

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def hooks(model: nn.Module) -> dict:
    found = {
        (path, d): list(getattr(m, d).keys())
        for path, m in model.named_modules()
        for d in HOOK_DICTS
    }
    found.update({name: list(getattr(module_globals, name).keys()) for name in GLOBAL_HOOKS})
    return found


def snapshot(model: nn.Module) -> dict:
    return {
        "hooks": hooks(model),
        "modes": {p: m.training for p, m in model.named_modules()},
        "requires_grad": {p: q.requires_grad for p, q in model.named_parameters()},
        "grads": {
            p: (None if q.grad is None else (q.grad, q.grad.clone()))
            for p, q in model.named_parameters()
        },
        "params": {p: q.detach().clone() for p, q in model.named_parameters()},
        "buffers": {p: b.clone() for p, b in model.named_buffers()},
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["hooks"] == before["hooks"]
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["grad_enabled"] == before["grad_enabled"]
    for p, q in model.named_parameters():
        old = before["grads"][p]
        if old is None:
            assert q.grad is None, f"{p}.grad was written"
        else:
            assert q.grad is old[0], f"{p}.grad was replaced"
            assert torch.equal(q.grad, old[1]), f"{p}.grad was changed"
        assert torch.equal(q.detach(), before["params"][p]), p
    for p, b in model.named_buffers():
        assert torch.equal(b, before["buffers"][p]), f"buffer {p} changed"


def training_model() -> SmallCNN:
    """Mid-training: train mode (but an eval head), mixed requires_grad, some .grad set."""
    model = tiny_cnn().train()
    model.classifier.eval()
    model.features.block1.conv.weight.requires_grad_(False)  # frozen
    model.features.block2.bn.bias.requires_grad_(False)
    model.classifier.fc.weight.grad = torch.randn_like(model.classifier.fc.weight)
    model.features.block2.bn.weight.grad = torch.ones_like(model.features.block2.bn.weight)
    model.features.block1.relu.register_forward_hook(lambda *a: None)  # a user's own hook
    return model


@pytest.mark.parametrize("method", CNN_METHODS)
def test_state_restored_after_a_normal_call(method):
    model, x = training_model(), images(2, 3, 16, 16)
    before = snapshot(model)
    bn = model.features.block1.bn
    assert bn.training and int(bn.num_batches_tracked) == 0
    res = compute(model, x, targets="topk:2", method=method, samples=2, steps=2)
    assert res.raw(-1).abs().sum() > 0
    assert_unchanged(model, before)
    assert not x.requires_grad and x.grad is None
    torch.testing.assert_close(x, images(2, 3, 16, 16))  # the images are not touched
    # The guard is not vacuous: one training-mode forward does move the statistics.
    model(x)
    assert int(bn.num_batches_tracked) == 1
    assert not torch.equal(bn.running_mean, before["buffers"]["features.block1.bn.running_mean"])


@pytest.mark.parametrize("method", ["gradcam", "layercam", "saliency", "integrated_gradients"])
def test_works_and_restores_grad_mode_inside_no_grad(method):
    model, x = training_model(), images(2, 3, 16, 16)
    expected = compute(model, x, method=method, steps=3)
    with torch.no_grad():
        before = snapshot(model)
        res = compute(model, x, method=method, steps=3)
        assert not torch.is_grad_enabled()
        assert_unchanged(model, before)
    assert torch.is_grad_enabled()
    assert res.layers == expected.layers
    assert res.raw(-1).abs().sum() > 0
    for layer in res.layers:
        torch.testing.assert_close(res.raw(layer), expected.raw(layer))


class Exploding(nn.Module):
    """Raises halfway through its forward, after the hooked layers have run."""

    def __init__(self):
        super().__init__()
        self.body = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.body.features(x)
        raise RuntimeError("boom in forward")


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("boom in backward")


class ExplodingBackward(nn.Module):
    """Runs fine forward; its backward raises (after the forward hooks did their work)."""

    def __init__(self):
        super().__init__()
        self.body = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.classifier(_FailingBackward.apply(self.body.features(x)))


def _mid_training(model: nn.Module) -> nn.Module:
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.full_like(params[-1], 0.5)
    return model


FAILURES = [
    ("forward raises", Exploding, {}, RuntimeError, "boom in forward"),
    ("backward raises", ExplodingBackward, {}, RuntimeError, "boom in backward"),
    ("no spatial output", tiny_cnn, {"layers": ["classifier.fc"]}, ValueError, "spatial"),
    (
        "bad reshape",
        tiny_cnn,
        {"layers": ["features.block1"], "reshape": lambda t: t[:, 0]},
        ValueError,
        "reshape must",
    ),
    ("bad target", tiny_cnn, {"targets": 99}, ValueError, r"\[0, 5\]"),
    ("bad topk", tiny_cnn, {"targets": "topk:9"}, ValueError, "topk"),
]


@pytest.mark.parametrize(
    "make, kwargs, error, match", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency", "smoothgrad"])
def test_state_restored_after_a_failing_call(make, kwargs, error, match, method):
    if method not in CAM_METHODS and "layers" in kwargs:
        pytest.skip("input methods take no layers")
    model, x = _mid_training(make()), images(2, 3, 16, 16)
    before = snapshot(model)
    with pytest.raises(error, match=match):
        compute(model, x, method=method, samples=2, **kwargs)
    assert_unchanged(model, before)
    assert all(not getattr(m, d) for m in model.modules() for d in HOOK_DICTS)
    if make is tiny_cnn:  # and the next call works as usual
        assert compute(model, x, method=method, samples=2).raw(-1).shape[0] == 2
        assert_unchanged(model, before)


# --- 5. Flat memory -----------------------------------------------------------------------------


def live_tensors() -> int:
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_memory_flat_over_1000_calls():
    model = _mid_training(small_cnn(num_classes=3, width=2, depth=1))
    x = images(2, 3, 8, 8)
    for _ in range(20):  # warm-up: lazy initialisation, caches
        compute(model, x, targets="topk:2")
    tensors = live_tensors()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            res = compute(model, x, targets="topk:2")
        del res
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert live_tensors() - tensors <= 2, "tensors accumulate across calls"
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes over 1000 calls"
    assert all(not getattr(m, d) for m in model.modules() for d in HOOK_DICTS)
    assert int(model.features.block1.bn.num_batches_tracked) == 0


# --- 6. Agreement metrics -----------------------------------------------------------------------

# 10 x 10 images; top 15% = 15 pixels. Raster index idx = 10 r + c.
IDX = torch.arange(100.0).view(10, 10)
RAMP = 100 - IDX  # peak (0, 0); top 15 = row 0 and row 1 columns 0-4; total 5050
RAMP_REV = IDX + 1  # peak (9, 9); top 15 = row 8 columns 5-9 and row 9
RAMP_COLS = 100 - IDX.T  # column-major ramp: peak (0, 0); top 15 = column 0, column 1 rows 0-4
TOP_ROWS = torch.zeros(10, 10, dtype=torch.bool)
TOP_ROWS[:2] = True  # 20 pixels


def synthetic_result() -> tuple[CamResult, torch.Tensor]:
    a = torch.stack([RAMP, RAMP_REV, torch.zeros(10, 10)])
    b = torch.stack([RAMP_COLS, RAMP, RAMP_REV])
    raw = {"a": torch.stack([a, b], dim=1), "b": torch.stack([b, a], dim=1)}  # (N, T=2, h, w)
    res = CamResult(
        "gradcam", ["a", "b"], torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 1), (10, 10), raw
    )
    masks = torch.stack([TOP_ROWS, TOP_ROWS, torch.ones(10, 10, dtype=torch.bool)])
    return res, masks


def test_agreement_known_answers():
    res, masks = synthetic_result()
    a = agreement(res, masks)
    assert a.layers == ["a", "b"] and a.pointing.shape == (2, 3) and a.pointing.dtype == bool
    # Layer a: image 0 points inside (peak (0, 0)); image 1 outside; image 2 is all zero, so
    # it scores 0 everywhere although its mask covers the whole image.
    np.testing.assert_array_equal(a.pointing[0], [True, False, False])
    np.testing.assert_allclose(a.energy[0], [1810 / 5050, 210 / 5050, 0.0], rtol=1e-6)
    np.testing.assert_allclose(a.iou[0], [15 / 20, 0.0, 0.0], rtol=1e-6)
    # Layer b: column ramp (4 of its top 15 in the mask), ramp, reversed ramp (full mask).
    np.testing.assert_array_equal(a.pointing[1], [True, True, True])
    np.testing.assert_allclose(a.energy[1], [1090 / 5050, 1810 / 5050, 1.0], rtol=1e-6)
    np.testing.assert_allclose(a.iou[1], [4 / 31, 15 / 20, 15 / 100], rtol=1e-6)
    # Target column 1 swaps the layers' maps.
    b = agreement(res, masks, target=1)
    np.testing.assert_array_equal(b.pointing, a.pointing[::-1])
    np.testing.assert_allclose(b.energy, a.energy[::-1])
    np.testing.assert_allclose(b.iou, a.iou[::-1])
    # A smaller top fraction: 5 pixels, all in the mask for image 0 of layer a.
    c = agreement(res, masks, top=0.05)
    np.testing.assert_allclose(c.iou[0], [5 / 20, 0.0, 0.0], rtol=1e-6)
    assert c.top == 0.05
    text = a.summary()
    assert text.splitlines()[0].split()[0] == "layer" and len(text.splitlines()) == 3
    assert repr(a) == text


def test_agreement_upsamples_low_resolution_maps():
    raw = torch.zeros(1, 1, 2, 2)
    raw[0, 0, 0, 0] = 2.0
    res = CamResult("gradcam", ["l"], torch.zeros(1, 1), torch.ones(1, 1), (4, 4), {"l": raw})
    # Bilinear with half-pixel centres: the hot pixel's weight per axis is (1, .75, .25, 0).
    w = torch.tensor([1.0, 0.75, 0.25, 0.0])
    torch.testing.assert_close(res.maps("l"), torch.outer(w, w)[None])
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = True
    a = agreement(res, mask)
    assert bool(a.pointing[0, 0])
    np.testing.assert_allclose(a.energy[0, 0], 1.75**2 / 2**2, rtol=1e-6)
    # top 15% of 16 pixels = 3: (0, 0), (0, 1), (1, 0), all in the 4-pixel mask
    np.testing.assert_allclose(a.iou[0, 0], 3 / 4, rtol=1e-6)


@pytest.mark.parametrize(
    "convert",
    [
        lambda m: m.float(),
        lambda m: m.to(torch.uint8),
        lambda m: m[:, None],
        lambda m: m[:, None].float() * 0.9,
        lambda m: m.numpy(),
        lambda m: m.numpy().astype(np.float32),
    ],
    ids=["float", "uint8", "N1HW", "N1HW-float", "numpy-bool", "numpy-float"],
)
def test_agreement_mask_formats(convert):
    res, masks = synthetic_result()
    expected, got = agreement(res, masks), agreement(res, convert(masks))
    for name in ("pointing", "energy", "iou"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


def test_agreement_on_computed_maps():
    model, x = small_cnn(), images(2, 3, 32, 32)
    res = compute(model, x, targets="topk:2")
    masks = torch.zeros(2, 32, 32)
    masks[:, 8:24, 8:24] = 1
    a = agreement(res, masks, target=1)
    assert a.pointing.shape == a.energy.shape == a.iou.shape == (8, 2)
    assert ((a.energy >= 0) & (a.energy <= 1 + 1e-6)).all()
    assert ((a.iou >= 0) & (a.iou <= 1)).all()
    ones = agreement(res, torch.ones(2, 32, 32))  # everything inside: energy 1 for live maps
    alive = np.stack([(res.raw(lay, 0).flatten(1).amax(1) > 0).numpy() for lay in res.layers])
    np.testing.assert_allclose(ones.energy, alive.astype(np.float32), rtol=1e-5)
    np.testing.assert_array_equal(ones.pointing, alive)


@pytest.mark.parametrize(
    "masks, match",
    [
        (
            torch.ones(3, 10, 8),
            r"masks must have shape \(3, 10, 10\) like the images, got \(3, 10, 8\)",
        ),
        (torch.ones(2, 10, 10), r"masks must have shape \(3, 10, 10\).*got \(2, 10, 10\)"),
        (torch.ones(3, 2, 10, 10), r"masks must have shape \(3, 10, 10\).*got \(3, 2, 10, 10\)"),
        (torch.ones(10, 10), r"masks must have shape \(3, 10, 10\).*got \(10, 10\)"),
    ],
)
def test_agreement_rejects_masks_of_another_size(masks, match):
    res, _ = synthetic_result()
    with pytest.raises(ValueError, match=match):
        agreement(res, masks)


@pytest.mark.parametrize("top", [0, -0.1, 1.5])
def test_agreement_rejects_bad_top(top):
    res, masks = synthetic_result()
    with pytest.raises(ValueError, match=r"top must be a fraction in \(0, 1\]"):
        agreement(res, masks, top=top)


# --- 7. Bad input, layer choice -----------------------------------------------------------------


class Twice(nn.Module):
    """Applies one conv twice: its output is two different maps."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.conv(self.stem(x))).mean(dim=(2, 3)))


class NoSpatial(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class Dense(nn.Module):
    """Returns a dense map instead of class scores."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


BAD = [
    (
        "rank 3",
        {"images": torch.rand(3, 16, 16)},
        r"\(N, C, H, W\), got shape \(3, 16, 16\).*\[None\]",
    ),
    (
        "grey batch, colour model",  # (N, H, W) for a model whose first conv takes 3 channels
        {"images": torch.rand(5, 16, 16)},
        r"got shape \(5, 16, 16\); this model takes 3 channels: pass one image of shape "
        r"\(3, H, W\) as images\[None\], or a batch of shape \(N, 3, H, W\)$",
    ),
    (
        "rank 5",
        {"images": torch.rand(1, 2, 3, 16, 16)},
        r"\(N, C, H, W\), got shape \(1, 2, 3, 16, 16\)",
    ),
    ("empty", {"images": torch.rand(0, 3, 16, 16)}, r"at least one image"),
    ("channels", {"images": torch.rand(2, 1, 16, 16)}, r"must have 3 channels.*got 1"),
    ("complex", {"images": torch.rand(2, 3, 16, 16).to(torch.cfloat)}, r"real-valued"),
    (
        "no layer",
        {"layers": ["features.block9"]},
        r"layer 'features.block9' does not exist.*did you mean",
    ),
    ("no layer 2", {"layers": "feature"}, r"layer 'feature' does not exist"),
    (
        "not spatial",
        {"layers": ["classifier.fc"]},
        r"layer 'classifier.fc' must output a spatial feature map \(N, C, h, w\) or patch tokens "
        r"\(N, extras \+ h\*w, C\), got \(2, 6\)",
    ),
    (
        "flatten",
        {"layers": ["features.block2", "classifier.flatten"]},
        r"'classifier.flatten' must output a spatial.*\(2, 128\)",
    ),
    ("foreign", {"layers": [nn.Conv2d(3, 3, 1)]}, r"Conv2d is not a submodule"),
    ("empty layers", {"layers": []}, r"at least one layer"),
    ("layer type", {"layers": [3]}, r"module paths or modules"),
    ("target high", {"targets": 6}, r"targets must be classes in \[0, 5\], got \[6\]"),
    ("target low", {"targets": [0, -1]}, r"targets must be classes in \[0, 5\]"),
    ("target NxT", {"targets": [[0, 1], [2, 9]]}, r"targets must be classes in \[0, 5\]"),
    ("target count", {"targets": [0, 1, 2]}, r"one int per image \(2\).*got shape \(3, 1\)"),
    (
        "no columns",
        {"targets": torch.zeros(2, 0, dtype=torch.long)},
        r"one int per image \(2\).*\(2, 0\)",
    ),
    ("target float", {"targets": 1.0}, r"class indices \(ints\)"),
    ("topk big", {"targets": "topk:7"}, r"'topk:<1\.\.6>', got 'topk:7'"),
    ("topk zero", {"targets": "topk:0"}, r"'topk:<1\.\.6>'"),
    ("topk text", {"targets": "top3"}, r"'topk:<1\.\.6>'"),
    ("method", {"method": "gradcam+"}, r"method must be one of 'gradcam', 'gradcam\+\+'"),
    ("batch_size", {"batch_size": 0}, r"batch_size must be an int >= 1, got 0"),
    ("samples", {"samples": 2.5}, r"samples must be an int >= 1"),
    ("steps", {"steps": True}, r"steps must be an int >= 1"),
]


@pytest.mark.parametrize("kwargs, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_value_error(kwargs, match):
    model = small_cnn()
    kwargs = {"images": images(2, 3, 16, 16), **kwargs}
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        compute(model, **kwargs)
    assert_unchanged(model, before)


GREY_OR_NO_CONV = [
    # (model, images, message): a model taking 1 channel, or one with no conv to tell
    ("grey", torch.rand(5, 16, 16), r"takes 1 channel: for images of shape \(N, H, W\), pass "
     r"images\.unsqueeze\(1\)\)$"),
    ("grey", np.zeros((5, 16, 16), np.float32), r"pass images\[:, None\]\)$"),
    ("grey", torch.rand(1, 16, 16), r"pass images\.unsqueeze\(1\)\)$"),
    ("grey", torch.rand(16, 16), r"for one single-channel image \(H, W\), pass images\[None, None\]"),
    ("grey", torch.rand(2, 3, 16, 16), r"must have 1 channel for this model \(its first conv layer "
     r"takes 1\), got 3"),
    ("linear", torch.rand(4, 16, 16), r"for one image \(C, H, W\), pass images\[None\]; for a "
     r"batch of single-channel images \(N, H, W\), pass images\.unsqueeze\(1\)\)$"),
]  # fmt: skip


@pytest.mark.parametrize("kind, x, match", GREY_OR_NO_CONV)
def test_rank_hints_follow_the_first_conv(kind, x, match):
    if kind == "grey":
        model = small_cnn(in_channels=1)
    else:
        model = nn.Sequential(nn.Flatten(), nn.Linear(256, 6))
    before = snapshot(model)
    with pytest.raises(ValueError, match=match) as info:
        compute(model, x)
    assert "1 channels" not in str(info.value)
    assert_unchanged(model, before)


def test_bad_input_in_other_models():
    x = images(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"layer 'conv' runs 2 times in one forward pass"):
        compute(Twice(), x, layers=["conv"])
    assert compute(Twice(), x).layers == ["stem"]  # the default choice skips it
    res = resnet18()
    with pytest.raises(ValueError, match=r"layer 'layer1.0.relu' runs 2 times"):
        compute(res, example_input("resnet18"), layers=["layer1.0.relu"])
    with pytest.raises(ValueError, match=r"no layer with a spatial output \(N, C, h, w\)"):
        compute(NoSpatial(), x)
    with pytest.raises(
        ValueError, match=r"class scores of shape \(N, classes\) with N = 2, got \(2, 2, 8, 8\)"
    ):
        compute(Dense(), x)
    with pytest.raises(ValueError, match=r"class scores of shape \(N, classes\)"):
        compute(Dense(), x, method="saliency")
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor or numpy array"):
        compute(small_cnn(), [[1.0]])
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module"):
        compute(lambda x: x, x)
    r = compute(small_cnn(), images(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"layer must be one of \['features.block1.conv'"):
        r.raw("features.block1.bn")


def test_default_layers():
    model, x = small_cnn(), images(2, 3, 32, 32)
    res = compute(model, x)
    assert res.layers == SMALL_LAYERS
    assert [tuple(res.raw(layer).shape) for layer in res.layers] == [
        (2, 32, 32),
        (2, 16, 16),
        (2, 16, 16),
        (2, 8, 8),
        (2, 8, 8),
        (2, 4, 4),
        (2, 4, 4),
        (2, 2, 2),
    ]
    assert res.layers == compute(model, x, method="gradcam++").layers
    assert compute(model, x, method="saliency").layers == [INPUT]


def test_explicit_layers_are_ordered_shallow_to_deep_and_kept():
    model, x = small_cnn(), images(2, 3, 32, 32)
    res = compute(model, x, layers=["features.block3", model.features.block1.conv])
    assert res.layers == ["features.block1.conv", "features.block3"]
    # A block and its last child share one tensor: both were asked for, both are there.
    res = compute(model, x, layers=["features.block1", "features.block1.pool"])
    assert sorted(res.layers) == ["features.block1", "features.block1.pool"]
    torch.testing.assert_close(res.raw("features.block1"), res.raw("features.block1.pool"))


class SideBranch(nn.Module):
    """A conv whose output the class scores never use."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        self.side(a)
        return self.fc(a.mean(dim=(2, 3)))


def test_unused_layer_gets_a_zero_map():
    torch.manual_seed(0)
    model, x = SideBranch(), images(2, 3, 8, 8)
    res = compute(model, x, targets="topk:2")
    assert res.layers == ["conv", "side"]
    assert torch.equal(res.raw("side", 1), torch.zeros(2, 8, 8))
    assert torch.equal(res.maps("side"), torch.zeros(2, 8, 8))
    assert_matches_captum(model, x, res, layers=["conv"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
def test_numpy_images(dtype):
    model = small_cnn()
    x = images(2, 3, 16, 16)
    expected = compute(model, x if dtype != np.uint8 else (x * 255).to(torch.uint8))
    arr = (x * 255).numpy().astype(dtype) if dtype == np.uint8 else x.numpy().astype(dtype)
    res = compute(model, arr)
    for layer in res.layers:
        torch.testing.assert_close(res.raw(layer), expected.raw(layer))


# --- 8. Normalized maps -------------------------------------------------------------------------


@pytest.mark.parametrize("method", CNN_METHODS)
def test_maps_in_unit_range_at_image_size(method):
    model, x = small_cnn(), images(3, 3, 32, 48)
    res = compute(model, x, targets="topk:2", method=method, samples=3, steps=3)
    assert res.image_size == (32, 48)
    assert res.targets.shape == (3, 2) and res.probs.shape == (3, 6)
    torch.testing.assert_close(res.probs.sum(1), torch.ones(3))
    live = 0
    for layer in res.layers:
        for col in range(2):
            raw, maps = res.raw(layer, col), res.maps(layer, col)
            assert raw.ndim == 3 and raw.shape[0] == 3 and raw.dtype == torch.float32
            assert (raw >= 0).all()
            assert maps.shape == (3, 32, 48) and maps.dtype == torch.float32
            assert (maps >= 0).all() and (maps <= 1).all()
            peaks = maps.flatten(1).amax(1)
            zero = raw.flatten(1).amax(1) == 0
            torch.testing.assert_close(peaks[~zero], torch.ones(int((~zero).sum())))
            assert (peaks[zero] == 0).all()
            live += int((~zero).sum())
    assert live > 0
    if method in CAM_METHODS:
        assert res.raw("features.block2").shape == (3, 8, 12)
    else:  # already at the image size: maps are raw / peak
        raw = res.raw(INPUT)
        peak = raw.flatten(1).amax(1)[:, None, None]
        torch.testing.assert_close(res.maps(INPUT), raw / peak)


def test_all_zero_map_stays_zero():
    raw = torch.zeros(2, 1, 3, 3)
    raw[1, 0, 1, 1] = 1e-20
    res = CamResult("gradcam", ["l"], torch.zeros(2, 1), torch.ones(2, 1), (6, 6), {"l": raw})
    maps = res.maps("l")
    assert torch.equal(maps[0], torch.zeros(6, 6))
    assert math.isclose(float(maps[1].max()), 1.0, rel_tol=1e-6)


def test_public_entry_points():
    assert nbviz.cam.compute is compute and nbviz.cam.agreement is agreement
    assert set(nbviz.cam.METHODS) == {
        "gradcam",
        "gradcam++",
        "layercam",
        "saliency",
        "smoothgrad",
        "integrated_gradients",
        "rollout",
    }


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_a_model_that_writes_into_its_input(method):
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(2, 3, 8, 8)
    model(x.clone())  # materialise the lazy layer
    before = x.clone()
    res = compute(model, x, method=method)
    assert torch.equal(x, before)  # the caller's images are untouched
    assert res.raw(0).shape[0] == 2


def test_pointing_uses_the_peak_cell_of_a_coarse_map():
    # A 2x2 map whose hottest cell is the bottom-right one, upsampled to 8x8: its top is a
    # flat 3x3 corner block, so the upsampled argmax would be the block's first pixel.
    raw = torch.tensor([[0.1, 0.2], [0.3, 1.0]]).reshape(1, 1, 2, 2)
    res = CamResult("gradcam", ["l"], torch.zeros(1, 1), torch.ones(1, 1), (8, 8), {"l": raw})
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 5:7, 5:7] = True  # around the cell's centre (6, 6), not its corner
    a = agreement(res, mask)
    assert bool(a.pointing[0, 0]) and not a.empty[0, 0]
    zero = CamResult("gradcam", ["l"], torch.zeros(1, 1), torch.ones(1, 1), (8, 8), {"l": raw * 0})
    z = agreement(zero, mask)
    assert bool(z.empty[0, 0]) and not z.pointing[0, 0] and "empty" in z.summary()


def test_layer_methods_run_in_batches_of_batch_size():
    model = SmallCNN(num_classes=6, width=8, depth=3).eval()
    x = torch.rand(5, 3, 32, 32)
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    whole = compute(model, x, targets="topk:2")
    per_image = torch.tensor([[0, 1], [2, 3], [4, 5], [0, 2], [1, 3]])
    batched = compute(model, x, targets="topk:2", batch_size=2)
    listed = compute(model, x, targets=per_image, batch_size=2)
    handle.remove()
    assert calls == [5, 2, 2, 1, 2, 2, 1]
    assert torch.equal(whole.targets, batched.targets)
    for layer in whole.layers:
        assert torch.allclose(whole.raw(layer, None), batched.raw(layer, None), atol=1e-6)
    assert torch.equal(listed.targets, per_image)
