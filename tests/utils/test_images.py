"""The one float-to-uint8 conversion: ranges, layouts, rounding, clipping."""

import numpy as np
import pytest
import torch

from selfie_avatar.utils.images import SIGNED, to_uint8


def test_signed_and_unit_ranges_meet_at_the_same_pixels():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).view(1, 1, 1, 5).expand(2, 3, 1, 5)  # (B, C, H, W)
    out = to_uint8(x, SIGNED)
    assert out.shape == (2, 1, 5, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 64, 128, 191, 255]
    assert np.array_equal(out, to_uint8((x + 1) / 2))


def test_clipping_nan_and_passthrough():
    assert to_uint8(np.array([-3.0, 2.0, np.nan])).tolist() == [0, 255, 0]
    u8 = np.arange(6, dtype=np.uint8)
    assert to_uint8(u8) is u8
    assert to_uint8(torch.zeros(3, 4, 5)).shape == (4, 5, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="C, H, W"):
        to_uint8(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="high > low"):
        to_uint8(np.zeros(3), (1.0, 1.0))
