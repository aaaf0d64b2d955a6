"""Which part of what a model returns holds the scores: every structure real models use."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, namedtuple

import pytest
import torch

from nbviz._outputs import call_model, describe, pick_scores
from tests.models import hf_vit

LOGITS = torch.arange(6.0).reshape(2, 3)
HIDDEN = torch.zeros(2, 5, 8)


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    hidden: torch.Tensor


Pair = namedtuple("Pair", ["scores", "features"])


@pytest.mark.parametrize(
    "out",
    [
        LOGITS,
        {"logits": LOGITS, "hidden": HIDDEN},
        OrderedDict(loss=torch.tensor(1.0), logits=LOGITS),
        Out(LOGITS, HIDDEN),
        Pair(LOGITS, HIDDEN),
        (LOGITS,),
        [LOGITS],
        {"only": LOGITS},
    ],
    ids=[
        "tensor",
        "dict",
        "ordered-dict-with-loss",
        "dataclass",
        "namedtuple",
        "tuple1",
        "list1",
        "one-key",
    ],
)
def test_the_scores_are_found_without_asking(out):
    assert pick_scores(out) is LOGITS


def test_a_hugging_face_output_gives_its_logits():
    pytest.importorskip("transformers")
    model = hf_vit(num_labels=4).eval()
    out = model(pixel_values=torch.randn(2, 3, 16, 16), output_hidden_states=True)
    assert pick_scores(out) is out.logits
    assert describe(out) == "ImageClassifierOutput(logits: (2, 4), hidden_states: tuple of 2)"
    assert call_model(model, {"pixel_values": torch.randn(1, 3, 16, 16)}).logits.shape == (1, 4)


def test_output_chooses_by_key_attribute_index_or_callable():
    two = (HIDDEN, LOGITS)
    assert pick_scores(two, output=1) is LOGITS
    assert pick_scores(two, output=-1) is LOGITS
    assert pick_scores(Out(LOGITS, HIDDEN), output="hidden") is HIDDEN
    assert pick_scores({"a": HIDDEN, "b": LOGITS}, output="b") is LOGITS
    assert pick_scores({"a": HIDDEN, "b": LOGITS}, output=1) is LOGITS  # by position
    assert pick_scores(two, output=lambda o: o[1][:, :2]).shape == (2, 2)


def test_an_ambiguous_or_empty_output_says_what_was_found_and_how_to_choose():
    with pytest.raises(
        ValueError, match=r"returned tuple\(0: \(2, 5, 8\), 1: \(2, 3\)\): which part"
    ):
        pick_scores((HIDDEN, LOGITS))
    with pytest.raises(ValueError, match=r"output='logits'.*output=0.*lambda"):
        pick_scores({"a": HIDDEN, "b": LOGITS})
    with pytest.raises(ValueError, match="no tensor of class scores"):
        pick_scores({"text": "hello"})
    with pytest.raises(ValueError, match=r"output='x' names no part .*dict\(a: \(2, 5, 8\)\)"):
        pick_scores({"a": HIDDEN}, output="x")
    with pytest.raises(ValueError, match="output=5 names no part"):
        pick_scores((HIDDEN, LOGITS), output=5)
    with pytest.raises(ValueError, match="picked a str, not a tensor"):
        pick_scores({"a": "x", "b": LOGITS}, output="a")
    with pytest.raises(TypeError, match="output must be a key or attribute name"):
        pick_scores((LOGITS,), output=1.5)
