"""Equalised-learning-rate layers (Karras et al., "Progressive Growing of GANs", section 4.1).

Weights are stored with unit variance and multiplied by ``lr_mul / sqrt(fan_in)`` at every call instead of being
scaled once at initialisation. Adam normalises updates per parameter, so storing unit-variance weights makes the
effective learning rate the same for every layer whatever its fan-in; ``lr_mul`` then slows a layer down on purpose
(the mapping network uses 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["bias_act", "EqualLinear", "EqualConv2d", "LRELU_GAIN"]

# Gain that keeps the second moment of a unit-variance signal after a leaky ReLU with slope 0.2 close to 1
# (He et al.); StyleGAN2 uses sqrt(2) for every leaky ReLU.
LRELU_GAIN = math.sqrt(2.0)
_ACTIVATIONS = (None, "lrelu")


def bias_act(x: Tensor, bias: Tensor | None, activation: str | None = None, dim: int = 1) -> Tensor:
    """Add a per-channel bias, then optionally apply ``leaky_relu(., 0.2) * sqrt(2)``.

    Args:
        x: input of any shape.
        bias: per-channel bias, :math:`(C,)`, added along ``dim``; None adds nothing.
        activation: None (linear) or ``"lrelu"``.
        dim: the channel dimension of ``x``.

    Returns:
        Tensor of the shape of ``x``.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        x = x + bias.reshape(shape)
    if activation == "lrelu":
        x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate.

    Args:
        in_features: input width.
        out_features: output width.
        bias: learn a bias.
        bias_init: initial value of the effective bias.
        lr_mul: learning-rate multiplier of this layer (weights and bias).
        activation: None or ``"lrelu"`` (fused with the bias, scaled by sqrt(2)).

    Shape:
        - Input: :math:`(*, in\\_features)`
        - Output: :math:`(*, out\\_features)`
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str | None = None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if lr_mul <= 0:
            raise ValueError(f"lr_mul must be positive, got {lr_mul}")
        self.in_features, self.out_features = in_features, out_features
        self.lr_mul, self.activation = lr_mul, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        # Stored divided by lr_mul so that the effective bias starts at bias_init whatever lr_mul is.
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"EqualLinear expects (*, {self.in_features}), got {tuple(x.shape)}")
        x = F.linear(x, self.weight * self.weight_gain)
        bias = None if self.bias is None else self.bias * self.lr_mul
        return bias_act(x, bias, self.activation, dim=x.dim() - 1)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, lr_mul={self.lr_mul}, "
                f"activation={self.activation}")


class EqualConv2d(nn.Module):
    """2D convolution with equalised learning rate.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel side.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn a bias.
        activation: None or ``"lrelu"`` (fused with the bias, scaled by sqrt(2)).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{out}, H', W')` as for :func:`torch.nn.functional.conv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, activation: str | None = None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.activation = stride, padding, activation
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"EqualConv2d expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        x = F.conv2d(x, self.weight * self.weight_gain, stride=self.stride, padding=self.padding)
        return bias_act(x, self.bias, self.activation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}, activation={self.activation}")
