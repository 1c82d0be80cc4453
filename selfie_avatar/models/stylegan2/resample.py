"""FIR low-pass resampling (StyleGAN2 section 4 / appendix; Zhang, "Making convolutional networks shift-invariant").

Up- and down-sampling with a small separable binomial filter instead of nearest or strided sampling: aliasing
would otherwise show up as texture sticking to pixel positions, which is very visible when a neural texture is
warped through a moving face.

:func:`upfirdn2d` is the pure-PyTorch reference: zero insertion, padding (negative pads crop), a depthwise
``conv2d`` with the flipped filter (a true convolution), then decimation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["make_kernel", "upfirdn2d", "Upsample", "Downsample", "Blur", "DEFAULT_KERNEL"]

DEFAULT_KERNEL = (1, 3, 3, 1)


def make_kernel(kernel: Sequence[float] | Tensor, gain: float = 1.0) -> Tensor:
    """A 2D FIR filter whose taps sum to ``gain``.

    Args:
        kernel: 1D taps (made separable by an outer product) or a 2D filter.
        gain: sum of the returned taps; ``factor ** 2`` for upsampling by ``factor`` keeps a constant image constant
            (zero insertion leaves only one sample in ``factor ** 2``).

    Returns:
        Tensor :math:`(K_h, K_w)`, float32.
    """
    k = torch.as_tensor(kernel, dtype=torch.float32)
    if k.dim() == 1:
        k = k[:, None] * k[None, :]
    if k.dim() != 2 or k.numel() == 0:
        raise ValueError(f"kernel must be 1D or 2D and non-empty, got shape {tuple(k.shape)}")
    if float(k.sum()) == 0:
        raise ValueError("kernel taps sum to zero; a low-pass filter needs a non-zero DC gain")
    return k / k.sum() * gain


def _pads(pad: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(pad, int):
        return pad, pad, pad, pad
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"pad must be an int, (p0, p1) or (x0, x1, y0, y1), got {pad}")


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: int | Sequence[int] = 0) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample every channel independently.

    Args:
        x: input images.
        kernel: 2D filter :math:`(K_h, K_w)` (see :func:`make_kernel`); applied as a convolution, i.e. flipped.
        up: integer upsampling factor.
        down: integer downsampling factor.
        pad: padding after upsampling: an int, ``(p0, p1)`` for both axes, or ``(x0, x1, y0, y1)``; negative values
            crop.

    Returns:
        Filtered images.

    Shape:
        - x: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H', W')` with :math:`H' = \\lfloor (H \\cdot up + y_0 + y_1 - K_h) / down \\rfloor + 1`,
          and :math:`W'` likewise with :math:`x_0, x_1, K_w`.
    """
    if x.dim() != 4:
        raise ValueError(f"upfirdn2d expects (B, C, H, W), got {tuple(x.shape)}")
    if kernel.dim() != 2:
        raise ValueError(f"kernel must be 2D (K_h, K_w), got {tuple(kernel.shape)}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    x0, x1, y0, y1 = _pads(pad)
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    kh, kw = kernel.shape
    if x.shape[2] < kh or x.shape[3] < kw:
        raise ValueError(f"padded input {tuple(x.shape[2:])} is smaller than the kernel {(kh, kw)}")
    weight = kernel.flip([0, 1]).to(dtype=x.dtype, device=x.device)
    weight = weight[None, None].expand(c, 1, kh, kw)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


class Upsample(nn.Module):
    """Upsample by ``factor`` with a low-pass filter (DC gain 1: a constant image stays constant).

    Args:
        kernel: 1D filter taps.
        factor: integer factor.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H \\cdot factor, W \\cdot factor)`
    """

    def __init__(self, kernel: Sequence[float] = DEFAULT_KERNEL, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel, gain=factor ** 2), persistent=False)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Downsample(nn.Module):
    """Low-pass filter then keep every ``factor``-th sample (DC gain 1).

    Args:
        kernel: 1D filter taps.
        factor: integer factor; H and W should be divisible by it.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H / factor, W / factor)`
    """

    def __init__(self, kernel: Sequence[float] = DEFAULT_KERNEL, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel), persistent=False)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


class Blur(nn.Module):
    """Low-pass filter with explicit padding, used around strided and transposed convolutions.

    Args:
        kernel: 1D filter taps.
        pad: ``(p0, p1)`` padding of both axes.
        upsample_factor: the factor of a preceding transposed convolution; the gain ``factor ** 2`` compensates
            for its zero insertion.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H + p_0 + p_1 - K + 1, W + p_0 + p_1 - K + 1)`
    """

    def __init__(self, kernel: Sequence[float] = DEFAULT_KERNEL, pad: tuple[int, int] = (1, 1),
                 upsample_factor: int = 1) -> None:
        super().__init__()
        self.pad = tuple(pad)
        self.register_buffer("kernel", make_kernel(kernel, gain=upsample_factor ** 2), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, taps={tuple(self.kernel.shape)}"
