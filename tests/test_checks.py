"""The checks every entry point shares (nbviz/_checks.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from nbviz._checks import as_tensor, int_at_least, model_device, model_dtype, submodule


def test_int_at_least_refuses_bools_floats_and_small_values():
    assert int_at_least("n", np.int64(3)) == 3
    for bad in (True, 2.0, "2", 0):
        with pytest.raises(ValueError, match=rf"n must be an int >= 1, got {bad!r}"):
            int_at_least("n", bad)
    assert int_at_least("depth", 0, minimum=0) == 0


def test_as_tensor_shares_numpy_memory_and_names_what_came():
    a = np.arange(6.0).reshape(2, 3)
    t = as_tensor(a, "x")
    t[0, 0] = 9
    assert a[0, 0] == 9  # a view, not a copy
    assert as_tensor(a.T, "x").is_contiguous()
    with pytest.raises(TypeError, match="x must be a torch.Tensor or numpy array, got list"):
        as_tensor([1, 2], "x")


def test_submodule_suggests_close_paths():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    assert submodule(model, "1.1") is model[1][1]
    with pytest.raises(ValueError, match=r"layer '1.2' does not exist in this model; did you mean"):
        submodule(model, "1.2")
    with pytest.raises(ValueError, match=r"layer 3 does not exist in this model"):
        submodule(model, 3)


def test_model_device_and_dtype_with_and_without_parameters():
    model = nn.Linear(2, 2).double()
    assert model_device(model) == torch.device("cpu") and model_dtype(model) == torch.float64
    assert (
        model_device(nn.ReLU()) is None and model_dtype(nn.ReLU(), torch.float32) is torch.float32
    )


def test_positive_seconds_names_what_was_expected():
    from nbviz._checks import positive_seconds

    assert positive_seconds("interval", 2) == 2.0 and positive_seconds("interval", 0.25) == 0.25
    for bad in (0, -1, True, "1", float("nan"), None):
        with pytest.raises(ValueError, match=r"interval must be a number of seconds > 0, got"):
            positive_seconds("interval", bad)
