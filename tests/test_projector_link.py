"""`Embeddings.link`: a projector and a confusion matrix of the same classes share a
channel (their views talk in the browser); anything else is refused with what to fix."""

import pytest
import torch

import nbviz
from nbviz.examples import SmallCNN


@pytest.fixture(scope="module")
def emb():
    torch.manual_seed(0)
    data = nbviz.datasets.shapes(n=24, size=16, seed=0)
    model = SmallCNN(num_classes=len(data.classes), width=4)
    return nbviz.Embeddings(model, data.images, data.labels, classes=data.classes)


def test_link_shares_one_channel_and_unlinks(emb):
    cm = nbviz.ConfusionMatrix(list(emb.classes))
    assert cm.link_channel == "" and emb.link_channel == ""
    emb.link(cm)
    assert cm.link_channel and emb.link_channel == cm.link_channel
    assert cm.get_state()["link_channel"] == emb.get_state()["link_channel"]
    channel = cm.link_channel
    emb.link(None)
    assert emb.link_channel == "" and cm.link_channel == channel
    emb.link(cm)  # a matrix keeps its channel: several projectors can join it
    assert emb.link_channel == channel
    emb.link(None)


def test_link_refuses_other_classes_and_other_widgets(emb):
    with pytest.raises(ValueError, match=r"class 1 is 'box' in the confusion matrix but 'square'"):
        emb.link(nbviz.ConfusionMatrix(["circle", "box", "triangle", "star", "cross", "ring"]))
    with pytest.raises(ValueError, match="has 3 classes and the projector 6"):
        emb.link(nbviz.ConfusionMatrix(["a", "b", "c"]))
    with pytest.raises(TypeError, match="takes an nbviz.ConfusionMatrix"):
        emb.link("cm")
    assert emb.link_channel == ""  # nothing half-changed
