"""Deletion / insertion curves (`nbviz.cam.faithfulness`) and the model-randomisation sanity
check (`nbviz.cam.randomization_check`).

Covers: the curves against an independent one-image-at-a-time reference loop and against
Quantus's ``PixelFlipping`` configured to the same definition (deletion; insertion as pixel
flipping from the baseline towards the image); the blur against scipy; the randomisation
check's Spearman against Quantus's ``MPRT`` on a model whose re-initialisation both sides
reproduce, its Spearman against scipy and its SSIM against scikit-image; the number of
forwards; the model left as found (weights, buffers, modes, ``requires_grad``, ``.grad``,
hooks, the global RNG), also on error; clear errors for bad input.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

import nbviz
from nbviz.cam import CamResult, agreement, compute, faithfulness, randomization_check
from nbviz.cam.faithfulness import blur, gaussian_kernel
from nbviz.cam.sanity import spearman_rank, structural_similarity
from nbviz.examples import SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_cnn(seed: int = 0, classes: int = 4) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes=classes, width=4, depth=2)


def images(n: int = 3, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def random_maps(n: int, size: int, seed: int = 2, method: str = "gradcam") -> CamResult:
    """A result whose maps are random at the image's resolution: every pixel's value differs,
    so any implementation ranks them the same way."""
    raw = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    return CamResult(method, ["input"], torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 4),
                     (size, size), {"input": raw})  # fmt: skip


def snapshot(model: nn.Module):
    """Everything about the model the functions must leave as it was."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for m in model.modules()
        ),
    }


def assert_unchanged(model: nn.Module, before) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k  # bit-equal weights and buffers
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for g0, g1 in zip(before["grad"], after["grad"], strict=True):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    assert after["hooks"] == before["hooks"]


def model_in_odd_state(seed: int = 0) -> SmallCNN:
    """Train mode, one frozen parameter, one parameter with a .grad, moved BN statistics."""
    model = tiny_cnn(seed).train()
    model(images(4, 16, seed=9))  # moves the batch-norm statistics
    model.features.block1.conv.weight.requires_grad_(False)
    model.classifier.fc.weight.grad = torch.ones_like(model.classifier.fc.weight)
    return model


# --- faithfulness: independent reference ----------------------------------------------------------


def reference_curves(model, x, maps, classes, steps, base):
    """One image and one step at a time, in numpy: the definition written out."""
    model.eval()
    n, c, h, w = x.shape
    deletion, insertion = np.zeros((n, steps + 1)), np.zeros((n, steps + 1))
    for i in range(n):
        order = np.argsort(-maps[i].reshape(-1).numpy(), kind="stable")
        for k in range(steps + 1):
            top = np.zeros(h * w, dtype=bool)
            top[order[: k * h * w // steps]] = True
            top = torch.from_numpy(top.reshape(1, h, w))
            for curve, shown, rest in ((deletion, base[i], x[i]), (insertion, x[i], base[i])):
                version = torch.where(top, shown, rest)
                with torch.no_grad():
                    p = model(version[None]).softmax(1)[0, classes[i]]
                curve[i, k] = float(p)
    return deletion, insertion


@pytest.mark.parametrize("baseline", ["blur", "mean", "zeros", "tensor"])
def test_curves_equal_a_one_image_at_a_time_reference(baseline):
    model, x = tiny_cnn(), images(3, 16)
    res = [compute(model, x, method=m) for m in ("gradcam", "saliency")]
    given = torch.rand(3, 3, 1, 1) if baseline == "tensor" else baseline
    f = faithfulness(model, x, res, steps=7, baseline=given, sigma=1.5, batch_size=13)
    base = {
        "blur": blur(x, gaussian_kernel(1.5)),
        "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x),
        "zeros": torch.zeros_like(x),
        "tensor": given if baseline == "tensor" else None,
    }[baseline].expand_as(x)
    assert f.methods == ["gradcam"] * len(res[0].layers) + ["saliency"]
    assert f.layers == [*res[0].layers, "input"]
    classes = res[0].targets[:, 0]
    assert f.classes.tolist() == classes.tolist()
    r = 0
    for one in res:
        for layer in one.layers:
            d, i = reference_curves(model, x, one.maps(layer), classes, 7, base)
            np.testing.assert_allclose(f.deletion[r], d, atol=1e-5)
            np.testing.assert_allclose(f.insertion[r], i, atol=1e-5)
            r += 1
    np.testing.assert_allclose(f.fractions, np.arange(8) / 7)
    np.testing.assert_allclose(f.deletion_auc, np.trapezoid(f.deletion, f.fractions, axis=-1))
    assert "baseline" in repr(f) and f.baseline.split()[0] in {"blur", "mean", "zeros", "tensor"}


def test_blur_is_scipys_gaussian_filter_with_edges_replicated():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = images(2, 20)
    for sigma in (0.7, 1.1, 2.0, 5.0):
        ours = blur(x.double(), gaussian_kernel(sigma)).numpy()
        theirs = ndimage.gaussian_filter(x.double().numpy(), (0, 0, sigma, sigma), mode="nearest",
                                         truncate=3.0)  # fmt: skip
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
    f = faithfulness(tiny_cnn(), x, random_maps(2, 20), steps=2, sigma=2.0)
    assert f.baseline == "blur (Gaussian, sigma 2 px, 13x13 kernel, edges replicated)"


def test_a_map_on_the_evidence_deletes_faster_and_inserts_faster_than_its_reverse():
    # Class 0's logit is 20 x the mean of a 4x4 patch; class 1's is a constant 5.
    class Patch(nn.Module):
        def forward(self, x):
            s = x[:, :, 2:6, 2:6].mean(dim=(1, 2, 3)) * 20
            return torch.stack([s, torch.full_like(s, 5.0)], 1)

    x = torch.ones(2, 3, 8, 8)
    good = torch.zeros(2, 1, 8, 8)
    good[:, :, 2:6, 2:6] = 1
    good += torch.linspace(0, 0.1, 64).view(1, 1, 8, 8)  # no ties
    make = lambda raw: CamResult("gradcam", ["input"], torch.zeros(2, 1, dtype=torch.long),  # noqa: E731
                                 torch.ones(2, 2), (8, 8), {"input": raw})  # fmt: skip
    f = faithfulness(Patch(), x, [make(good), make(1.1 - good)], steps=4, baseline="zeros")
    assert (f.deletion_auc[0] < f.deletion_auc[1] - 0.3).all()
    assert (f.insertion_auc[0] > f.insertion_auc[1] + 0.3).all()
    # A quarter of the pixels is the whole patch: after one step class 0 is gone.
    assert f.deletion[0, :, 1].max() < 0.01 and f.insertion[0, :, 1].min() > 0.99


def test_every_curve_of_a_batch_costs_few_forwards():
    model, x = tiny_cnn(), images(4, 16)
    res = compute(model, x)  # 4 layers
    calls, rows = [], []

    def count(module, args):
        calls.append(1)
        rows.append(len(args[0]))

    h = model.register_forward_pre_hook(count)
    try:
        f = faithfulness(model, x, res, steps=5, batch_size=64)
    finally:
        h.remove()
    versions = 4 * (2 + 2 * len(res.layers) * (5 - 1))  # originals and baselines shared
    assert sum(rows) == versions and len(calls) == -(-versions // 64)
    # The shared ends: deletion starts where insertion ends, and the other way round.
    assert np.array_equal(f.deletion[..., 0], f.insertion[..., -1])
    assert np.array_equal(f.deletion[..., -1], f.insertion[..., 0])


def test_faithfulness_leaves_the_model_as_found_also_on_error():
    model, x = model_in_odd_state(), images(3, 16)
    with torch.no_grad():
        model.eval()
        expected = model(x).softmax(1)
        model.train()
    res = compute(model, x)
    before = snapshot(model)
    f = faithfulness(model, x, res, steps=3)
    assert_unchanged(model, before)
    # Run in eval mode although the model was in train mode: step 0 is the eval-mode score.
    classes = torch.from_numpy(f.classes)
    np.testing.assert_allclose(f.deletion[0, :, 0], expected[torch.arange(3), classes], atol=1e-6)
    wrong = CamResult("gradcam", ["input"], torch.full((3, 1), 9), torch.ones(3, 10), (16, 16),
                      {"input": torch.rand(3, 1, 16, 16)})  # fmt: skip
    with pytest.raises(ValueError, match=r"outputs of this model \(0 to 3\), got \[9\]"):
        faithfulness(model, x, wrong, steps=3)
    assert_unchanged(model, before)


# --- faithfulness: Quantus ----------------------------------------------------------------------


def quantus_pixel_flipping(model, x, base, maps, classes, steps, insertion=False):
    """Quantus's PixelFlipping set to our definition: attributions broadcast over channels,
    ``features_in_step`` = channels x pixels per step (so every step flips whole pixels), no
    normalisation, softmax probabilities. Quantus's curve starts after the first step (ours
    at fraction 0). Deletion replaces pixels of the image by the baseline's; insertion is
    pixel flipping that starts from the baseline and replaces its pixels by the image's."""
    quantus = pytest.importorskip("quantus")
    n, c, h, w = x.shape
    source, target = (base, x) if insertion else (x, base)
    fill = target.reshape(n, -1).numpy()

    def replace_by(arr, indices, **kwargs):
        out = arr.copy()
        out[np.arange(n)[:, None], indices] = fill[np.arange(n)[:, None], indices]
        return out

    metric = quantus.PixelFlipping(features_in_step=c * h * w // steps, normalise=False,
                                   perturb_func=replace_by, disable_warnings=True)  # fmt: skip
    curves = metric(model=model.eval(), x_batch=source.numpy(), y_batch=classes.numpy(),
                    a_batch=maps[:, None].numpy(), channel_first=True, softmax=True,
                    device="cpu", batch_size=n)  # fmt: skip
    return np.asarray(curves)


@pytest.mark.parametrize("baseline", ["zeros", "blur"])
def test_deletion_and_insertion_equal_quantus_pixel_flipping(baseline):
    quantus = pytest.importorskip("quantus")
    # Quantus steps over the C*H*W values but requires features_in_step to divide H*W: with
    # 3 channels, whole pixels per step need steps to be a multiple of 3 dividing H*W.
    model, x = tiny_cnn(), images(3, 24)
    res = random_maps(3, 24)  # distinct values: both sides rank the pixels alike
    f = faithfulness(model, x, res, steps=12, baseline=baseline, sigma=1.5)
    base = torch.zeros_like(x) if baseline == "zeros" else blur(x, gaussian_kernel(1.5))
    maps, classes = res.maps("input"), res.targets[:, 0]
    deletion = quantus_pixel_flipping(model, x, base, maps, classes, 12)
    insertion = quantus_pixel_flipping(model, x, base, maps, classes, 12, insertion=True)
    np.testing.assert_allclose(f.deletion[0, :, 1:], deletion, atol=1e-6)
    np.testing.assert_allclose(f.insertion[0, :, 1:], insertion, atol=1e-6)
    if baseline == "zeros":  # Quantus's own baseline replacement, unchanged: the same
        plain = quantus.PixelFlipping(features_in_step=3 * 48, normalise=False,
                                      perturb_baseline=0.0, disable_warnings=True)  # fmt: skip
        curves = plain(model=model.eval(), x_batch=x.numpy(), y_batch=classes.numpy(),
                       a_batch=maps[:, None].numpy(), softmax=True, device="cpu")  # fmt: skip
        np.testing.assert_allclose(f.deletion[0, :, 1:], np.asarray(curves), atol=1e-6)


# --- randomisation check ------------------------------------------------------------------------


class FixedInit:
    """A layer whose reset_parameters() draws from its own generator: re-initialised the same
    by any code (Quantus reseeds torch's global RNG with one seed before every layer; we use
    seed + step), so both sides randomise to the same model."""

    def reset_parameters(self):
        g = torch.Generator().manual_seed(self.weight.numel())
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=g) * 0.5)
            if self.bias is not None:
                self.bias.copy_(torch.randn(self.bias.shape, generator=g) * 0.1)


class FixedConv(FixedInit, nn.Conv2d):
    pass


class FixedLinear(FixedInit, nn.Linear):
    pass


def fixed_init_net(seed: int = 0) -> nn.Sequential:
    net = nn.Sequential(
        FixedConv(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), FixedConv(6, 8, 3, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), FixedLinear(8, 4),
    )  # fmt: skip
    torch.manual_seed(seed)  # the "trained" weights: different from the re-initialised ones
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return net.eval()


def test_spearman_per_step_equals_quantus_mprt():
    quantus = pytest.importorskip("quantus")
    net, x = fixed_init_net(), images(4, 16)
    ours = randomization_check(net, x, methods=["gradcam", "saliency"], layer="3")
    assert ours.steps == ["7", "3", "1", "0"]  # linear, conv, batch norm, conv: top down
    for m, method in enumerate(ours.methods):
        layer = ours.layers[m]

        def explain(model, inputs, targets, layer=layer, method=method, **kwargs):
            r = compute(model, torch.as_tensor(inputs), None if layer == "input" else [layer],
                        torch.as_tensor(targets), method)  # fmt: skip
            return r.maps(layer)[:, None].numpy()

        mprt = quantus.MPRT(layer_order="top_down", normalise=False, abs=True,
                            disable_warnings=True)  # fmt: skip
        scores = mprt(model=net, x_batch=x.numpy(), y_batch=ours.classes, a_batch=None,
                      explain_func=explain, softmax=False, device="cpu")  # fmt: skip
        assert list(scores)[1:] == ours.steps  # Quantus: "original" first, then its layers
        theirs = np.array([scores[s] for s in ours.steps])
        np.testing.assert_allclose(ours.spearman[m], theirs, atol=1e-6)


def test_spearman_is_scipys_and_ssim_is_scikit_images():
    stats = pytest.importorskip("scipy.stats")
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 12, 12, generator=g)
    b = (a + 0.3 * torch.rand(3, 12, 12, generator=g)).clamp(0, 1)
    a[0, :6] = 0  # ties, as ReLU'd maps have
    b[1] = torch.round(b[1] * 4) / 4
    for i in range(3):
        rho = stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy())[0]
        ssim = metrics.structural_similarity(a[i].double().numpy(), b[i].double().numpy(),
                                             data_range=1.0)  # fmt: skip
        assert spearman_rank(a, b)[i].item() == pytest.approx(rho, abs=1e-12)
        assert structural_similarity(a, b)[i].item() == pytest.approx(ssim, abs=1e-12)
    assert torch.isnan(spearman_rank(torch.zeros(1, 9), torch.rand(1, 9))).all()


def test_randomization_check_leaves_model_and_rng_as_found_and_is_reproducible():
    model, x = model_in_odd_state(), images(2, 16)
    before, rng = snapshot(model), torch.get_rng_state()
    one = randomization_check(model, x, methods=["gradcam", "saliency"], keep_maps=True)
    assert_unchanged(model, before)
    assert torch.equal(torch.get_rng_state(), rng)
    assert one.steps == ["classifier.fc", "features.block2.bn", "features.block2.conv",
                         "features.block1.bn", "features.block1.conv"]  # fmt: skip
    assert one.layers == ["features.block2", "input"]
    assert one.spearman.shape == one.ssim.shape == (2, 5, 2)
    assert one.maps["gradcam"].shape == (6, 2, 16, 16)
    torch.testing.assert_close(one.maps["gradcam"][0], compute(model, x).maps("features.block2"))
    two = randomization_check(model, x, methods=["gradcam", "saliency"])
    np.testing.assert_array_equal(one.spearman, two.spearman)
    other = randomization_check(model, x, methods=["gradcam", "saliency"], seed=1)
    assert not np.array_equal(one.ssim, other.ssim)
    assert "randomised down to" in repr(one) and "gradcam (features.block2)" in repr(one)


def test_randomizing_everything_decorrelates_layercam_and_targets_stay_fixed():
    model, x = tiny_cnn(), images(3, 16)
    # (Grad-CAM's maps of this untrained net are all zero: no rank correlation, NaN.)
    check = randomization_check(model, x, methods="layercam", layer="features.block1",
                                cascade=["classifier", "features"])  # fmt: skip
    assert check.steps == ["classifier", "features"]
    assert np.nanmean(check.spearman[0, -1]) < 0.9  # the maps changed
    # Targets given: the same classes on every model, even when predictions change.
    given = randomization_check(model, x, methods="saliency", targets=[1, 2, 3],
                                cascade=["classifier.fc"])  # fmt: skip
    assert given.classes.tolist() == [1, 2, 3]


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors_and_the_model_stays_as_found():
    model, x = model_in_odd_state(), images(3, 16)
    res = compute(model, x)
    before = snapshot(model)
    cases = [
        (dict(baseline=torch.zeros(3, 3, 8, 8)), r"baseline must have the images' shape \(3, 3, 16, 16\)"),
        (dict(baseline="noise"), r"baseline must be one of 'blur', 'mean', 'zeros' or a tensor"),
        (dict(baseline=[0.0]), r"baseline must be one of .* got list"),
        (dict(target=1), r"target must be a target column in \[0, 0\], got 1"),
        (dict(steps=0), r"steps must be an int >= 1, got 0"),
        (dict(sigma=0), r"sigma must be a number of pixels > 0, got 0"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            faithfulness(model, x, res, **kwargs)
    with pytest.raises(ValueError, match=r"res must explain these 2 images of size \(16, 16\)"):
        faithfulness(model, x[:2], res)
    other = compute(model, x, targets=[0, 1, 2])
    with pytest.raises(ValueError, match="every result must explain the same classes"):
        faithfulness(model, x, [res, other])
    with pytest.raises(TypeError, match="res must be a CamResult"):
        faithfulness(model, x, "gradcam")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        faithfulness(lambda t: t, x, res)
    with pytest.raises(ValueError, match="uninitialised .* lazy module"):
        faithfulness(nn.Sequential(nn.Flatten(), nn.LazyLinear(4)), x, res)
    with pytest.raises(ValueError, match=r"faithfulness perturbs images .*signals"):
        faithfulness(nn.Conv1d(3, 4, 3), torch.rand(2, 3, 20), res)
    # Mask metrics without masks (nbviz.cam.agreement): what was expected, what came.
    with pytest.raises(
        TypeError, match="masks must be a torch.Tensor or numpy array, got NoneType"
    ):
        agreement(res, None)
    with pytest.raises(ValueError, match=r"masks must have shape \(3, 16, 16\)"):
        agreement(res, torch.ones(3, 8, 8))
    rand = [
        (dict(methods=["gradcam", "lime"]), r"methods must be some of .* got \['lime'\]"),
        (dict(methods=[]), r"methods must be some of"),
        (dict(layer="features.block9"), r"layer 'features.block9' does not exist"),
        (dict(cascade=["features.nope"]), r"layer 'features.nope' does not exist"),
        (dict(cascade="features"), r"cascade must be a non-empty list of module paths"),
        (dict(targets=7), r"targets must be classes in \[0, 3\], got \[7\]"),
        (dict(seed=1.5), r"seed must be an int, got 1.5"),
    ]  # fmt: skip
    for kwargs, message in rand:
        with pytest.raises((ValueError, TypeError), match=message):
            randomization_check(model, x, **kwargs)
    assert_unchanged(model, before)


def test_a_model_that_cannot_be_copied_is_refused_and_left_alone():
    model, x = model_in_odd_state(), images(2, 16)
    model.lock = threading.Lock()  # deepcopy cannot copy a lock
    before = snapshot(model)
    with pytest.raises(TypeError, match="runs on a copy of the model, and copy.deepcopy failed"):
        randomization_check(model, x, methods="gradcam")
    assert_unchanged(model, before)


def test_public_names():
    assert nbviz.cam.faithfulness is faithfulness
    assert nbviz.cam.randomization_check is randomization_check
    assert {"Faithfulness", "Randomization"} <= set(nbviz.cam.__all__)
