"""Modulated convolution with weight demodulation (StyleGAN2, Karras et al. 2020, section 2.2).

The style scales the input channels of the shared weight per sample; demodulation then rescales every output
channel so that unit-variance inputs give unit-variance outputs, which replaces AdaIN's data-dependent
normalisation (the source of StyleGAN's droplet artefacts) by a statistical assumption on the weights alone.
Every sample has its own weights, so the batch is folded into the channels and run as one grouped convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import EqualLinear
from .resample import DEFAULT_KERNEL, Blur

__all__ = ["ModulatedConv2d"]


class ModulatedConv2d(nn.Module):
    """Style-modulated 2D convolution, optionally demodulated and resampled by 2.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd square kernel side.
        style_dim: width of the style vector ``w``.
        demodulate: normalise each output channel's weights per sample (off for ToRGB).
        up: upsample by 2 (transposed convolution, then low-pass filter).
        down: downsample by 2 (low-pass filter, then strided convolution).
        blur_kernel: 1D taps of the resampling filter.

    Shape:
        - x: :math:`(B, C_{in}, H, W)`
        - style: :math:`(B, style\\_dim)`
        - Output: :math:`(B, C_{out}, H', W')` with :math:`H' = 2H`, :math:`H/2` or :math:`H`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 up: bool = False, down: bool = False, blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        if up and down:
            raise ValueError("ModulatedConv2d cannot both upsample and downsample")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.style_dim, self.demodulate, self.up, self.down = style_dim, demodulate, up, down
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        # Bias 1: at initialisation the style scales are ~1 and the layer behaves like a plain convolution.
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        factor, taps = 2, len(blur_kernel)
        if up:
            # The transposed conv grows the map to 2H + k - 2; the filter with these pads brings it back to 2H.
            p = (taps - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        elif down:
            p = (taps - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        else:
            self.blur = None

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ModulatedConv2d expects x (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        if style.shape != (b, self.style_dim):
            raise ValueError(f"ModulatedConv2d expects style ({b}, {self.style_dim}), got {tuple(style.shape)}")
        s = self.modulation(style)                                             # (B, C_in)
        w = self.weight * self.weight_gain * s[:, None, :, None, None]        # (B, C_out, C_in, k, k)
        if self.demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        k = self.kernel_size
        x = x.reshape(1, b * self.in_channels, *x.shape[2:])
        if self.up:
            # conv_transpose2d wants (C_in_total, C_out_per_group, k, k).
            w = w.transpose(1, 2).reshape(b * self.in_channels, self.out_channels, k, k)
            x = F.conv_transpose2d(x, w, stride=2, groups=b)
            x = self.blur(x)
        elif self.down:
            x = self.blur(x)
            x = F.conv2d(x, w.reshape(b * self.out_channels, self.in_channels, k, k), stride=2, groups=b)
        else:
            x = F.conv2d(x, w.reshape(b * self.out_channels, self.in_channels, k, k), padding=k // 2, groups=b)
        return x.reshape(b, self.out_channels, *x.shape[2:])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, style_dim={self.style_dim}, "
                f"demodulate={self.demodulate}, up={self.up}, down={self.down}")
