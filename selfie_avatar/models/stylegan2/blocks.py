"""Plain (unmodulated) convolution blocks of the StyleGAN2 discriminator, also used by the StyleUNet encoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from .layers import EqualConv2d
from .resample import DEFAULT_KERNEL, Blur

__all__ = ["ConvLayer", "ResBlock"]


class ConvLayer(nn.Module):
    """Equalised convolution, optionally preceded by a low-pass filter and strided by 2, with optional leaky ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd square kernel side.
        down: downsample by 2 (filter first so the stride does not alias).
        activate: apply ``lrelu * sqrt(2)``.
        bias: learn a bias.
        blur_kernel: 1D taps of the filter.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{out}, H, W)`, or :math:`(B, C_{out}, H/2, W/2)` with ``down``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, down: bool = False,
                 activate: bool = True, bias: bool = True, blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if down:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
            stride, padding = 2, 0
        else:
            self.blur = None
            stride, padding = 1, kernel_size // 2
        self.conv = EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias,
                                activation="lrelu" if activate else None)

    def forward(self, x: Tensor) -> Tensor:
        if self.blur is not None:
            x = self.blur(x)
        return self.conv(x)


class ResBlock(nn.Module):
    """Residual downsampling block (StyleGAN2 Figure 7c): two 3x3 convs, the second one downsampling, plus a
    filtered 1x1 skip; the sum is scaled by 1/sqrt(2) so the variance does not double at each block.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        blur_kernel: 1D taps of the downsampling filter.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{out}, H/2, W/2)`
    """

    def __init__(self, in_channels: int, out_channels: int, blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, down=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, down=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) * (1 / math.sqrt(2))
