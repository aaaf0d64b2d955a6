"""Leaving a model as found (nbviz/_state.py), as trace, cam, the examples and the monitor do."""

import pytest
import torch
from torch import nn

from nbviz._state import preserved


def test_preserved_puts_back_modes_flags_replaced_tensors_and_buffer_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    weight, stats = model[0].weight, model[1].running_mean.clone()
    with pytest.raises(RuntimeError, match="inside"):
        with preserved(model, training=True, requires_grad=False, tensors=True, buffer_values=True):
            assert model.training and not weight.requires_grad
            model(torch.randn(8, 3))  # batch norm in train mode writes its statistics
            model[0].weight = nn.Parameter(torch.zeros(4, 3))  # a replaced parameter
            raise RuntimeError("inside")  # put back on the way out of an error too
    assert not model.training and not model[1].training and weight.requires_grad
    assert model[0].weight is weight
    assert torch.equal(model[1].running_mean, stats)
    assert int(model[1].num_batches_tracked) == 0


def test_preserved_leaves_buffers_alone_unless_asked():
    model = nn.BatchNorm1d(2)
    with preserved(model, training=True):
        model(torch.randn(4, 2))
    assert int(model.num_batches_tracked) == 1
