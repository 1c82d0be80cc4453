"""ToRGB: the skip-connection output branch of the StyleGAN2 generator (section 4.1, Figure 7b)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .modulated_conv import ModulatedConv2d
from .resample import DEFAULT_KERNEL, Upsample

__all__ = ["ToRGB"]


class ToRGB(nn.Module):
    """Modulated 1x1 convolution (no demodulation: its output is an image, not a normalised feature) plus bias,
    added to the low-pass upsampled output of the previous resolution.

    Args:
        in_channels: feature channels.
        style_dim: width of ``w``.
        out_channels: image channels.
        upsample: the skip input comes from half the resolution and is upsampled by 2.
        blur_kernel: 1D taps of the upsampling filter.

    Shape:
        - x: :math:`(B, C, H, W)`
        - style: :math:`(B, style\\_dim)`
        - skip: :math:`(B, out\\_channels, H/2, W/2)` (or :math:`(B, out\\_channels, H, W)` without upsample), optional
        - Output: :math:`(B, out\\_channels, H, W)`
    """

    def __init__(self, in_channels: int, style_dim: int, out_channels: int = 3, upsample: bool = True,
                 blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.upsample = Upsample(blur_kernel) if upsample else None

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            if skip.shape != out.shape:
                raise ValueError(f"ToRGB skip must upsample to {tuple(out.shape)}, got {tuple(skip.shape)}")
            out = out + skip
        return out
