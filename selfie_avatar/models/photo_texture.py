"""The photo texture: the training frames unwrapped into UV space and averaged, the start of the neural texture.

``G_fa`` learns the neural texture from a fixed latent code, so at step 0 the face region of the image generator's
input is noise, and the face takes shape only as fast as the texture and the StyleUNet learn it together; in ten
CPU minutes that sometimes never happened (``driver_d3``, seed 0, README). The video already shows the person's
skin, brows and lips, and ``I_UV`` says which texel every face pixel shows, so the mean colour of each texel over
the training frames is a photo of the face laid out in UV space (Deferred Neural Rendering starts its texture's RGB
channels the same way). :class:`~selfie_avatar.models.avatar.AvatarGenerator` adds it to the first three channels
of ``G_fa``'s output (the texture's RGB view), so ``G_fa`` learns what the average lacks and the image generator sees
a face from the first step.

A texel no frame covers (the mesh's eye and mouth holes, the sides never turned to the camera) gets the colour of
its covered neighbourhood by push-pull: averaged at coarser scales until every texel has one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["accumulate_photo_texture", "finish_photo_texture"]


def accumulate_photo_texture(images: Tensor, uv: Tensor, texture_size: int,
                             totals: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Add frames' face pixels to their texels: the running sums of colour and of pixel counts.

    Each covered pixel goes to the texel it samples in :func:`~selfie_avatar.models.warp.warp_texture` (nearest
    texel centre, the same u -> column, v -> row convention).

    Args:
        images: frames in [-1, 1] (float) or [0, 255] (uint8, scaled here).
        uv: their ``I_UV`` (u, v, coverage).
        texture_size: side T of the texture.
        totals: the sums so far (None: start at zero).

    Returns:
        (colour sums :math:`(3, T, T)`, counts :math:`(1, T, T)`), float32.

    Shape:
        - images: :math:`(B, 3, S, S)`
        - uv: :math:`(B, 3, S, S)`
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, S, S), got {tuple(images.shape)}")
    if uv.shape != (images.shape[0], 3, *images.shape[2:]):
        raise ValueError(f"uv must be {(images.shape[0], 3, *images.shape[2:])} (u, v, coverage), got "
                         f"{tuple(uv.shape)}")
    if texture_size < 1:
        raise ValueError(f"texture_size must be positive, got {texture_size}")
    t = texture_size
    if totals is None:
        totals = torch.zeros(3, t, t), torch.zeros(1, t, t)
    sums, counts = totals
    if sums.shape != (3, t, t) or counts.shape != (1, t, t):
        raise ValueError(f"totals must be ((3, {t}, {t}), (1, {t}, {t})), got {tuple(sums.shape)} and "
                         f"{tuple(counts.shape)}")
    colour = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
    covered = uv[:, 2] > 0.5                                                  # (B, S, S)
    col = (uv[:, 0][covered].float() * t).long().clamp(0, t - 1)              # (N,)
    row = (uv[:, 1][covered].float() * t).long().clamp(0, t - 1)
    texel = row * t + col
    rgb = colour.permute(0, 2, 3, 1)[covered]                                # (N, 3)
    sums = sums.reshape(3, -1).index_add(1, texel, rgb.T).reshape(3, t, t)
    counts = counts.reshape(1, -1).index_add(1, texel, torch.ones(1, texel.numel())).reshape(1, t, t)
    return sums, counts


def finish_photo_texture(sums: Tensor, counts: Tensor) -> Tensor:
    """The mean colour of every texel, holes filled by push-pull.

    Args:
        sums: colour sums from :func:`accumulate_photo_texture`.
        counts: pixel counts from :func:`accumulate_photo_texture`.

    Returns:
        :math:`(1, 3, T, T)` in [-1, 1]; all zeros when no pixel was covered at all.

    Shape:
        - sums: :math:`(3, T, T)`; counts: :math:`(1, T, T)`
    """
    if sums.dim() != 3 or sums.shape[0] != 3 or counts.shape != (1, *sums.shape[1:]):
        raise ValueError(f"sums must be (3, T, T) and counts (1, T, T), got {tuple(sums.shape)} and "
                         f"{tuple(counts.shape)}")
    if counts.sum() == 0:
        return torch.zeros(1, 3, *sums.shape[1:])
    # Push: sums and counts pooled down to one texel (the pooled sums stay sums, so a coarse texel averages every
    # pixel under it). Pull: from the coarsest scale up, a texel without pixels takes the coarser scale's colour.
    levels = [(sums[None].float(), counts[None].float())]
    while levels[-1][1].shape[-1] > 1:
        s, c = levels[-1]
        levels.append((F.avg_pool2d(s, 2, ceil_mode=True) * 4, F.avg_pool2d(c, 2, ceil_mode=True) * 4))
    s, c = levels[-1]
    colour = s / c.clamp_min(1e-8)
    for s, c in reversed(levels[:-1]):
        coarse = F.interpolate(colour, size=s.shape[-2:], mode="nearest")
        colour = torch.where(c > 0, s / c.clamp_min(1e-8), coarse)
    return colour.clamp(-1, 1)                                                # (1, 3, T, T)
