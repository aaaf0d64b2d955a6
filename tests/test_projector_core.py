"""The projector's headless core against independent references.

Covers: `embed`'s default layer (SmallCNN, the reference VGG, ResNet, MobileNet and ViT,
a functional head input, a model without a Linear) and its vectors equal to a direct
computation; pooling of maps, tokens and vectors; batching and dict inputs; items with
non-finite activations dropped and counted; 100,000 items; clear errors for bad input,
with the model left as found. `pca` against scikit-learn, `procrustes_align` against
scipy's `orthogonal_procrustes`, `neighbours` against a brute-force numpy search on
20,000 items.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA as SkPCA
from torch import nn

from nbviz.examples import SmallCNN
from nbviz.projector import core, default_layer, embed, neighbours, pca, procrustes_align
from tests import models

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def cnn(seed: int = 0, **kw) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes=4, width=4, **kw)


# --- model left as found ------------------------------------------------------------------------


def hooks(model: nn.Module) -> list[int]:
    return [
        len(d)
        for m in model.modules()
        for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks)
    ]


def snapshot(model: nn.Module) -> dict:
    return {
        "hooks": hooks(model),
        "modes": {p: m.training for p, m in model.named_modules()},
        "requires_grad": {p: q.requires_grad for p, q in model.named_parameters()},
        "grads": {p: q.grad for p, q in model.named_parameters()},
        "grad_values": {
            p: None if q.grad is None else q.grad.clone() for p, q in model.named_parameters()
        },
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    for key in ("hooks", "modes", "requires_grad", "grad_enabled"):
        assert after[key] == before[key], key
    for p, q in model.named_parameters():
        assert q.grad is before["grads"][p], f"{p}.grad replaced"
        if q.grad is not None:
            assert torch.equal(q.grad, before["grad_values"][p]), f"{p}.grad changed"
    state = model.state_dict()
    assert state.keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(state[k], v), k  # bit-equal, buffers included


def training_model() -> SmallCNN:
    """Mid-training: train mode (an eval head), mixed requires_grad, grads set, a user hook."""
    model = cnn().train()
    model.classifier.eval()
    model.features.block1.conv.weight.requires_grad_(False)
    model.classifier.fc.weight.grad = torch.randn_like(model.classifier.fc.weight)
    model.features.block2.register_forward_hook(lambda *a: None)
    return model


# --- the default layer and its vectors ------------------------------------------------------------


def test_smallcnn_default_is_the_input_of_its_classifier():
    model, x = cnn(), rand(7, 3, 16, 16)
    emb = embed(model, x, batch_size=3)
    assert emb.layer == "classifier.flatten" == default_layer(model, x)
    model.eval()
    with torch.no_grad():
        fed = []
        h = model.classifier.fc.register_forward_pre_hook(lambda m, a: fed.append(a[0]))
        logits = model(x)
        h.remove()
    torch.testing.assert_close(emb.vectors, fed[0])  # (batches of 3 vs 7: rounding)
    assert emb.vectors.dtype == torch.float32 and emb.vectors.device.type == "cpu"
    assert emb.index.tolist() == list(range(7)) and emb.dropped.tolist() == []
    assert emb.dim == 32 and emb.n == 7 and emb.pool == "mean"
    assert emb.predicted.tolist() == logits.argmax(1).tolist()


@pytest.mark.parametrize(
    "name, layer",
    [
        # torch.flatten(avgpool(x), 1) -> fc: the same memory as avgpool's output
        ("resnet18", "avgpool"),
        # Linear, ReLU(inplace), Dropout, Linear: the last module whose output is fed
        ("vgg11", "classifier.5"),
        # classifier = Sequential(Dropout, Linear) after a functional pool
        ("mobilenet_v2", "classifier.0"),
        # head(norm(x)[:, 0]): a slice, so the last module before the head
        ("vit", "norm"),
    ],
)
def test_default_layer_of_reference_models(name, layer):
    torch.manual_seed(0)
    model = getattr(models, name)()
    x = rand(5, 3, 32, 32)
    assert default_layer(model, x) == layer
    model.eval()
    fed = []
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    h = head.register_forward_pre_hook(lambda m, a: fed.append(a[0]))
    with torch.no_grad():
        model(x)
    h.remove()
    emb = embed(model, x, pool="cls" if name == "vit" else "mean")
    assert emb.layer == layer
    torch.testing.assert_close(emb.vectors, fed[0].flatten(1), rtol=1e-6, atol=1e-6)


class MeanHead(nn.Module):
    """The head's input is made by a function (a mean), in no module's memory."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_default_falls_back_to_the_last_module_before_the_head():
    model, x = MeanHead(), rand(4, 3, 8, 8)
    emb = embed(model, x)
    assert emb.layer == "features"  # the container finishes after its ReLU
    with torch.no_grad():
        torch.testing.assert_close(emb.vectors, model.features(x).mean((2, 3)))


def test_default_without_a_linear_is_what_feeds_the_last_leaf():
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten())
    assert embed(model, rand(3, 3, 8, 8)).layer == "2"


def test_a_model_whose_head_comes_first_needs_a_layer():
    with pytest.raises(ValueError, match="pass layer="):
        embed(nn.Linear(2, 2), rand(2, 3, 2, 2))
    # a module before the head, even a Flatten, is what feeds it
    assert embed(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), rand(2, 3, 2, 2)).layer == "0"
    assert embed(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), rand(2, 3, 2, 2), "1").dim == 2


# --- named layers and pooling ---------------------------------------------------------------------


def test_named_layer_maps_pooled_by_mean_and_max():
    model, x = cnn(), rand(6, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        ref = model.features.block2.conv(model.features.block1(x))
    mean = embed(model, x, "features.block2.conv")
    top = embed(model, x, model.features.block2.conv, pool="max")  # the module itself
    torch.testing.assert_close(mean.vectors, ref.mean((2, 3)))
    torch.testing.assert_close(top.vectors, ref.amax((2, 3)))
    assert top.layer == "features.block2.conv" and top.pool == "max"


def test_values_as_the_layer_made_them_before_an_in_place_relu():
    model, x = cnn(), rand(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        ref = model.features.block1.bn(model.features.block1.conv(x))
    emb = embed(model, x, "features.block1.bn")
    assert (ref.mean((2, 3)) < 0).any()  # the ReLU after it would have changed these
    torch.testing.assert_close(emb.vectors, ref.mean((2, 3)))


def test_tokens_pooled_by_mean_max_and_class_token():
    torch.manual_seed(0)
    model, x = models.vit(), rand(3, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        tokens = model.blocks[1](
            model.blocks[0](
                torch.cat([model.cls_token.expand(3, -1, -1), model.patch_embed(x)], 1)
                + model.pos_embed
            )
        )
    for pool, ref in (
        ("mean", tokens.mean(1)),
        ("max", tokens.amax(1)),
        ("cls", tokens[:, 0]),
        (lambda t: t[:, 1:3].flatten(1), tokens[:, 1:3].flatten(1)),
    ):
        emb = embed(model, x, "blocks.1", pool=pool)
        torch.testing.assert_close(emb.vectors, ref, rtol=1e-5, atol=1e-5)


def test_batches_and_dict_inputs_with_per_item_keywords():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(4, 2)

        def forward(self, pixel_values, scale=None, shift=0.0):
            return self.fc(self.body(pixel_values) * scale[:, None] + shift)

    torch.manual_seed(0)
    model, x, scale = Scaled(), rand(5, 3, 6, 6), torch.arange(1.0, 6.0)
    whole = embed(model, {"pixel_values": x, "scale": scale}, "fc", forward_kwargs={"shift": 1.0})
    split = embed(
        model,
        {"pixel_values": x, "scale": scale},
        "fc",
        batch_size=2,
        forward_kwargs={"shift": 1.0},
    )
    with torch.no_grad():
        ref = model(x, scale, 1.0)
    torch.testing.assert_close(whole.vectors, ref)
    torch.testing.assert_close(split.vectors, ref)


def test_numpy_images_and_a_hundred_thousand_items():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = np.random.default_rng(0).random((100_000, 3, 2, 2), dtype=np.float32)
    emb = embed(model, x, batch_size=4096)
    assert emb.layer == "2" and emb.vectors.shape == (100_000, 8)
    with torch.no_grad():
        torch.testing.assert_close(emb.vectors, model[:3](torch.from_numpy(x)))


# --- non-finite activations -----------------------------------------------------------------------


def test_non_finite_items_are_dropped_and_counted():
    model, x = cnn(), rand(9, 3, 16, 16)
    x[2, 0, 3, 3] = float("nan")
    x[7, 1, 5, 5] = float("inf")
    emb = embed(model, x, batch_size=4)
    assert emb.dropped.tolist() == [2, 7]
    assert emb.index.tolist() == [0, 1, 3, 4, 5, 6, 8]
    assert emb.vectors.shape == (7, 32) and bool(torch.isfinite(emb.vectors).all())
    ref = embed(model, x[emb.index])
    torch.testing.assert_close(emb.vectors, ref.vectors)
    assert emb.predicted.tolist() == ref.predicted.tolist()
    text = emb.summary()
    assert "7 items embedded" in text and "2 items of 9 left out" in text
    assert "non-finite" in text and "2, 7" in text and str(emb) == text


# --- bad input ------------------------------------------------------------------------------------


def test_unknown_layer_suggests_close_paths():
    model = cnn()
    with pytest.raises(ValueError, match=r"'classifier\.fcc' does not exist.*'classifier\.fc'"):
        embed(model, rand(2, 3, 16, 16), "classifier.fcc")
    with pytest.raises(ValueError, match="not part of this model"):
        embed(model, rand(2, 3, 16, 16), nn.Linear(2, 2))


def test_images_of_the_wrong_rank_name_the_whole_shape():
    with pytest.raises(ValueError, match=r"got shape \(300, 16, 16\)"):
        embed(cnn(), torch.rand(300, 16, 16), batch_size=8)
    with pytest.raises(ValueError, match="3 channels"):
        embed(cnn(), torch.rand(3, 1, 16, 16))
    with pytest.raises(TypeError, match="images must be"):
        embed(cnn(), [[1.0]])
    with pytest.raises(ValueError, match="empty"):
        embed(cnn(), torch.rand(0, 3, 16, 16))


def test_too_many_items_refused_with_the_figure(monkeypatch):
    monkeypatch.setattr(core, "MAX_BYTES", 1000)
    model = training_model()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"20 x 32 float32 values, 2\.5 KiB.*bound of 1\.0 KiB"):
        embed(model, rand(20, 3, 16, 16))
    assert_unchanged(model, before)


def test_a_hundred_thousand_wide_vectors_are_refused_before_the_pass():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    calls = []
    model[0].register_forward_hook(lambda m, a, o: calls.append(len(o)))
    x = torch.zeros(100_000, 3, 2, 2)
    with pytest.raises(ValueError, match=r"100,000 x 12 float32"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(core, "MAX_BYTES", 100_000 * 8 * 4)
            embed(model, x, "0")
    assert calls == [core.PROBE]  # only the probe ran


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"pool": "median"}, ValueError, "pool must be one of"),
        ({"pool": "cls", "layer": "features.block1.conv"}, ValueError, "pool='cls'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
        ({"output": 1.5}, TypeError, "output must be"),
        ({"output": "logits"}, ValueError, "names no part"),
        ({"forward_kwargs": {"mask": torch.ones(2)}}, TypeError, "takes no keyword 'mask'"),
        ({"pool": lambda t: t.flatten()}, ValueError, "one vector per item"),
    ],
)
def test_bad_arguments_change_nothing(kwargs, error, match):
    model = training_model()
    before = snapshot(model)
    with pytest.raises(error, match=match):
        embed(model, rand(2, 3, 16, 16), **kwargs)
    assert_unchanged(model, before)


def test_a_layer_that_does_not_run_or_outputs_no_tensor():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(2, 2)
            self.conv = nn.Conv2d(3, 2, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    with pytest.raises(ValueError, match="'unused' did not run"):
        embed(Odd(), rand(2, 3, 4, 4), "unused")
    with pytest.raises(TypeError, match="model must be"):
        embed(lambda x: x, rand(2, 3, 4, 4))


def test_model_left_as_found():
    model = training_model()
    before = snapshot(model)
    emb = embed(model, rand(5, 3, 16, 16), batch_size=2)
    assert_unchanged(model, before)
    assert emb.vectors.requires_grad is False
    # Eval-mode batch norm: the vectors equal the eval model's, whatever the mode was.
    ref = embed(cnn().eval(), rand(5, 3, 16, 16))
    torch.testing.assert_close(emb.vectors, ref.vectors)


def test_model_left_as_found_when_the_forward_fails():
    model = training_model()
    before = snapshot(model)

    def fail(*_):
        raise RuntimeError("boom")

    model.classifier.fc.register_forward_pre_hook(fail)
    before["hooks"] = hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        embed(model, rand(3, 3, 16, 16), "features")
    assert_unchanged(model, before)


# --- PCA ------------------------------------------------------------------------------------------


def correlated(m: int, d: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return (g.normal(size=(m, d)) @ g.normal(size=(d, d)) + 3).astype(np.float32)


@pytest.mark.parametrize("m, d", [(2000, 24), (40, 90)])  # covariance and SVD routes
@pytest.mark.parametrize("dims", [2, 3])
def test_pca_equals_sklearn(m, d, dims):
    x = correlated(m, d)
    ours = pca(torch.from_numpy(x), dims)
    ref = SkPCA(dims, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.explained, ref.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(ours.components, ref.components_, atol=1e-5)
    coords = ref.transform(x.astype(np.float64))
    scale = np.abs(coords).max()
    # up to sign, and equal signs too: the same convention (largest loading positive)
    np.testing.assert_allclose(np.abs(ours.coords), np.abs(coords), atol=1e-5 * scale)
    np.testing.assert_allclose(ours.coords, coords, atol=1e-5 * scale)
    assert ours.coords.dtype == np.float32 and ours.coords.shape == (m, dims)
    big = np.abs(ours.components).argmax(1)
    assert (ours.components[np.arange(dims), big] > 0).all()


def test_pca_of_constant_vectors_and_bad_input():
    p = pca(np.ones((5, 4)))
    assert np.all(p.coords == 0) and np.all(p.explained == 0)
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        pca(np.ones((5, 4)), 4)
    with pytest.raises(ValueError, match="at least 3 dims"):
        pca(np.ones((5, 2)), 3)
    with pytest.raises(ValueError, match="must be finite; 1 rows"):
        pca(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="must be a matrix"):
        pca(np.ones(5))


# --- Procrustes -----------------------------------------------------------------------------------


def scipy_align(prev: np.ndarray, cur: np.ndarray, fit_prev, fit_cur, scale=True):
    a, b = prev[fit_prev].astype(np.float64), cur[fit_cur].astype(np.float64)
    r, s = orthogonal_procrustes(b - b.mean(0), a - a.mean(0))
    k = s / ((b - b.mean(0)) ** 2).sum() if scale else 1.0
    return (cur - b.mean(0)) @ r * k + a.mean(0)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("scale", [True, False])
def test_procrustes_equals_scipy_on_the_items_in_common(dims, scale):
    g = np.random.default_rng(dims)
    prev = g.normal(size=(300, dims))
    q, _ = np.linalg.qr(g.normal(size=(dims, dims)))  # a rotation or a reflection
    cur_all = (prev @ q) * 2.5 + 4 + 0.05 * g.normal(size=prev.shape)
    # current: items 50..349 in shuffled order (items 300.. are new); previous: 0..299
    prev_index = np.arange(300)
    cur_index = g.permutation(np.arange(50, 350))
    cur = np.where((cur_index < 300)[:, None], cur_all[np.minimum(cur_index, 299)], 0.0)
    cur[cur_index >= 300] = g.normal(size=((cur_index >= 300).sum(), dims))
    got = procrustes_align(prev, cur, prev_index, cur_index, scale=scale)
    common, fp, fc = np.intersect1d(prev_index, cur_index, return_indices=True)
    ref = scipy_align(prev, cur, fp, fc, scale)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert got.dtype == np.float32 and got.shape == cur.shape
    if scale:  # the shared items land close to where they were
        assert np.abs(got[fc] - prev[fp]).max() < 0.2


def test_procrustes_without_reflection_rotates_only():
    g = np.random.default_rng(0)
    prev = g.normal(size=(100, 2))
    mirrored = prev * [1, -1]
    got = procrustes_align(prev, mirrored, reflection=False).astype(np.float64)
    both = procrustes_align(prev, mirrored)
    np.testing.assert_allclose(both, prev, atol=1e-5)  # a reflection undone
    # a rotation only: the fitted map keeps orientation (det > 0)
    m, *_ = np.linalg.lstsq(mirrored - mirrored.mean(0), got - got.mean(0), rcond=None)
    assert np.linalg.det(m) > 0
    # and a pure rotation is undone either way
    c, s = np.cos(0.7), np.sin(0.7)
    np.testing.assert_allclose(
        procrustes_align(prev, prev @ [[c, s], [-s, c]], reflection=False), prev, atol=1e-5
    )


def test_procrustes_bad_input():
    a = np.zeros((3, 2))
    with pytest.raises(ValueError, match="same dims"):
        procrustes_align(a, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="pass previous_index"):
        procrustes_align(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="no item in common"):
        procrustes_align(a, a, [0, 1, 2], [3, 4, 5])
    with pytest.raises(ValueError, match="must not repeat"):
        procrustes_align(a, a, [0, 1, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="or neither"):
        procrustes_align(a, a, [0, 1, 2])


# --- neighbours -----------------------------------------------------------------------------------


def brute_force(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Sorted distances to each row's k nearest other rows, in float64, chunked."""
    x = x.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for i in range(0, len(x), 2000):
        a = x[i : i + 2000]
        if metric == "cosine":
            d = 1 - a @ x.T
        else:
            d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (x * x).sum(1) - 2 * a @ x.T, 0))
        d[np.arange(len(a)), np.arange(i, i + len(a))] = np.inf
        part = np.partition(d, k, axis=1)[:, :k]
        out.append(np.sort(part, axis=1))
    return np.concatenate(out)


def distances_of(x: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    x = x.astype(np.float64)
    a, b = x[:, None, :], x[idx]
    if metric == "cosine":
        return 1 - (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.linalg.norm(a - b, axis=-1)


@pytest.mark.parametrize("metric, m", [("euclidean", 20_000), ("cosine", 5_000)])
def test_neighbours_equal_a_brute_force_search(metric, m):
    x = np.random.default_rng(1).normal(size=(m, 32)).astype(np.float32)
    idx, dist = neighbours(x, k=10, metric=metric, distances=True)
    assert idx.shape == (m, 10) and idx.dtype == np.int64
    assert not (idx == np.arange(m)[:, None]).any()
    ref = brute_force(x, 10, metric)
    true = distances_of(x, idx, metric)
    # each row's neighbours are its k nearest, nearest first (ties aside)
    np.testing.assert_allclose(true, ref, atol=2e-5)
    np.testing.assert_allclose(dist, true, atol=2e-4)


def test_neighbours_duplicates_zero_vectors_and_bad_input():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    idx, dist = neighbours(x, k=1, metric="euclidean", distances=True)
    assert idx[:, 0].tolist()[:2] == [1, 0] and dist[0, 0] == 0
    _, dist = neighbours(x, k=3, distances=True)
    np.testing.assert_allclose(dist[2], [1, 1, 1])  # a zero vector: distance 1 to all
    with pytest.raises(ValueError, match="k must be less than the number of items"):
        neighbours(x, k=4)
    with pytest.raises(ValueError, match="metric must be"):
        neighbours(x, metric="manhattan")
    with pytest.raises(ValueError, match="finite"):
        neighbours(torch.tensor([[0.0], [float("nan")]]), k=1)


def test_neighbours_report_progress_and_stop_when_told(monkeypatch):
    import nbviz.projector.geometry as geometry

    monkeypatch.setattr(geometry, "CHUNK_BYTES", 4 * 100 * 30)  # 30 rows a chunk
    x = np.random.default_rng(2).normal(size=(100, 8)).astype(np.float32)
    seen = []
    idx = neighbours(x, k=3, progress=lambda done, rows: seen.append((done, rows)))
    assert seen == [(30, 100), (60, 100), (90, 100), (100, 100)]
    np.testing.assert_array_equal(idx, neighbours(x, k=3))

    class Stop(Exception):
        pass

    def stop(done, rows):
        if done >= 60:
            raise Stop

    with pytest.raises(Stop):
        neighbours(x, k=3, progress=stop)
