"""D: StyleGAN2 residual discriminator conditioned on the shaded render ``I_R`` (StyleAvatar section 3.3).

Conditioning by concatenation: the discriminator judges (image, I_R) pairs, so a realistic frame that does not
match the tracked expression and pose is also rejected.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .stylegan2 import ConvLayer, EqualLinear, MinibatchStd, ResBlock, channel_dict, is_power_of_two

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """FromRGB (1x1) -> residual blocks down to 4x4 -> minibatch std -> 3x3 conv -> 2 linear layers -> logit.

    Args:
        size: input side (power of two, >= 8), or a :class:`ModelConfig` (then ``size``, ``disc_channel_base``,
            ``disc_channel_max`` and ``mbstd_group`` come from it and the keyword arguments are ignored).
        in_channels: channels of the concatenated input (image + render: 6).
        channel_base: channels ``min(channel_base // res, channel_max)`` per resolution.
        channel_max: see ``channel_base``.
        mbstd_group: minibatch-std group size (shrinks to a divisor of the batch).
        channels: explicit {resolution: channels} for 4 .. size (overrides channel_base / channel_max).

    Shape:
        - image: :math:`(B, 3, H, W)` in [-1, 1]
        - render: :math:`(B, in\\_channels - 3, H, W)`, ``I_R`` in [-1, 1]
        - Output: :math:`(B, 1)` logits (real > 0)
    """

    def __init__(self, size: int | ModelConfig = 256, in_channels: int = 6, channel_base: int = 16384,
                 channel_max: int = 512, mbstd_group: int = 4, channels: Mapping[int, int] | None = None) -> None:
        super().__init__()
        if isinstance(size, ModelConfig):
            cfg = size
            size, channel_base, channel_max, mbstd_group = (cfg.size, cfg.disc_channel_base, cfg.disc_channel_max,
                                                            cfg.mbstd_group)
        if not is_power_of_two(size) or size < 8:
            raise ValueError(f"size must be a power of two >= 8, got {size}")
        if in_channels < 4:
            raise ValueError(f"in_channels must be 3 (image) + the render's channels, got {in_channels}")
        ch = dict(channels) if channels is not None else channel_dict(size, channel_base, channel_max)
        self.size, self.in_channels, self.channels = size, in_channels, ch
        self.from_rgb = ConvLayer(in_channels, ch[size], 1)
        self.blocks = nn.Sequential(*[ResBlock(ch[r], ch[r // 2]) for r in sorted(ch, reverse=True) if r > 4])
        self.mbstd = MinibatchStd(group_size=mbstd_group, num_channels=1)
        self.final_conv = ConvLayer(ch[4] + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activation="lrelu"), EqualLinear(ch[4], 1))

    def forward(self, image: Tensor, render: Tensor) -> Tensor:
        s, cr = self.size, self.in_channels - 3
        if image.dim() != 4 or image.shape[1:] != (3, s, s):
            raise ValueError(f"image must be (B, 3, {s}, {s}), got {tuple(image.shape)}")
        if render.shape != (image.shape[0], cr, s, s):
            raise ValueError(f"render must be ({image.shape[0]}, {cr}, {s}, {s}), got {tuple(render.shape)}")
        x = self.from_rgb(torch.cat([image, render.to(image.dtype)], dim=1))   # (B, C_S, S, S)
        x = self.blocks(x)                                                   # (B, C_4, 4, 4)
        x = self.final_conv(self.mbstd(x))                                   # (B, C_4, 4, 4)
        return self.final_linear(x.flatten(1))                               # (B, 1)
