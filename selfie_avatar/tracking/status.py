"""What tracking found in each frame, and the face's size.

    DETECTED      the detector found a usable face
    INTERPOLATED  no usable face, but inside a short gap between two detected frames: bridged by interpolation
    MISSING       no usable face and not bridged (a long gap, or at the start or end): dropped from training
"""

from __future__ import annotations

import numpy as np

DETECTED, INTERPOLATED, MISSING = 0, 1, 2
STATUS_NAMES = {DETECTED: "detected", INTERPOLATED: "interpolated", MISSING: "missing"}


def face_extent(points: np.ndarray) -> np.ndarray:
    """Face size in pixels: the larger side of the 2D landmark box. (..., L, >=2) -> (...)."""
    span = np.nanmax(points[..., :2], axis=-2) - np.nanmin(points[..., :2], axis=-2)
    return span.max(-1)
