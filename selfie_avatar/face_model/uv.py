"""UV coordinates shared by the face models."""

from __future__ import annotations

import numpy as np


def frontal_uv(neutral: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """UV coordinates by frontal (orthographic) projection of the neutral shape into [margin, 1 - margin]^2.

    The aspect ratio is kept, so texels are square; v grows downwards like image rows.
    """
    xy = np.asarray(neutral)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    centre, extent = (lo + hi) / 2, (hi - lo).max()
    return ((xy - centre) / extent * (1 - 2 * margin) + 0.5).astype(np.float32)
