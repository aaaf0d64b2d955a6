"""GradCAM through its synced state: every map once, as uint8 at its layer's size."""

import json

import numpy as np
import pytest
import torch

import nbviz
from nbviz._widget import array_to_json
from nbviz.examples import SmallCNN

N = 6


@pytest.fixture(scope="module")
def data():
    return nbviz.datasets.shapes(N, size=32, seed=1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SmallCNN(num_classes=6, width=8, depth=3)


def block(w, entry) -> np.ndarray:
    """One layer's (N, T, h, w) maps out of the flat buffer, as the browser reads them."""
    n, t = w.targets.shape
    size = n * t * entry["h"] * entry["w"]
    return w.maps[entry["offset"] : entry["offset"] + size].reshape(n, t, entry["h"], entry["w"])


def test_state_holds_every_map_of_every_method(data, model):
    w = nbviz.GradCAM(
        model, data.images, labels=data.labels, masks=data.masks, classes=data.classes, topk=2
    )
    state = w.get_state()
    assert state["classes"] == list(data.classes) and state["methods"] == [
        "gradcam",
        "gradcam++",
        "layercam",
        "saliency",
    ]
    assert w.images.shape == (N, 32, 32, 3) and w.images.dtype == np.uint8
    assert w.masks.shape == (N, 32, 32) and set(np.unique(w.masks)) <= {0, 1}
    # Columns: the top-2 predictions, then the true class.
    assert w.targets.shape == (N, 3) and (w.targets[:, 2] == data.labels.numpy()).all()
    res = {r.method: r for r in w.results}
    gc = res["gradcam"]
    assert (w.targets == gc.targets.numpy()).all()
    assert np.allclose(w.probs, gc.probs.gather(1, gc.targets).numpy())
    assert gc.targets[:, 0].tolist() == gc.probs.argmax(1).tolist()
    index = state["maps_index"]
    assert [e["layer"] for e in index if e["method"] == "gradcam"] == gc.layers
    assert [e["layer"] for e in index if e["method"] == "saliency"] == ["input"]
    total = sum(N * 3 * e["h"] * e["w"] for e in index)
    assert w.maps.dtype == np.uint8 and w.maps.size == total
    for e in index:
        raw = res[e["method"]].raw(e["layer"], None)
        assert (e["h"], e["w"]) == tuple(raw.shape[2:])  # the layer's own resolution
        peak = raw.flatten(2).amax(2).clamp_min(1e-30)[:, :, None, None]
        expected = (raw / peak * 255).round().numpy()
        assert np.abs(block(w, e).astype(int) - expected).max() <= 1
        # agreement: [target][image] -> [pointing, energy, iou], equal to the core's
        assert len(e["agreement"]) == 3 and len(e["agreement"][0]) == N
        a = nbviz.cam.agreement(res[e["method"]], data.masks, target=2)
        i = res[e["method"]].layers.index(e["layer"])
        assert [row[1] for row in e["agreement"][2]] == pytest.approx(a.energy[i], abs=1e-4)
    json.dumps(index)  # what the comm sends besides the buffers
    assert array_to_json(w.maps)["dtype"] == "uint8"


def test_without_labels_and_masks(data, model):
    w = nbviz.GradCAM(model, data.images, methods=["layercam"], topk=10)
    assert w.targets.shape == (N, 6)  # topk capped at the number of classes
    assert w.labels is None and w.masks is None
    assert all(e["agreement"] is None for e in w.maps_index)
    assert w.classes == [str(i) for i in range(6)]


def test_refresh_follows_the_weights_in_one_message(data, model, monkeypatch):
    w = nbviz.GradCAM(model, data.images, methods="gradcam")
    before = w.maps.copy()
    sent = []
    monkeypatch.setattr(w, "send_state", lambda key=None: sent.append(key))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    w.refresh()
    assert not np.array_equal(before, w.maps)
    assert len(sent) == 1  # maps, index, targets and probs together


def test_bad_arguments_fail_before_anything_runs(data, model):
    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append(1))
    bad = [
        (dict(methods=["gradcam", "nope"]), "methods must be"),
        (dict(methods=[]), "methods must be"),
        (dict(colormap="jet"), "colormap must be one of"),
        (dict(opacity=2), "opacity must be"),
        (dict(topk=0), "topk must be an int"),
        (dict(labels=data.labels[:2]), "one class index per image"),
        (dict(labels=data.labels.float()), "one class index per image"),
        (dict(masks=data.masks[:, :16]), r"masks must have shape \(6, 32, 32\)"),
        (dict(layers=["features.nope"]), "does not exist"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            nbviz.GradCAM(model, data.images, **kwargs)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        nbviz.GradCAM(model, data.images[0])
    with pytest.raises(ValueError, match="3 channels"):
        nbviz.GradCAM(model, data.images[:, :1])
    assert calls == []
    # Found only once the model has run: its class count.
    with pytest.raises(ValueError, match="classes must name the model's 6 classes"):
        nbviz.GradCAM(model, data.images, classes=["a", "b"])
    with pytest.raises(TypeError, match="positional"):  # all but the model and images by name
        nbviz.GradCAM(model, data.images, data.labels)
    for wrong in ("yes", 1, None):
        with pytest.raises(TypeError, match=f"faithfulness must be True or False, got {wrong!r}"):
            nbviz.GradCAM(model, data.images, faithfulness=wrong)
    labels = data.labels.clone()
    labels[0] = 9
    with pytest.raises(ValueError, match=r"labels must be classes in \[0, 5\]"):
        nbviz.GradCAM(model, data.images, labels=labels)
    assert not any(m._forward_hooks for m in model.modules())


def test_large_images_are_shrunk_for_display(model):
    images = torch.rand(2, 3, 300, 300)
    masks = torch.zeros(2, 300, 300, dtype=torch.bool)
    masks[:, 100:200, 100:200] = True
    w = nbviz.GradCAM(model, images, masks=masks, methods="gradcam", topk=1)
    assert w.images.shape == (2, 150, 150, 3) and w.masks.shape == (2, 150, 150)
    assert w.masks[:, 50:100, 50:100].all() and not w.masks[:, :49].any()


def test_hugging_face_vit_with_rollout():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3,
                    num_attention_heads=4, intermediate_size=64, num_labels=4)  # fmt: skip
    model = ViTForImageClassification(cfg).eval()
    x = torch.rand(3, 3, 32, 32)
    w = nbviz.GradCAM(model, {"pixel_values": x}, methods=["gradcam", "rollout"], topk=2,
                      labels=[0, 1, 2])  # fmt: skip
    assert w.kind == "image" and w.images.shape == (3, 32, 32, 3) and w.signals is None
    index = w.get_state()["maps_index"]
    layers = ["vit.layers.0", "vit.layers.1", "vit.layers.2"]
    assert [e["layer"] for e in index] == layers * 2
    assert all((e["d"], e["h"], e["w"]) == (1, 4, 4) for e in index)
    # The last block: the head reads only the class token after it, and the index says so.
    assert [e["no_gradient"] for e in index] == [False, False, True, False, False, False]
    assert w.targets.shape == (3, 3)
    roll = w.results[1]
    for e in index[3:]:
        expected = roll.raw(e["layer"], None)
        peak = expected.flatten(2).amax(2)[:, :, None, None]
        assert np.abs(block(w, e).astype(int) - (expected / peak * 255).round().numpy()).max() <= 1


def test_signals_and_volumes():
    from tests.test_cam_inputs import Signal, Volume

    signal = nbviz.GradCAM(Signal().eval(), torch.randn(4, 2, 3000), labels=[0, 1, 2, 3], topk=2)
    assert signal.kind == "signal" and signal.images is None
    assert signal.signals.shape == (4, 2, 1500) and signal.signals.dtype == np.float32
    e = signal.maps_index[0]
    assert (e["d"], e["h"], e["w"]) == (1, 1, 3000) and e["layer"] == "features.0.0"
    assert [x["layer"] for x in signal.maps_index if x["method"] == "saliency"] == ["input"]
    volume = nbviz.GradCAM(Volume().eval(), torch.rand(2, 1, 6, 12, 10) * 4 - 2, methods="gradcam")
    assert volume.kind == "volume" and volume.images.shape == (2, 6, 12, 10, 3)
    assert [(x["d"], x["h"], x["w"]) for x in volume.maps_index] == [
        (6, 12, 10), (6, 12, 10), (3, 6, 5), (3, 6, 5)
    ]  # fmt: skip
    for x in volume.maps_index:
        raw = volume.results[0].raw(x["layer"], None)
        peak = raw.flatten(2).amax(2)[:, :, None, None, None].clamp_min(1e-30)
        got = block5(volume, x)
        assert np.abs(got.astype(int) - (raw / peak * 255).round().numpy()).max() <= 1
    # One contrast per volume: its darkest voxel is black and its brightest white.
    assert volume.images[0].min() == 0 and volume.images[0].max() == 255
    with pytest.raises(ValueError, match=r"masks are for images \(N, H, W\); these inputs are "
                       r"signals of shape \(4, 2, 3000\)"):  # fmt: skip
        nbviz.GradCAM(Signal(), torch.randn(4, 2, 3000), masks=np.ones((4, 3000)))
    with pytest.raises(ValueError, match=r"faithfulness=True perturbs images \(N, C, H, W\); "
                       r"these inputs are volumes"):  # fmt: skip
        nbviz.GradCAM(Volume(), torch.rand(2, 1, 6, 12, 10), faithfulness=True)


def block5(w, entry) -> np.ndarray:
    n, t = w.targets.shape
    size = n * t * entry["d"] * entry["h"] * entry["w"]
    flat = w.maps[entry["offset"] : entry["offset"] + size]
    return flat.reshape(n, t, entry["d"], entry["h"], entry["w"])


def test_ambiguous_outputs_are_refused_before_the_view():
    from tests.test_cam_inputs import WRAPS, Wrapped

    model = Wrapped(WRAPS["tuple"])
    with pytest.raises(ValueError, match=r"which part holds the class scores\? pass output="):
        nbviz.GradCAM(model, torch.rand(2, 3, 16, 16))
    w = nbviz.GradCAM(model, torch.rand(2, 3, 16, 16), output=0, methods="gradcam")
    assert w.targets.shape == (2, 3)
    assert not any(m._forward_hooks for m in model.modules())


def test_keyword_inputs_reach_every_forward():
    from tests.test_cam_inputs import Keywords

    model, x = Keywords(), torch.rand(5, 3, 16, 16)
    mask = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.25])
    seen = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(tuple(kwargs["mask"].shape)), with_kwargs=True
    )
    w = nbviz.GradCAM(model, x, forward_kwargs={"mask": mask}, batch_size=2, methods="gradcam")
    assert seen and set(seen) == {(2,), (1,)}  # split with the images, batch by batch
    direct = nbviz.cam.compute(model.body, x * mask[:, None, None, None], targets=w.targets)
    for e in w.maps_index:
        expected = direct.raw(e["layer"].removeprefix("body."), None)
        peak = expected.flatten(2).amax(2)[:, :, None, None].clamp_min(1e-30)
        assert np.abs(block(w, e).astype(int) - (expected / peak * 255).round().numpy()).max() <= 1


# --- faithfulness=True: deletion / insertion AUCs and the randomised-model similarity -----------

FAITH = slice(3, 6)  # deletion AUC, insertion AUC, randomised similarity in each image's entry


def faithful_widget(data, model, **kwargs):
    return nbviz.GradCAM(model, data.images, labels=data.labels, methods=["gradcam", "saliency"],
                         topk=1, batch_size=7, faithfulness=True, **kwargs)  # fmt: skip


def test_faithfulness_numbers_are_the_cores_aucs(data, model):
    w = faithful_widget(data, model, masks=data.masks)
    index = w.get_state()["maps_index"]
    rows = [(e["method"], e["layer"]) for e in index]
    assert rows == [(r.method, layer) for r in w.results for layer in r.layers]
    assert w.targets.shape == (N, 2)  # the top prediction, then the true class
    checked = 0
    for t in range(2):
        f = nbviz.cam.faithfulness(model, data.images, w.results, target=t, steps=10,
                                   batch_size=7)  # fmt: skip
        assert list(zip(f.methods, f.layers, strict=True)) == rows
        for r, e in enumerate(index):
            sent = np.array([scores[3:5] for scores in e["agreement"][t]], dtype=float)
            # An empty (constant) map ranks no pixel: no AUC is sent for it.
            raw = w.results[0 if e["method"] == "gradcam" else 1].raw(e["layer"], t).flatten(1)
            empty = (raw.amax(1) == raw.amin(1)).numpy()
            assert (np.isnan(sent) == empty[:, None]).all()
            np.testing.assert_allclose(sent[~empty, 0], f.deletion_auc[r][~empty], atol=5e-5)
            np.testing.assert_allclose(sent[~empty, 1], f.insertion_auc[r][~empty], atol=5e-5)
            checked += (~empty).sum()
    assert checked > 0.8 * len(index) * 2 * N  # most maps hold something
    assert w.faithfulness_settings == {
        "baseline": f.baseline,  # the core's default: a blur
        "steps": 10,
        "score": "softmax probability of the explained class",
        "seed": 0,
    }
    assert f.baseline.startswith("blur (Gaussian, sigma 5 px")
    # The masks' scores are still there, in the first three places.
    a = nbviz.cam.agreement(w.results[0], data.masks, target=1)
    got = [row[1] for row in index[0]["agreement"][1]]
    assert got == pytest.approx(a.energy[0], abs=1e-4)
    assert all(len(row) == 6 for e in index for col in e["agreement"] for row in col)
    json.dumps(w.get_state()["maps_index"])  # NaN never travels: null instead


def test_randomised_similarity_is_the_last_step_of_the_randomisation_check(data, model):
    w = faithful_widget(data, model)  # no masks: the first three are null
    index = w.maps_index
    assert all(row[:3] == [None] * 3 for e in index for col in e["agreement"] for row in col)
    for e in (index[2], index[-1]):  # a layer of Grad-CAM's, and saliency's input
        for t in range(2):
            check = nbviz.cam.randomization_check(
                model, data.images, methods=e["method"], targets=w.targets[:, t],
                layer=None if e["layer"] == "input" else e["layer"],
            )  # fmt: skip
            expected = check.spearman[0, -1]  # every parametrised module re-initialised
            got = np.array([np.nan if row[5] is None else row[5] for row in e["agreement"][t]])
            np.testing.assert_allclose(got, expected, atol=2e-4)
            assert np.isfinite(got).any()
    values = [row[5] for e in index for col in e["agreement"] for row in col]
    assert all(v is None or -1 <= v <= 1 for v in values)


def snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        "rng": torch.random.get_rng_state(),
    }


def assert_same(before, after):
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k  # bit-equal weights and buffers
    for key in ("training", "requires_grad", "hooks"):
        assert before[key] == after[key], key
    for g0, g1 in zip(before["grad"], after["grad"], strict=True):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    assert torch.equal(before["rng"], after["rng"])  # the randomised copy drew elsewhere


def test_the_model_is_left_as_found(data, model):
    model.train()
    model(data.images[:4])  # moved batch-norm statistics
    model.features.block1.conv.weight.requires_grad_(False)
    model.classifier.fc.weight.grad = torch.ones_like(model.classifier.fc.weight)
    model.features.block2.eval()
    before = snapshot(model)
    w = faithful_widget(data, model)
    assert_same(before, snapshot(model))
    first = [e["agreement"] for e in w.maps_index]
    w.refresh()
    assert_same(before, snapshot(model))
    assert [e["agreement"] for e in w.maps_index] == first  # a fixed seed: the same numbers


def test_without_faithfulness_nothing_more_runs_or_travels(data, model, monkeypatch):
    from nbviz.cam import widget as module

    def refuse(*args, **kwargs):
        raise AssertionError("faithfulness=False must not compute faithfulness")

    monkeypatch.setattr(module, "measure_faithfulness", refuse)
    monkeypatch.setattr(module, "cascade_steps", refuse)
    w = nbviz.GradCAM(model, data.images, masks=data.masks, methods="gradcam", topk=1)
    assert w.faithfulness_settings is None
    rows = [row for e in w.maps_index for col in e["agreement"] for row in col]
    assert rows and all(row[FAITH] == [None] * 3 and None not in row[:3] for row in rows)
    w.refresh()
    assert w.faithfulness_settings is None
