"""Where the model looked in a confusion matrix's examples: the maps the view gets are
`nbviz.cam.compute`'s, computed when the kernel is free, bounded, and leave the model as
it was; a followed run computes a clicked cell's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from run_helpers import wait_for

import nbviz
from nbviz._widget import array_from_json
from nbviz.cam.core import compute, quantise
from nbviz.confusion.explain import INPUT_BUDGET, ExampleMaps
from nbviz.examples import SmallCNN, train

K = 6


@pytest.fixture(scope="module")
def data():
    return nbviz.datasets.shapes(96, size=32, seed=3)


@pytest.fixture(scope="module")
def model(data):
    """Partly trained: its maps carry signal (an untrained model's are float noise, which
    rounds differently between a batch and one image), and it still errs."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=K, width=4)
    train(model, data.images, data.labels, epochs=4)
    return model.eval()


def fed(cm, data, model, masks=True):
    with torch.no_grad():
        out = model(data.images)
    cm.update(out, data.labels, data.images, masks=data.masks if masks else None)
    cm.flush()
    return out.argmax(1)


def shown_maps(cm) -> dict[int, list[np.ndarray]]:
    """Example id -> per layer (2, h, w) uint8, read from the widget's synced state."""
    state = cm.get_state()
    ids = array_from_json(state["cam_ids"]).tolist()
    flat = array_from_json(state["cam_maps"])
    out = {i: [] for i in ids}
    for entry in state["cam_index"]:
        h, w = entry["h"], entry["w"]
        block = flat[entry["offset"] : entry["offset"] + len(ids) * 2 * h * w]
        for e, i in enumerate(ids):
            out[i].append(block.reshape(len(ids), 2, h, w)[e])
    return out


def test_the_maps_shown_are_cam_compute_for_the_true_and_the_predicted_class(data, model):
    cm = nbviz.ConfusionMatrix(data.classes, model=model)
    predicted = fed(cm, data, model)
    assert cm.cam_status == "end of cell"
    ids = array_from_json(cm.get_state()["cam_ids"])
    assert ids is None or ids.size == 0  # nothing before the kernel is free
    assert cm.explain() == len(cm.examples_ids) > 0
    assert cm.explain() == 0  # each example once
    cm.flush()
    shown = shown_maps(cm)
    assert sorted(shown) == sorted(cm.examples_ids.tolist())
    # every example against its own single-image computation
    kept = {i: (c, x) for i, c, x, _ in cm._examples.inputs()}
    wrong = 0
    for i, layers in shown.items():
        c, x = kept[i]
        true, pred = divmod(c, K)
        n = next(k for k in range(len(data.images)) if torch.equal(data.images[k], x))
        assert (true, pred) == (int(data.labels[n]), int(predicted[n]))
        res = compute(model, x[None], targets=torch.tensor([[true, pred]]))
        for li, layer in enumerate(res.layers):
            expected = quantise(res.raw(layer, None))[0]
            # batched and single-image forwards may round differently in the last bit
            diff = np.abs(layers[li].astype(int) - expected.astype(int)).max()
            assert diff <= 1, (layer, diff)
        wrong += true != pred
    assert wrong > 0  # the untrained model errs: both columns were tested
    probs = array_from_json(cm.get_state()["cam_probs"])
    assert probs.shape == (len(shown), 2) and np.all((probs >= 0) & (probs <= 1))
    masks = array_from_json(cm.get_state()["cam_masks"])
    images = array_from_json(cm.get_state()["cam_images"])
    assert masks.shape == (len(shown), 32, 32) and images.shape == (len(shown), 32, 32, 3)


def test_maps_are_computed_when_the_cell_ends(data, model, monkeypatch, ipython):
    cm = nbviz.ConfusionMatrix(data.classes, model=model)
    calls = []
    real = ExampleMaps.compute
    monkeypatch.setattr(
        ExampleMaps, "compute", lambda self, *a: (calls.append(len(a[0])), real(self, *a))[1]
    )
    fed(cm, data, model)
    assert calls == []  # never inside the training cell
    ipython.end_cell()
    assert sum(calls) == len(cm.examples_ids)
    assert len(calls) <= 2  # the correct examples in one pass, the wrong in another
    assert sorted(shown_maps(cm)) == sorted(cm.examples_ids.tolist())
    cm.close()


def test_one_backward_per_target_per_batch(data, model, monkeypatch):
    """Correct examples cost one backward per batch of 32, wrong ones two."""
    grads = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: (grads.append(1), real(*a, **k))[1])
    forwards = []
    handle = model.register_forward_pre_hook(lambda *a: forwards.append(1))
    try:
        cm = nbviz.ConfusionMatrix(data.classes, model=model)
        predicted = fed(cm, data, model)
        forwards.clear()
        cells = cm.examples_cells
        correct = int(np.sum(cells // K == cells % K))
        cm.explain()
    finally:
        handle.remove()
    batches = -(-correct // 32), -(-(len(cells) - correct) // 32)
    assert len(forwards) == sum(batches)
    assert len(grads) == batches[0] + 2 * batches[1]
    assert predicted.numel() == len(data.labels)


def test_the_model_is_left_as_it_was(data):
    torch.manual_seed(1)
    model = SmallCNN(num_classes=K, width=4).train()
    model.features.block1.conv.weight.requires_grad_(False)
    cm = nbviz.ConfusionMatrix(data.classes, model=model)
    fed(cm, data, model)  # (a forward in train mode: batch norm's statistics move)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cm.explain()
    assert model.training and all(m.training for m in model.modules())
    assert not model.features.block1.conv.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_examples_that_leave_the_sample_drop_their_maps_and_memory_is_bounded(data, model):
    cm = nbviz.ConfusionMatrix(data.classes, model=model, examples_per_cell=2)
    fed(cm, data, model)
    cm.explain()
    first = set(cm.examples_ids.tolist())
    cm.end_epoch()
    fed(cm, data, model)  # a new epoch: a new sample
    cm.explain()
    cm.flush()
    assert not first & set(cm.examples_ids.tolist())
    assert set(cm._maps.maps) == set(cm.examples_ids.tolist())
    # large inputs: fewer kept, within the budget
    big = nbviz.ConfusionMatrix(num_classes=2, keep_inputs=True, max_examples=4096)
    x = torch.zeros(8, 3, 512, 512)
    big.update(torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long), x)
    per_input = x[0].numel() * 4
    assert big._examples.max_total == INPUT_BUDGET // per_input
    assert len(big._examples) <= big._examples.max_total


def test_bad_input_is_said(data, model):
    with pytest.raises(
        ValueError, match="layers must be module paths|no submodule|not a submodule|nope"
    ):
        nbviz.ConfusionMatrix(data.classes, model=model, cam_layers=["nope"])
    with pytest.raises(ValueError, match="method must be one of"):
        nbviz.ConfusionMatrix(data.classes, model=model, cam_method="grad")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        nbviz.ConfusionMatrix(data.classes, model="resnet")
    cm = nbviz.ConfusionMatrix(data.classes)
    with pytest.raises(ValueError, match="explain\\(\\) needs the model"):
        cm.explain()
    with pytest.raises(ValueError, match="pass inputs= with them"):
        cm.update(torch.zeros(4, K), torch.zeros(4, dtype=torch.long), masks=data.masks[:4])
    with pytest.raises(ValueError, match="masks must have shape"):
        cm.update(
            torch.zeros(4, K), torch.zeros(4, dtype=torch.long), data.images[:4], data.masks[:3]
        )
    assert cm.matrix.sum() == 0  # nothing counted


def test_a_followed_run_computes_a_clicked_cells_maps(tmp_path, data, model):
    script = nbviz.ConfusionMatrix(data.classes, logdir=tmp_path, keep_inputs=True, log_every=0.001)
    fed(script, data, model)
    script.end_epoch()  # the epoch's examples are recorded with their inputs
    script.close_log()
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        wait_for(
            lambda: (
                view.confusion is not None
                and view.confusion.examples_ids is not None
                and len(view.confusion.examples_ids)
            ),
            "examples",
        )
        cm = view.confusion
        assert cm.cam_status == ""
        cm.explain(model, layers=["features.block3", "features.block4"])
        assert cm.cam_status == "on click"
        cm._maps.maps.clear()  # as if the maps were never computed: a click asks for them
        cell = int(cm.examples_cells[0])
        cm._on_message(cm, {"explain": cell}, [])
        in_cell = {
            i
            for i, c in zip(cm.examples_ids.tolist(), cm.examples_cells.tolist(), strict=True)
            if c == cell
        }
        assert set(cm._maps.maps) == in_cell
        shown = shown_maps(cm)
        assert set(shown) == in_cell
        # the same maps as the script's own matrix would show for those examples
        script.explain(model, layers=["features.block3", "features.block4"])
        script.flush()
        theirs = shown_maps(script)
        mine = sorted(shown.values(), key=lambda m: m[0].tobytes())
        ref = sorted(
            (
                m
                for i, m in theirs.items()
                if i in set(script.examples_ids[script.examples_cells == cell].tolist())
            ),
            key=lambda m: m[0].tobytes(),
        )
        for a, b in zip(mine, ref, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
        cm._on_message(cm, {"explain": "bad"}, [])  # ignored, not raised
    finally:
        view.close()


def test_a_run_without_inputs_says_so(tmp_path, data, model):
    script = nbviz.ConfusionMatrix(data.classes, logdir=tmp_path, log_every=0.001)
    fed(script, data, model, masks=False)
    script.end_epoch()
    script.close_log()
    view = nbviz.follow(tmp_path, interval=0.01)
    try:
        wait_for(
            lambda: (
                view.confusion is not None
                and view.confusion.examples_ids is not None
                and len(view.confusion.examples_ids)
            ),
            "examples",
        )
        view.confusion.explain(model)
        view.confusion.flush()
        assert view.confusion.cam_status == "no inputs"
    finally:
        view.close()


def test_a_failure_at_the_cells_end_is_said_and_the_kernel_goes_on(data, model, ipython):
    grey = SmallCNN(num_classes=K, in_channels=1, width=4)  # takes 1 channel, gets 3
    cm = nbviz.ConfusionMatrix(data.classes, model=grey)
    with torch.no_grad():
        out = model(data.images)
    cm.update(out, data.labels, data.images)
    with pytest.warns(RuntimeWarning, match="the maps could not be computed"):
        ipython.end_cell()  # the cell's end: no exception escapes into IPython
    assert cm.cam_status == "error" and "could not be computed" in cm.cam_error
    ipython.end_cell()  # not retried (nor warned) at every later cell
    with pytest.raises(ValueError, match="images must have 1 channel for this model"):
        cm.explain()  # asked for: the error itself, which says what was expected
    cm.explain(model)  # a model that fits: maps again, the error gone
    assert cm.cam_status == "end of cell" and cm.cam_error == ""
    cm.close()


def test_maps_travel_only_when_the_examples_with_maps_change(data, model, monkeypatch):
    """New thumbnails during training must not send every map again (megabytes)."""
    cm = nbviz.ConfusionMatrix(
        data.classes, model=model, examples_interval=0, examples_per_cell=500
    )
    fed(cm, data, model)
    cm.explain()
    sent = []
    monkeypatch.setattr(cm, "_send", lambda msg, buffers=None: sent.append(msg["state"]))
    with torch.no_grad():
        out = model(data.images)
    cm.update(out, data.labels, data.images)  # the same epoch: all enter (no cell is full)
    cm.flush()
    assert len(cm.examples_ids) == 2 * len(data.labels)
    assert any("examples_ids" in s for s in sent)  # the new thumbnails went
    assert not any("cam_maps" in s for s in sent)  # the maps, unchanged, did not
    cm.explain()  # the new examples' maps: now they go
    assert any("cam_maps" in s for s in sent)
    cm.end_epoch()
    sent.clear()
    cm.update(out, data.labels, data.images)  # a new epoch: every example with maps left
    cm.flush()
    assert any("cam_maps" in s for s in sent)  # the view drops their maps
    assert array_from_json(cm.get_state()["cam_ids"]).size == 0
