"""Where the VGG-based losses look: a square window around the face, at full resolution.

The VGG trunk is most of a CPU training step (at 128 px, batch 4: about 1.1 s of 1.85 s on 2 cores, measured with
``benchmarks/train_step.py``). ID-MRF compares only the face, and the face is where fine detail matters most (eyes,
teeth, wrinkles), so the ``cpu`` and ``lite`` presets run the feature losses on a window of half the frame's side
centred on the face, jittered a little so its border moves: a quarter of the pixels, the same resolution. The ``full``
preset (one GPU) uses the whole frame. The windows are cut with the background generator's own
:func:`~selfie_avatar.models.background_generator.crop_windows`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["face_windows"]


def face_windows(face_mask: Tensor, side: int, jitter: float = 0.125,
                 generator: torch.Generator | None = None) -> Tensor:
    """Top-left corners of ``side`` x ``side`` windows centred on each frame's face, jittered and kept inside.

    Args:
        face_mask: face coverage; a frame without a face gets a window at the frame's centre.
        side: window side in pixels (at most the frame's).
        jitter: the centre moves uniformly by up to this fraction of the frame's side on each axis.
        generator: RNG of the jitter (CPU).

    Returns:
        :math:`(B, 2)` long (x, y).

    Shape:
        - face_mask: :math:`(B, 1, H, W)`.
    """
    if face_mask.dim() != 4 or face_mask.shape[1] != 1:
        raise ValueError(f"face_mask must be (B, 1, H, W), got {tuple(face_mask.shape)}")
    b, _, h, w = face_mask.shape
    if not 1 <= side <= min(h, w):
        raise ValueError(f"window side must be in [1, {min(h, w)}], got {side}")
    m = (face_mask[:, 0] > 0.5).float()
    area = m.sum(dim=(1, 2))
    ys = torch.arange(h, dtype=torch.float32, device=m.device)
    xs = torch.arange(w, dtype=torch.float32, device=m.device)
    cy = torch.where(area > 0, (m.sum(2) * ys).sum(1) / area.clamp_min(1), torch.full_like(area, (h - 1) / 2))
    cx = torch.where(area > 0, (m.sum(1) * xs).sum(1) / area.clamp_min(1), torch.full_like(area, (w - 1) / 2))
    shake = (torch.rand(b, 2, generator=generator) * 2 - 1) * jitter * torch.tensor([w, h])
    centre = torch.stack([cx, cy], 1).cpu() + shake
    corner = (centre - side / 2).round().long()
    corner[:, 0] = corner[:, 0].clamp(0, w - side)
    corner[:, 1] = corner[:, 1].clamp(0, h - side)
    return corner
