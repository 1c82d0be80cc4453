"""Warp a UV-space texture into the frame through the per-frame UV image ``I_UV``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["warp_texture", "TextureWarp"]


def warp_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Sample ``texture`` at the per-pixel coordinates of ``uv`` and zero it off the face.

    u indexes texture columns (x) and v texture rows (y); both map [0, 1] to the texture's outer edges
    (``grid_sample`` with ``align_corners=False``), so texel (i, j) is read exactly at
    ``u = (j + 0.5) / T``, ``v = (i + 0.5) / T``. Bilinear sampling; outside [0, 1] the border texel is repeated
    (``padding_mode="border"``) so the silhouette does not fade to black. The result is multiplied by the coverage
    mask, so it is exactly zero wherever the mask is.

    Args:
        texture: neural texture; a batch of 1 is shared by every frame.
        uv: UV image: channels u, v in [0, 1] and the coverage mask.

    Returns:
        Warped features.

    Shape:
        - texture: :math:`(B \\text{ or } 1, C, T_h, T_w)`
        - uv: :math:`(B, 3, H, W)`
        - Output: :math:`(B, C, H, W)`
    """
    if texture.dim() != 4:
        raise ValueError(f"texture must be (B, C, T, T), got {tuple(texture.shape)}")
    if uv.dim() != 4 or uv.shape[1] != 3:
        raise ValueError(f"uv must be (B, 3, H, W) with channels u, v, mask, got {tuple(uv.shape)}")
    b = uv.shape[0]
    if texture.shape[0] not in (1, b):
        raise ValueError(f"texture batch must be 1 or {b} (the uv batch), got {tuple(texture.shape)}")
    texture = texture.expand(b, -1, -1, -1)
    grid = uv[:, :2].permute(0, 2, 3, 1) * 2 - 1                             # (B, H, W, 2): (x, y) in [-1, 1]
    # Sampled in float32 whatever the texture's dtype: a 256-texel coordinate needs more than bfloat16's 8 mantissa
    # bits (bf16 coordinates land up to a texel off), and the CPU's bf16 kernel returned NaNs here.
    out = F.grid_sample(texture.float(), grid.float(), mode="bilinear", padding_mode="border",
                        align_corners=False)                                 # (B, C, H, W)
    return (out * uv[:, 2:3].float()).to(texture.dtype)


class TextureWarp(nn.Module):
    """Module form of :func:`warp_texture`.

    Shape:
        - texture: :math:`(B \\text{ or } 1, C, T, T)`
        - uv: :math:`(B, 3, H, W)`
        - Output: :math:`(B, C, H, W)`
    """

    def forward(self, texture: Tensor, uv: Tensor) -> Tensor:
        return warp_texture(texture, uv)
