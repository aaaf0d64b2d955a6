"""Images in and out (nbviz/_images.py): thumbnails that look like the input, the checks."""

import numpy as np
import pytest
import torch

import nbviz._images
from nbviz._images import example_images, thumbnails


def test_thumbnails_of_unit_range_normalized_grey_and_large_images():
    x = torch.rand(2, 3, 8, 8)
    t = thumbnails(x, 32)
    assert t.shape == (2, 8, 8, 3) and t.dtype == np.uint8
    np.testing.assert_allclose(t / 255.0, x.permute(0, 2, 3, 1).numpy(), atol=1 / 255)
    z = torch.randn(1, 3, 8, 8) * 3  # normalized input: min-max scaled
    tz = thumbnails(z, 32)
    assert tz.min() == 0 and tz.max() == 255
    g = thumbnails(torch.rand(1, 1, 8, 8), 32)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    big = thumbnails(torch.rand(1, 3, 128, 64), 32)
    assert big.shape == (1, 32, 16, 3)
    hw = thumbnails(torch.rand(2, 10, 10), 32)  # (N, H, W)
    assert hw.shape == (2, 10, 10, 3)


def test_thumbnails_leave_the_inputs_alone():
    for x in (torch.rand(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.rand(2, 3, 64, 64)):
        before = x.clone()
        thumbnails(x, 32)
        assert torch.equal(x, before)
    u = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    np.testing.assert_array_equal(thumbnails(u, 32), u.permute(0, 2, 3, 1).numpy())


def test_image_count_message_uses_the_singular_for_one():
    with pytest.raises(ValueError, match=r"expected 1 image, got 2"):
        example_images(torch.rand(2, 3, 8, 8), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_numpy_path_for_unit_images_equals_the_general_one(monkeypatch, dtype, channels):
    x = torch.rand(5, channels, 7, 9, dtype=dtype)
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5 / 255])  # the ends, and a rounding edge
    quick = thumbnails(x, 16)
    monkeypatch.setattr(nbviz._images, "_unit_images_as_they_are", lambda x, size: None)
    np.testing.assert_array_equal(quick, thumbnails(x, 16))
    assert quick.shape == (5, 7, 9, 3)
