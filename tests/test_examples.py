"""Tests of nbviz.examples: SmallCNN, VGG11, batches, train and evaluate."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from torch import nn

import nbviz
import nbviz.examples
from nbviz.datasets import shapes
from nbviz.examples import VGG11, SmallCNN, SmallViT, batches, evaluate, train


def _model(seed: int = 0, **kwargs) -> SmallCNN:
    with torch.random.fork_rng():  # seeded init without touching the global state
        torch.manual_seed(seed)
        return SmallCNN(**kwargs)


@pytest.fixture(scope="module")
def small():
    return shapes(600, size=32, seed=0), shapes(300, size=32, seed=1)


# --- SmallCNN --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 32, 64])
def test_forward_shape(size):
    model = _model()
    out = model(torch.rand(5, 3, size, size))
    assert out.shape == (5, 6)


def test_constructor_options():
    model = _model(num_classes=4, in_channels=1, width=8, depth=3, pool="avg")
    assert model(torch.rand(2, 1, 24, 24)).shape == (2, 4)
    assert isinstance(model.classifier.pool, nn.AdaptiveAvgPool2d)
    assert isinstance(SmallCNN().classifier.pool, nn.AdaptiveMaxPool2d)
    assert len(model.features) == 3


def test_module_paths_read_well():
    names = dict(_model().named_modules())
    for block in ("block1", "block2", "block3", "block4"):
        for part, kind in (
            ("conv", nn.Conv2d),
            ("bn", nn.BatchNorm2d),
            ("relu", nn.ReLU),
            ("pool", nn.MaxPool2d),
        ):
            assert isinstance(names[f"features.{block}.{part}"], kind)
    assert isinstance(names["classifier.fc"], nn.Linear)
    assert names["features.block1.conv"].out_channels == 16
    assert names["features.block4.conv"].out_channels == 128


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 0}, {"width": 0}, {"depth": 0}, {"in_channels": 2.0}, {"pool": "mean"}],
)
def test_constructor_validates(kwargs):
    with pytest.raises(ValueError):
        SmallCNN(**kwargs)


# --- VGG11 -----------------------------------------------------------------------------------


def _vgg(seed: int = 0, **kwargs) -> VGG11:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return VGG11(**kwargs)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_vgg_forward_shape(size):
    model = _vgg()
    assert model(torch.rand(3, 3, size, size)).shape == (3, 6)


def test_vgg_layout_matches_torchvision_vgg11_bn():
    # torchvision.models.vgg11_bn().features, written out: conv-bn-relu, pools at the M's.
    config = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    expected = []
    for v in config:
        expected += [nn.MaxPool2d] if v == "M" else [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    model = _vgg(width=1)
    names = dict(model.named_modules())
    assert [type(names[f"features.{i}"]) for i in range(len(expected))] == expected
    assert f"features.{len(expected)}" not in names
    convs = [names[f"features.{i}"] for i in (0, 4, 8, 11, 15, 18, 22, 25)]
    assert all(isinstance(c, nn.Conv2d) for c in convs)
    assert [c.out_channels for c in convs] == [v for v in config if v != "M"]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [c.in_channels for c in convs] == [3, 64, 128, 256, 256, 512, 512, 512]
    assert all(names[f"features.{i}"].kernel_size == 2 for i in (3, 7, 14, 21, 28))
    assert isinstance(names["pool"], nn.AdaptiveMaxPool2d)
    assert isinstance(names["classifier.0"], nn.Linear)
    assert isinstance(names["classifier.3"], nn.Linear)
    assert names["classifier.3"].out_features == 6


def test_vgg_width_scales_channels():
    default = [m.out_channels for m in _vgg().features if isinstance(m, nn.Conv2d)]
    assert default == [8, 16, 32, 32, 64, 64, 64, 64]
    tiny = [m.out_channels for m in _vgg(width=0.001).features if isinstance(m, nn.Conv2d)]
    assert tiny == [1] * 8  # never fewer than one channel


def test_vgg_constructor_options():
    model = _vgg(num_classes=4, in_channels=1, width=0.25, pool="avg", dropout=0.0)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert model.features[0].in_channels == 1
    assert model.features[0].out_channels == 16
    assert model.classifier[2].p == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"num_classes": 6.0},
        {"in_channels": 0},
        {"in_channels": True},
        {"width": 0},
        {"width": -0.5},
        {"width": float("nan")},
        {"width": float("inf")},
        {"width": "1/8"},
        {"width": True},
        {"pool": "mean"},
        {"dropout": 1.0},
        {"dropout": -0.1},
    ],
)
def test_vgg_constructor_validates(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VGG11(**kwargs)


def test_vgg_learns_shapes():
    # Measured over five initialisations: 97-99 % training accuracy during the last epoch and
    # 93-99 % in eval mode afterwards (at lr=3e-3 on so few images it is far less steady).
    data = shapes(480, size=64, seed=0)
    model = _vgg()
    history = train(model, data.images, data.labels, epochs=8, lr=1e-3, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["accuracy"] > 0.6
    assert evaluate(model, data.images, data.labels) > 0.6


# --- batches ---------------------------------------------------------------------------------


def test_batches_cover_everything_once():
    x = torch.arange(10).float().view(10, 1)
    y = torch.arange(10)
    got = list(batches(x, y, batch_size=4, seed=3))
    assert [len(yb) for _, yb in got] == [4, 4, 2]
    ys = torch.cat([yb for _, yb in got])
    assert sorted(ys.tolist()) == list(range(10))
    for xb, yb in got:  # images and labels stay paired
        assert torch.equal(xb[:, 0].long(), yb)


def test_batches_seeded_and_shuffled():
    x, y = torch.zeros(50, 2), torch.arange(50)

    def order(**kw):
        return torch.cat([yb for _, yb in batches(x, y, batch_size=8, **kw)]).tolist()

    assert order(seed=1) == order(seed=1)
    assert order(seed=1) != order(seed=2)
    assert order(shuffle=False) == list(range(50))
    state = torch.get_rng_state()
    order(seed=5)
    assert torch.equal(torch.get_rng_state(), state)


def test_batches_validate():
    with pytest.raises(ValueError, match="same length"):
        list(batches(torch.zeros(3, 2), torch.zeros(4)))
    with pytest.raises(ValueError, match="batch_size"):
        list(batches(torch.zeros(3, 2), torch.zeros(3), batch_size=0))


# --- train -----------------------------------------------------------------------------------


def test_train_learns_and_calls_hooks(small):
    data, held_out = small
    model = _model(width=8)
    model.eval()
    calls = []
    epochs_seen = []

    def on_batch(outputs, targets, inputs):
        assert model.training  # in train mode during training
        calls.append((tuple(outputs.shape), tuple(targets.shape), tuple(inputs.shape)))
        assert outputs.grad_fn is None and not outputs.requires_grad
        assert outputs.dtype == torch.float32 and targets.dtype == torch.int64

    def on_epoch(epoch, stats):
        epochs_seen.append((epoch, dict(stats)))

    epochs, batch_size = 8, 32
    history = train(
        model,
        data.images,
        data.labels,
        epochs=epochs,
        batch_size=batch_size,
        on_batch=on_batch,
        on_epoch=on_epoch,
        seed=0,
    )

    assert not model.training  # back in eval mode, as before
    per_epoch = math.ceil(len(data.labels) / batch_size)
    assert len(calls) == epochs * per_epoch
    assert calls[0] == ((32, 6), (32,), (32, 3, 32, 32))
    last = len(data.labels) - (per_epoch - 1) * batch_size
    assert calls[per_epoch - 1] == ((last, 6), (last,), (last, 3, 32, 32))

    assert len(history) == epochs
    assert [e for e, _ in epochs_seen] == list(range(1, epochs + 1))
    assert [s for _, s in epochs_seen] == history
    for stats in history:
        assert {"epoch", "loss", "accuracy", "seconds"} <= set(stats)
        assert 0.0 <= stats["accuracy"] <= 1.0 and stats["loss"] > 0
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["accuracy"] > history[0]["accuracy"]

    chance = 1 / 6
    assert evaluate(model, data.images, data.labels) > 0.5
    assert evaluate(model, held_out.images, held_out.labels) > chance + 0.08


def test_train_val_reports_accuracy(small):
    data, held_out = small
    model = _model(width=4)
    history = train(
        model,
        data.images[:64],
        data.labels[:64],
        epochs=1,
        val=(held_out.images[:50], held_out.labels[:50]),
    )
    assert 0.0 <= history[0]["val_accuracy"] <= 1.0


def test_train_is_deterministic(small):
    data, _ = small
    x, y = data.images[:96], data.labels[:96]
    a, b = _model(width=4), _model(width=4)
    train(a, x, y, epochs=1, batch_size=32, seed=4)
    train(b, x, y, epochs=1, batch_size=32, seed=4)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("start_training", [True, False])
def test_train_restores_modes(small, start_training):
    data, _ = small
    model = _model(width=4)
    model.train(start_training)
    model.features.block2.bn.eval()  # a frozen submodule keeps its own mode
    train(model, data.images[:40], data.labels[:40], epochs=1, batch_size=20)
    assert model.training is start_training
    assert model.features.block2.bn.training is False
    assert model.features.block1.bn.training is start_training


def test_train_zero_epochs(small):
    data, _ = small
    model = _model(width=4)
    before = [p.clone() for p in model.parameters()]
    assert train(model, data.images[:8], data.labels[:8], epochs=0) == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# --- evaluate --------------------------------------------------------------------------------


@pytest.mark.parametrize("start_training", [True, False])
def test_evaluate_restores_mode_and_uses_no_grad(start_training):
    model = _model(width=4)
    model.train(start_training)
    seen = []
    model.features.block1.register_forward_hook(
        lambda module, inputs, output: seen.append((module.training, torch.is_grad_enabled()))
    )
    x = torch.rand(10, 3, 16, 16)
    y = torch.randint(0, 6, (10,))
    acc = evaluate(model, x, y, batch_size=4)
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0
    assert seen == [(False, False)] * 3  # three batches, eval mode, no grad
    assert model.training is start_training
    assert torch.is_grad_enabled()


def test_evaluate_matches_manual_accuracy():
    model = _model(width=4).eval()
    x = torch.rand(37, 3, 16, 16)
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    y = pred.clone()
    y[:10] = (y[:10] + 1) % 6  # ten wrong
    assert evaluate(model, x, y, batch_size=8) == pytest.approx(27 / 37)


def test_docstring_examples():
    result = doctest.testmod(nbviz.examples, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_small_vit_is_a_transformer_nbviz_explains_on_its_patch_grid():
    vit = SmallViT(num_classes=6).eval()
    x = torch.rand(3, 3, 64, 64)
    assert vit(x).shape == (3, 6)
    res = nbviz.cam.compute(vit, x)
    assert res.layers == ["blocks.0", "blocks.1"]  # the blocks, in order
    assert res.raw("blocks.0").shape == (3, 8, 8)  # the 8 x 8 grid of patch tokens
    assert res.no_gradient == ("blocks.1",)  # the head reads only the class token
    assert nbviz.cam.compute(vit, x, method="rollout").raw(1).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="multiple of heads"):
        SmallViT(dim=30, heads=4)
    with pytest.raises(ValueError, match="image_size must be at least 8"):
        SmallViT(image_size=4)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    model = SmallCNN(num_classes=2, width=4, depth=2)
    x, y = torch.rand(40, 3, 16, 16), torch.randint(0, 2, (40,))
    rates = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    torch.optim.Adam.step = spy
    try:
        train(model, x, y, epochs=5, batch_size=2, lr=0.01, schedule="cosine")
    finally:
        torch.optim.Adam.step = original
    steps = 5 * 20
    assert len(rates) == steps
    assert rates[:10] == pytest.approx([0.01 * (i + 1) / 10 for i in range(10)])  # warm-up
    assert rates[10] == pytest.approx(0.01) and rates[-1] < 1e-5  # then down to 0
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    with pytest.raises(ValueError, match="schedule must be one of"):
        train(model, x, y, schedule="step")
