"""Float images to 8-bit: the one conversion every stage uses (pictures, videos, panels, the slider view).

The networks work in [-1, 1] (``SIGNED``), image files and metrics in [0, 1] (``UNIT``). Values are clipped to the
range, scaled to 0..255 and rounded half up; NaN becomes the range's low end.
"""

from __future__ import annotations

import numpy as np

UNIT = (0.0, 1.0)
SIGNED = (-1.0, 1.0)


def to_uint8(images, value_range: tuple[float, float] = UNIT) -> np.ndarray:
    """Float images -> uint8, channels last.

    Args:
        images: torch ``(..., C, H, W)`` (moved to the CPU and to channels last), or a numpy array in any layout
            (left as it is). uint8 input is returned unchanged.
        value_range: the values that map to 0 and 255.

    Returns:
        uint8 numpy array: ``(..., H, W, C)`` for torch input, the input's shape for numpy.

    Raises:
        ValueError: a torch input with fewer than 3 dimensions, or an empty range.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    if hasattr(images, "detach"):
        if images.dim() < 3:
            raise ValueError(f"a torch image must be (..., C, H, W), got {tuple(images.shape)}")
        images = images.detach().float().cpu().movedim(-3, -1).numpy()
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    a = np.nan_to_num(a.astype(np.float32), nan=lo)
    return ((np.clip(a, lo, hi) - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)
