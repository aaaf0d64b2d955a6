"""The counting core against independent references (sklearn, np.add.at)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from nbviz.confusion import ConfusionCounter, accuracy, per_class_metrics
from nbviz.confusion.core import batch_cells


def reference(pred, target, K):
    m = np.zeros((K, K), np.int64)
    np.add.at(m, (np.asarray(target), np.asarray(pred)), 1)
    return m


@pytest.mark.parametrize("K", [2, 3, 7, 10, 100, 1000])
@pytest.mark.parametrize("seed", range(8))
def test_counts_match_sklearn_over_batches(K, seed):
    g = torch.Generator().manual_seed(seed)
    counter = ConfusionCounter(K)
    preds, targets = [], []
    for n in (1, 17, 256, 3):
        logits = torch.randn(n, K, generator=g)
        y = torch.randint(0, K, (n,), generator=g)
        counter.update(logits, y)
        preds.append(logits.argmax(1).numpy())
        targets.append(y.numpy())
    p, t = np.concatenate(preds), np.concatenate(targets)
    expected = confusion_matrix(t, p, labels=np.arange(K))
    np.testing.assert_array_equal(counter.compute(), expected)
    np.testing.assert_array_equal(counter.compute(), reference(p, t, K))
    assert counter.samples == len(t)


def test_probabilities_labels_and_numpy_agree():
    K = 5
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, K, generator=g)
    y = torch.randint(0, K, (300,), generator=g)
    expected = reference(logits.argmax(1), y, K)
    for outputs, targets in [
        (logits.softmax(1), y),  # probabilities
        (logits.argmax(1), y),  # predicted labels
        (logits.numpy(), y.numpy()),  # numpy scores
        (logits.argmax(1).numpy().astype(np.int32), y.numpy().astype(np.uint8)),
        (logits.double(), y.int()),
        (logits.half(), y),  # half precision on CPU goes through torch's argmax
    ]:
        c = ConfusionCounter(K)
        c.update(outputs, targets)
        np.testing.assert_array_equal(c.compute(), expected)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    for K in (2, 6, 50):
        t = rng.integers(0, K, 500)
        p = np.where(rng.random(500) < 0.6, t, rng.integers(0, K, 500))
        m = confusion_matrix(t, p, labels=np.arange(K))
        ours = per_class_metrics(m)
        prec, rec, f1, sup = precision_recall_fscore_support(
            t, p, labels=np.arange(K), zero_division=0
        )
        np.testing.assert_allclose(ours["precision"], prec)
        np.testing.assert_allclose(ours["recall"], rec)
        np.testing.assert_allclose(ours["f1"], f1)
        np.testing.assert_array_equal(ours["support"], sup)
        assert accuracy(m) == pytest.approx((t == p).mean())
    assert np.isnan(accuracy(np.zeros((3, 3), np.int64)))


def test_sparse_view_matches_dense():
    c = ConfusionCounter(1000)
    c.update(torch.randint(0, 1000, (64,)), torch.randint(0, 1000, (64,)))
    idx, val = c.sparse()
    dense = np.zeros(1000 * 1000, np.int64)
    dense[idx] = val
    np.testing.assert_array_equal(dense.reshape(1000, 1000), c.compute())
    assert (val > 0).all() and len(idx) <= 64


BAD = [
    ("targets out of range", torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), r"\[0, 3\), got 3"),
    ("negative target", torch.randn(4, 3), torch.tensor([0, -1, 2, 1]), r"got -1"),
    (
        "float targets",
        torch.randn(4, 3),
        torch.tensor([0.0, 1.0, 2.0, 1.0]),
        "integer class indices",
    ),
    ("bool targets", torch.randn(2, 3), torch.tensor([True, False]), "integer class indices"),
    ("2-D targets", torch.randn(4, 3), torch.zeros(4, 1, dtype=torch.long), r"shape \(N,\)"),
    ("wrong K", torch.randn(4, 5), torch.tensor([0, 1, 2, 1]), "K = 3 columns"),
    ("count mismatch", torch.randn(4, 3), torch.tensor([0, 1, 2]), "4 outputs and 3 targets"),
    ("NaN", torch.tensor([[0.0, 1.0, 2.0], [float("nan"), 0.0, 0.0]]), torch.tensor([0, 1]), "NaN"),
    ("float labels", torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer predicted labels"),
    (
        "labels out of range",
        torch.tensor([0, 7]),
        torch.tensor([0, 1]),
        r"predicted labels .* got 7",
    ),
    ("3-D outputs", torch.randn(2, 3, 1), torch.tensor([0, 1]), "scores of shape"),
    (
        "swapped arguments",  # update(targets, logits)
        torch.tensor([0, 1, 2, 1]),
        torch.randn(4, 3),
        r"arguments look swapped.*update\(outputs, targets\), scores first: update\(logits, labels\)",
    ),
    (
        "swapped numpy arguments",
        np.array([0, 1], np.int64),
        np.random.default_rng(0).random((2, 3), np.float32),
        r"look swapped: outputs are integer labels of shape \(2,\) and targets are float scores",
    ),
    ("one target", torch.randn(2, 3), torch.tensor([1]), r"got 2 outputs and 1 target$"),
]


@pytest.mark.parametrize("name,outputs,targets,match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_and_counts_nothing(name, outputs, targets, match):
    c = ConfusionCounter(3)
    c.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    before = c.compute()
    with pytest.raises(ValueError, match=match):
        c.update(outputs, targets)
    np.testing.assert_array_equal(c.compute(), before)
    assert c.samples == 2


def test_type_errors_name_what_came():
    with pytest.raises(TypeError, match="list"):
        batch_cells([[0.1, 0.9]], torch.tensor([1]), 2)
    with pytest.raises(ValueError, match="at least 2"):
        ConfusionCounter(1)
    with pytest.raises(TypeError, match="int"):
        ConfusionCounter(2.5)


def test_inf_scores_are_fine_and_empty_batch_is_noop():
    c = ConfusionCounter(3)
    c.update(torch.tensor([[float("inf"), 0.0, 0.0]]), torch.tensor([0]))
    assert c.compute()[0, 0] == 1
    c.update(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert c.samples == 1


def test_counts_live_on_the_data_device():
    # The persistent matrix lives where the data lives (CPU here); CUDA is
    # checked on a GPU machine when one is available (see benchmarks/README).
    c = ConfusionCounter(4)
    c.update(torch.randn(8, 4), torch.randint(0, 4, (8,)))
    assert c._flat.device.type == "cpu" and c._flat.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_counts_match_cpu():
    K = 10
    logits, y = torch.randn(512, K), torch.randint(0, K, (512,))
    cpu, gpu = ConfusionCounter(K), ConfusionCounter(K)
    cpu.update(logits, y)
    gpu.update(logits.cuda(), y.cuda())
    assert gpu._flat.device.type == "cuda"
    np.testing.assert_array_equal(cpu.compute(), gpu.compute())


@pytest.mark.parametrize("k", [10, 1000], ids=["checked-whole", "checked-by-picks"])
def test_nan_scores_are_found_at_every_size_and_infinities_are_not_nan(k):
    """Small scores are checked whole (one max), large ones by the picked scores: both find
    a NaN anywhere, and +-inf scores (a masked class) count as scores."""
    out = torch.randn(64, k)
    out[7, 3] = float("nan")
    with pytest.raises(ValueError, match=r"outputs contain NaN \(rows \[7\]\)"):
        ConfusionCounter(k).update(out, torch.zeros(64, dtype=torch.long))
    out[7, 3], out[1, :] = float("inf"), float("-inf")
    out[1, 2] = float("inf")
    c = ConfusionCounter(k)
    c.update(out, torch.zeros(64, dtype=torch.long))
    assert c.compute()[0, 3] >= 1 and c.compute()[0, 2] >= 1 and c.compute().sum() == 64


def test_small_batches_counted_in_python_match_numpy():
    """The small-batch path (one pass in Python) picks the cells numpy's argmax picks,
    ties, infinities and signed zeros included, and hands NaN rows, +inf beside -inf and
    targets out of range to the numpy path, which counts or words the error."""
    from nbviz.confusion.core import _host_labels, _small_batch_cells

    rng = np.random.default_rng(0)
    specials = [0.0, -0.0, 1.0, np.inf, -np.inf, np.nan]
    for trial in range(400):
        n, k = int(rng.integers(1, 40)), int(rng.integers(2, 12))
        scores = rng.integers(-2, 3, size=(n, k)).astype(np.float32)  # many ties
        if trial % 2:
            where = rng.random((n, k)) < 0.1
            scores[where] = rng.choice(specials, size=int(where.sum()))
        targets = rng.integers(0, k + (trial % 5 == 0), size=n)  # sometimes k: out of range
        fast = _small_batch_cells(scores, targets, k)
        try:
            pred, tgt = _host_labels(scores, targets, k)
        except ValueError:
            assert fast is None  # the error is numpy's to word
            continue
        exact = (tgt * k + pred).tolist()
        if fast is None:  # only a row whose sum is NaN without a NaN: +inf beside -inf
            assert any(np.isposinf(r).any() and np.isneginf(r).any() for r in scores)
        else:
            assert fast == exact
    c = ConfusionCounter(3)  # and through the counter, with the numpy path's error
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 3\), got 3"):
        c.update(torch.zeros(2, 3), torch.tensor([0, 3]))
    assert c.samples == 0
