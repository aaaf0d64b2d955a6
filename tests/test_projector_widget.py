"""`nbviz.Embeddings` through its synced state: the first frame equals the core's PCA of
`embed`'s vectors, neighbours equal the core's, confidence and loss equal a direct
forward, `update()` appends a frame aligned by `procrustes_align`, bad input is refused
before anything runs, and the model is left as found."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

import nbviz
from nbviz._widget import array_from_json
from nbviz.examples import SmallCNN
from nbviz.projector import embed, neighbours, pca, procrustes_align
from nbviz.projector import widget as projector_widget

pytestmark = pytest.mark.usefixtures("one_thread")

N, K = 60, 4


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, 3, 16, 16, generator=g), torch.randint(0, K, (N,), generator=g)


def cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes=K, width=4)


def state(w) -> dict:
    out = {}
    for k, v in w.get_state().items():
        out[k] = array_from_json(v) if isinstance(v, dict) and "buffer" in v else v
    return out


def test_first_frame_equals_the_core():
    x, y = data()
    model = cnn()
    emb = nbviz.Embeddings(model, x, y, classes=list("abcd"), neighbours=5, batch_size=16)
    s = state(emb)
    e = embed(model, x, batch_size=16)
    assert s["layer"] == e.layer
    np.testing.assert_array_equal(s["coords"][0], pca(e.vectors).coords)
    np.testing.assert_array_equal(s["neighbours"][0], neighbours(e.vectors, k=5))
    np.testing.assert_array_equal(s["labels"], y.numpy())
    np.testing.assert_array_equal(s["predicted"][0], e.predicted.numpy())
    assert s["classes"] == list("abcd") and s["frame_labels"] == ["initial"]
    # confidence and loss from the same forward equal a direct one
    with torch.no_grad():
        model.eval()
        lp = torch.log_softmax(model(x), 1)
    np.testing.assert_allclose(s["confidence"][0], lp.max(1).values.exp().numpy(), rtol=1e-5)
    np.testing.assert_allclose(s["loss"][0], -lp[torch.arange(N), y].numpy(), rtol=1e-5)
    assert s["thumbnails"].shape == (N, 16, 16, 3) and s["thumbnails"].dtype == np.uint8
    assert "60 items at 'classifier.flatten'" in s["status"]


def test_update_appends_a_frame_aligned_to_the_last():
    x, y = data()
    model = cnn()
    emb = nbviz.Embeddings(model, x, y)
    first = emb.frames[0].coords.copy()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    emb.update(label="epoch 1")
    s = state(emb)
    assert s["coords"].shape == (2, N, 2) and s["frame_labels"] == ["initial", "epoch 1"]
    e = embed(model, x)
    aligned = procrustes_align(first, pca(e.vectors).coords)
    np.testing.assert_allclose(s["coords"][1], aligned, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(s["coords"][0], first)  # earlier frames stay
    assert s["neighbours"].shape == (2, N, 10)
    assert s["classes"] == ["0", "1", "2", "3"]


def test_items_with_nan_activations_are_left_out_and_counted():
    x, y = data()
    x[[3, 7], 0, 0, 0] = float("nan")
    emb = nbviz.Embeddings(cnn(), x, y)
    s = state(emb)
    assert np.isnan(s["coords"][0, [3, 7]]).all() and np.isfinite(s["coords"][0, :3]).all()
    assert (s["predicted"][0, [3, 7]] == -1).all()
    assert (s["neighbours"][0, [3, 7]] == -1).all()
    assert not np.isin(s["neighbours"][0], [3, 7]).any()
    assert s["status"].endswith("2 items left out: non-finite activations")


class Bare(nn.Module):
    """Outputs features only: no class scores, so no prediction, confidence or loss."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8), nn.ReLU())
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return self.proj(self.body(x))[:, None]  # (N, 1, 8): not (N, K) scores


def test_a_model_without_class_scores_sends_none():
    x, _ = data()
    s = state(nbviz.Embeddings(Bare(), x, layer="body"))
    assert s["predicted"] is None and s["confidence"] is None and s["loss"] is None
    assert s["labels"] is None and s["coords"].shape == (1, N, 2)


def test_bad_input_is_refused_before_anything_runs():
    x, y = data()
    model = cnn()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="60 items given but 59 labels"):
        nbviz.Embeddings(model, x, y[:-1])
    with pytest.raises(ValueError, match="did you mean"):
        nbviz.Embeddings(model, x, y, layer="features.blok1")
    with pytest.raises(ValueError, match="labels go up to 3 but 2 class names"):
        nbviz.Embeddings(model, x, y, classes=["a", "b"])
    with pytest.raises(ValueError, match="integers"):
        nbviz.Embeddings(model, x, y.float())
    with pytest.raises(TypeError, match="torch.nn.Module"):
        nbviz.Embeddings(lambda v: v, x)
    assert calls == []


def test_model_left_as_found():
    x, y = data()
    model = cnn()
    model.train()
    model.features.eval()
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = len(model._forward_hooks)
    emb = nbviz.Embeddings(model, x, y)
    emb.update()
    assert model.training and not model.features.training
    assert all(not p.requires_grad for p in model.classifier.parameters())
    assert all(p.requires_grad for p in model.features.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(model._forward_hooks) == hooks


def test_thumbnails_are_bounded(monkeypatch):
    monkeypatch.setattr(projector_widget, "THUMBNAIL_BYTES", N * 8 * 8 * 3)
    x, y = data()
    s = state(nbviz.Embeddings(cnn(), x, y, thumbnail_size=32))
    assert s["thumbnails"].shape == (N, 8, 8, 3)


def test_pushes_are_binary_arrays():
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y)
    raw = emb.get_state()
    assert raw["coords"]["dtype"] == "float32" and raw["neighbours"]["dtype"] == "int32"
    assert isinstance(raw["coords"]["buffer"], memoryview)


# --- what the browser's UMAP and t-SNE get: a fixed sample, reduced by PCA --------------------


def test_sample_vectors_are_each_frames_pca_of_the_sample():
    from sklearn.decomposition import PCA

    x, y = data()
    model = SmallCNN(num_classes=K, width=16)  # 128 dims at the default layer: reduced to 50
    emb = nbviz.Embeddings(model, x, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    emb.update()
    s = state(emb)
    sample = s["sample"]
    assert sample.dtype == np.int32 and sorted(sample.tolist()) == list(range(N))  # all, shuffled
    assert sample.tolist() != list(range(N))
    v = s["sample_vectors"]
    assert v.shape == (2, N, 50) and v.dtype == np.float32
    for f, frame in enumerate(emb.frames):
        ref = PCA(50).fit_transform(frame.embedded.vectors.numpy()[sample])
        # equal up to each axis's sign: the same distances and inner products
        np.testing.assert_allclose(v[f] @ v[f].T, ref @ ref.T, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(np.abs(v[f][:, :3]), np.abs(ref[:, :3]), rtol=1e-3, atol=1e-3)


def test_narrow_layers_are_sent_centred_without_a_projection():
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y)  # 32 dims
    s = state(emb)
    vec = emb.frames[0].embedded.vectors.numpy().astype(np.float64)[s["sample"]]
    assert s["sample_vectors"].shape == (1, N, 32)
    np.testing.assert_allclose(s["sample_vectors"][0], vec - vec.mean(0), rtol=1e-5, atol=1e-5)


def test_the_sample_is_fixed_uniform_and_the_same_in_every_frame():
    x, y = data()
    x[[3, 7], 0, 0, 0] = float("nan")  # left out of every frame
    model = cnn()
    emb = nbviz.Embeddings(model, x, y, sample=20)
    first = state(emb)["sample"].copy()
    emb.update()
    s = state(emb)
    assert len(first) == 20 and len(set(first.tolist())) == 20
    assert first.min() >= 0 and first.max() < N
    np.testing.assert_array_equal(s["sample"], first)  # the same items in every frame
    np.testing.assert_array_equal(state(nbviz.Embeddings(cnn(), x, y, sample=20))["sample"], first)
    v = s["sample_vectors"]
    assert v.shape == (2, 20, 32)
    out = np.isin(first, [3, 7])
    assert np.isnan(v[:, out]).all() and np.isfinite(v[:, ~out]).all()
    # the mean and the PCA are those of the sampled items kept
    kept = emb.frames[1].embedded
    rows = np.searchsorted(kept.index.numpy(), first[~out])
    vec = kept.vectors.numpy().astype(np.float64)[rows]
    np.testing.assert_allclose(v[1, ~out], vec - vec.mean(0), rtol=1e-5, atol=1e-5)


def test_sample_zero_sends_nothing_for_umap_and_tsne():
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y, sample=0)
    emb.update()
    s = state(emb)
    assert s["sample"] is None and s["sample_vectors"] is None
    with pytest.raises(ValueError, match="sample must be an int >= 0"):
        nbviz.Embeddings(cnn(), x, y, sample=-1)


def test_sample_vectors_travel_as_float32_buffers():
    x, y = data()
    raw = nbviz.Embeddings(cnn(), x, y).get_state()
    assert raw["sample"]["dtype"] == "int32" and raw["sample_vectors"]["dtype"] == "float32"
    assert isinstance(raw["sample_vectors"]["buffer"], memoryview)


def test_wide_layers_are_reduced_by_a_seeded_randomised_pca():
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 30, generator=g) @ torch.randn(30, 400, generator=g)
    x += 0.05 * torch.randn(600, 400, generator=g)
    a = projector_widget._reduce(x, 50)
    np.testing.assert_array_equal(a, projector_widget._reduce(x, 50))  # the same every call
    ref = PCA(50).fit_transform(x.numpy())
    assert a.shape == (600, 50) and a.dtype == np.float32
    assert (a.astype(np.float64) ** 2).sum() >= 0.999 * (ref.astype(np.float64) ** 2).sum()
    np.testing.assert_allclose(np.abs(a[:, :5]), np.abs(ref[:, :5]), rtol=1e-2, atol=1e-2)


def test_three_d_coords_are_the_first_three_components_aligned_in_3d():
    x, y = data()
    model = cnn()
    emb = nbviz.Embeddings(model, x, y, neighbours=3)
    e = emb.embedded
    p = pca(e.vectors, dims=3)
    s = state(emb)
    assert s["coords3"].shape == (1, N, 3)
    np.testing.assert_allclose(s["coords3"][0], p.coords, atol=1e-5)
    np.testing.assert_allclose(s["coords"][0], p.coords[:, :2], atol=1e-5)
    assert len(s["explained"][0]) == 3
    torch.manual_seed(1)
    model.features.block1[0].reset_parameters()  # other weights: another frame
    emb.update()
    aligned = procrustes_align(emb.frames[0].coords3, pca(emb.embedded.vectors, dims=3).coords)
    np.testing.assert_allclose(state(emb)["coords3"][1], aligned, atol=1e-4)


def test_large_frames_find_their_neighbours_in_the_background(monkeypatch):
    monkeypatch.setattr(projector_widget, "NEIGHBOURS_NOW", 10)  # N = 60 is "large"
    # the search starts once the test watches the traits (a quick one could end before)
    watching = threading.Event()
    monkeypatch.setattr(projector_widget, "_yield_cpu", lambda: watching.wait(30))
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y, neighbours=4)
    try:
        sent = []
        emb.observe(lambda change: sent.append(change["name"]), names=["coords", "neighbours"])
        watching.set()
        emb._searches.submit(lambda: None).result()  # the search queued before has ended
        frame = emb.frames[0]
        np.testing.assert_array_equal(frame.neighbours, neighbours(emb.embedded.vectors, k=4))
        near = state(emb)["neighbours"][0]
        assert (near >= 0).all()
        assert sent == ["neighbours"]  # the search's push sends the neighbours, not the frames
        assert "finding" not in emb.status

        emb.update(label="next")  # a second frame: shown at once, its neighbours -1 until found
        assert emb.frames[1].neighbours is None or (state(emb)["neighbours"][1] >= 0).all()
        emb._searches.submit(lambda: None).result()
        assert (state(emb)["neighbours"][1] >= 0).all()
    finally:
        watching.set()
        emb.close()
        emb._searches.shutdown(wait=True)  # no search thread outlives the test


def test_a_background_search_stops_when_the_widget_closes(monkeypatch):
    monkeypatch.setattr(projector_widget, "NEIGHBOURS_NOW", 10)
    monkeypatch.setattr(projector_widget, "neighbours", _stop_after_first_chunk)
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y, neighbours=4)
    emb.close()
    emb._searches.shutdown(wait=True)
    assert emb.frames[0].neighbours is None and emb.frames[0].neighbours_error == ""


def _stop_after_first_chunk(vectors, k, progress):
    import time

    while True:  # a search that never ends by itself: only the close stops it
        progress(1, 2)
        time.sleep(0.001)


def test_a_failed_background_search_is_said_in_the_status(monkeypatch):
    monkeypatch.setattr(projector_widget, "NEIGHBOURS_NOW", 10)

    def fail(vectors, k, progress):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(projector_widget, "neighbours", fail)
    x, y = data()
    emb = nbviz.Embeddings(cnn(), x, y)
    emb._searches.submit(lambda: None).result()
    assert "could not be found (RuntimeError: out of memory)" in emb.status
    assert (state(emb)["neighbours"][0] == -1).all()
    emb.close()
