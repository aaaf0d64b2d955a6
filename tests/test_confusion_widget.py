"""ConfusionMatrix through its synced state, message counts and epoch semantics."""

import numpy as np
import pytest
import torch

import nbviz
from nbviz import _widget
from nbviz._widget import array_from_json
from tests.models import hf_vit


def sent_messages(widget, monkeypatch):
    """Record every state message the widget sends to the frontend."""
    sent = []
    monkeypatch.setattr(widget, "_send", lambda msg, buffers=None: sent.append((msg, buffers)))
    return sent


def drawn_matrix(cm):
    """The live matrix as the browser would rebuild it from the synced state."""
    state = cm.get_state()
    K = len(state["classes"])
    m = np.zeros(K * K, np.int64)
    idx, val = array_from_json(state["counts_index"]), array_from_json(state["counts_value"])
    np.add.at(m, idx, val)
    return m.reshape(K, K)


def batch(K=3, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, K, generator=g), torch.randint(0, K, (n,), generator=g)


def test_state_round_trip_equals_matrix():
    cm = nbviz.ConfusionMatrix(classes=["cat", "dog", "bird"], max_rate=None)
    for s in range(5):
        cm.update(*batch(seed=s))
    np.testing.assert_array_equal(drawn_matrix(cm), cm.matrix)
    assert cm.matrix.dtype == np.int64 and cm.matrix.sum() == 160
    state = cm.get_state()
    assert state["counts_index"]["dtype"] == "int32"  # int64 narrowed for the wire
    assert isinstance(state["counts_index"]["buffer"], memoryview)


def test_classes_or_num_classes():
    assert nbviz.ConfusionMatrix(num_classes=4).classes == ["0", "1", "2", "3"]
    assert nbviz.ConfusionMatrix(classes=("a", "b")).num_classes == 2
    with pytest.raises(ValueError, match="classes=.*num_classes"):
        nbviz.ConfusionMatrix()
    with pytest.raises(ValueError, match="num_classes=3 but 2 class names"):
        nbviz.ConfusionMatrix(classes=["a", "b"], num_classes=3)
    with pytest.raises(TypeError, match="sequence of class names"):
        nbviz.ConfusionMatrix(classes="abc")
    with pytest.raises(TypeError, match=r"got the int 10; .*pass num_classes=10$"):
        nbviz.ConfusionMatrix(classes=10)
    with pytest.raises(TypeError, match=r"pass num_classes=4$"):
        nbviz.ConfusionMatrix(np.int64(4))
    with pytest.raises(ValueError, match="num_classes=3 but 1 class name was given"):
        nbviz.ConfusionMatrix(classes=["a"], num_classes=3)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        nbviz.ConfusionMatrix(num_classes=3, normalise="true")
    with pytest.raises(ValueError, match="normalize must be one of"):
        nbviz.ConfusionMatrix(num_classes=3, normalize="rows")


def test_class_names_are_kept_verbatim():
    evil = "<img src=x onerror=alert(1)>"
    cm = nbviz.ConfusionMatrix(classes=[evil, "b&amp;"])
    assert cm.get_state()["classes"] == [evil, "b&amp;"]


def test_epochs_history_and_matrix_after_end_epoch():
    cm = nbviz.ConfusionMatrix(num_classes=3, max_rate=None)
    cm.update(*batch(seed=1))
    first = cm.matrix
    assert cm.get_state()["epoch_open"] is True
    closed = cm.end_epoch()
    np.testing.assert_array_equal(closed, first)
    np.testing.assert_array_equal(cm.matrix, first)  # still shown until the next update
    assert cm.get_state()["epoch_open"] is False
    cm.end_epoch()  # no updates since: nothing new
    assert len(cm.history) == 1
    cm.update(*batch(seed=2))
    assert cm.matrix.sum() == 32 and cm.get_state()["epoch"] == 2
    cm.end_epoch()
    assert [h.sum() for h in cm.history] == [32, 32]
    offsets = array_from_json(cm.get_state()["history_offsets"])
    assert list(offsets[[0, -1]]) == [0, len(array_from_json(cm.get_state()["history_index"]))]
    cm.reset()
    assert cm.matrix.sum() == 0 and cm.history == []


def test_accuracy_and_per_class():
    cm = nbviz.ConfusionMatrix(num_classes=2)
    cm.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1]))
    assert cm.accuracy == pytest.approx(0.75)
    pc = cm.per_class()
    np.testing.assert_allclose(pc["precision"], [1.0, 2 / 3])
    np.testing.assert_allclose(pc["recall"], [0.5, 1.0])
    np.testing.assert_array_equal(pc["support"], [2, 2])


@pytest.mark.parametrize(
    "outputs,targets,inputs,match",
    [
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), None, "got 3"),
        (torch.randn(4, 3), torch.tensor([0.0, 1, 2, 1]), None, "integer"),
        (torch.randn(4, 4), torch.tensor([0, 1, 2, 1]), None, "K = 3"),
        (torch.randn(4, 3), torch.tensor([0, 1, 2]), None, "4 outputs and 3 targets"),
        (torch.tensor([0, 1, 2, 1]), torch.randn(4, 3), None, "look swapped"),
        (torch.full((4, 3), float("nan")), torch.tensor([0, 1, 2, 1]), None, "NaN"),
        (
            torch.randn(4, 3),
            torch.tensor([0, 1, 2, 1]),
            torch.rand(3, 3, 8, 8),
            "expected 4 images",
        ),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), torch.rand(4, 8), r"\(N, C, H, W\)"),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), torch.rand(4, 3, 9, 9), "image shape"),
    ],
)
def test_bad_input_changes_nothing(outputs, targets, inputs, match):
    cm = nbviz.ConfusionMatrix(num_classes=3, max_rate=None)
    x, y = batch()
    cm.update(x, y, inputs=torch.rand(32, 3, 8, 8))
    cm.end_epoch()  # the next good update would start a new epoch: a bad one must not
    before_matrix, before_state = cm.matrix, cm.get_state()
    with pytest.raises(ValueError, match=match):
        cm.update(outputs, targets, inputs=inputs)
    np.testing.assert_array_equal(cm.matrix, before_matrix)
    assert len(cm._examples) > 0 and len(cm.history) == 1
    assert cm.get_state()["epoch_open"] == before_state["epoch_open"]


def test_empty_batch_is_not_an_error(monkeypatch):
    cm = nbviz.ConfusionMatrix(num_classes=3)
    sent = sent_messages(cm, monkeypatch)
    cm.update(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert cm.matrix.sum() == 0 and sent == []


def test_examples_are_sampled_per_cell():
    cm = nbviz.ConfusionMatrix(num_classes=2, examples_per_cell=3, max_rate=None)
    x = torch.rand(10, 3, 16, 16)
    cm.update(torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long), inputs=x)
    assert cm.examples(1, 0).shape == (3, 16, 16, 3)
    assert cm.examples(0, 1).shape[0] == 0
    state = cm.get_state()
    cells = array_from_json(state["examples_cells"])
    assert list(cells) == [2, 2, 2]  # true 1 * K + predicted 0
    with pytest.raises(ValueError, match="class indices"):
        cm.examples(2, 0)


def test_pushes_are_throttled_and_flushed(monkeypatch, clock):
    cm = nbviz.ConfusionMatrix(num_classes=3, max_rate=10, examples_interval=2.0)
    sent = sent_messages(cm, monkeypatch)
    x, y = batch()
    for step in range(100):  # 100 batches within 1 s of fake time
        clock.now = step * 0.01
        cm.update(x, y, inputs=torch.rand(32, 3, 8, 8))
    assert 9 <= len(sent) <= 11, len(sent)  # ~10 refreshes a second
    for msg, _ in sent:  # one message per refresh, state in binary buffers
        assert msg["method"] == "update"
    with_examples = [m for m, _ in sent if "examples_images" in m["state"]]
    assert len(with_examples) == 1  # examples at most every 2 s
    n = len(sent)
    cm.flush()  # what the end of the cell does
    assert len(sent) == n + 1
    assert "examples_images" in sent[-1][0]["state"]
    np.testing.assert_array_equal(drawn_matrix(cm), cm.matrix)
    cm.flush()  # nothing pending, nothing sent
    assert len(sent) == n + 1
    cm.end_epoch()  # always pushed
    assert len(sent) == n + 2 and "history_index" in sent[-1][0]["state"]


def test_examples_are_pushed_only_when_one_entered(monkeypatch, clock):
    cm = nbviz.ConfusionMatrix(num_classes=3, examples_per_cell=2, examples_interval=0)
    sent = sent_messages(cm, monkeypatch)
    x, y = batch()
    cm.update(x, y, inputs=torch.rand(32, 3, 8, 8))  # the first samples of their cells enter
    cm.flush()
    assert "examples_images" in sent[-1][0]["state"]
    for cell in cm._examples.seen:  # cells whose next entry is a billion samples away
        cm._examples.next_entry[cell] = 10**9
    clock.now += 10.0
    cm.update(x, y, inputs=torch.rand(32, 3, 8, 8))
    cm.flush()
    assert "counts_value" in sent[-1][0]["state"]
    assert "examples_images" not in sent[-1][0]["state"]  # the same ~1.8 MB are not resent
    cm.end_epoch()
    cm.update(x, y)  # a new epoch without images: its view drops the old examples
    cm.flush()
    assert "examples_images" in sent[-1][0]["state"]
    assert array_from_json(cm.get_state()["examples_images"]).shape[0] == 0


def test_post_execute_hook_flushes_and_close_unhooks(monkeypatch, clock, ipython):
    cm = nbviz.ConfusionMatrix(num_classes=3)
    assert len(ipython.hooks) == 1
    sent = sent_messages(cm, monkeypatch)
    assert cm.comm is not None  # a comm exists, as for a displayed widget
    x, y = batch()
    clock.now = 1.0
    cm.update(x, y)
    cm.update(x, y)  # throttled: same instant
    assert len(sent) == 1
    ipython.end_cell()
    assert len(sent) == 2
    np.testing.assert_array_equal(drawn_matrix(cm), cm.matrix)
    monkeypatch.undo()
    cm.close()
    assert ipython.hooks == []


def test_missing_bundle_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setattr(_widget, "STATIC", tmp_path)
    with pytest.raises(_widget.BundleMissingError, match="make js"):
        nbviz.ConfusionMatrix(num_classes=3)
    with pytest.warns(UserWarning, match="bundles are missing"):
        _widget.warn_if_bundles_missing(["confusion"])


def test_codec_narrows_and_round_trips():
    for arr, dtype in [
        (np.arange(5, dtype=np.int64), "int32"),
        (np.linspace(0, 1, 4), "float32"),
        (np.array([True, False]), "uint8"),
        (np.zeros((2, 3, 4), np.uint8), "uint8"),
        (np.array([2**40], np.int64), "float64"),
    ]:
        wire = _widget.array_to_json(arr)
        assert wire["dtype"] == dtype and wire["shape"] == list(arr.shape)
        np.testing.assert_allclose(_widget.array_from_json(wire), arr)
    assert _widget.array_to_json(None) is None


def test_update_takes_what_models_return_and_output_chooses():
    pytest.importorskip("transformers")
    model = hf_vit(num_labels=3).eval()
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        out = model(pixel_values=x)
    cm = nbviz.ConfusionMatrix(num_classes=3)
    cm.update(out, y)  # an ImageClassifierOutput: its logits
    want = nbviz.ConfusionMatrix(num_classes=3)
    want.update(out.logits, y)
    np.testing.assert_array_equal(cm.matrix, want.matrix)
    # Two candidates: output= chooses, and the error says how when it is missing.
    pair = (out.logits.softmax(1), out.logits)
    with pytest.raises(ValueError, match=r"which part holds the class scores\? pass output="):
        cm.update(pair, y)
    assert cm.matrix.sum() == 6  # nothing counted by the refused batch
    chosen = nbviz.ConfusionMatrix(num_classes=3, output=1)
    chosen.update(pair, y)
    np.testing.assert_array_equal(chosen.matrix, want.matrix)
    with pytest.raises(TypeError, match="output must be a key or attribute name"):
        nbviz.ConfusionMatrix(num_classes=3, output=2.5)
    # A list of numbers is no structure: refused as before, by the array check.
    with pytest.raises(TypeError, match="outputs must be a torch.Tensor or numpy.ndarray"):
        cm.update([0, 1, 2], y[:3])
