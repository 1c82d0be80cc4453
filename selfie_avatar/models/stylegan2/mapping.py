"""Mapping network z -> w (StyleGAN section 2): an MLP that un-warps the Gaussian latent space."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import EqualLinear

__all__ = ["MappingNetwork", "pixel_norm"]


def pixel_norm(x: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim``, which makes the output invariant to the scale of z."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """Pixel-normalised z through ``num_layers`` equalised linear layers with leaky ReLU.

    Args:
        z_dim: input latent width.
        w_dim: output style width.
        num_layers: number of linear layers (0: w is the normalised z, so z_dim must equal w_dim).
        lr_mul: learning-rate multiplier of every layer; 0.01 as in StyleGAN keeps the mapping slow and stable.
        hidden_dim: width of the hidden layers (default ``w_dim``).

    Shape:
        - z: :math:`(B, z\\_dim)`
        - Output: :math:`(B, w\\_dim)`
    """

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8, lr_mul: float = 0.01,
                 hidden_dim: int | None = None) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        if num_layers == 0 and z_dim != w_dim:
            raise ValueError(f"a mapping with 0 layers needs z_dim == w_dim, got {z_dim} and {w_dim}")
        self.z_dim, self.w_dim, self.num_layers = z_dim, w_dim, num_layers
        hidden = hidden_dim or w_dim
        dims = [z_dim] + [hidden] * (num_layers - 1) + [w_dim] if num_layers else []
        self.layers = nn.Sequential(*[
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation="lrelu") for i in range(num_layers)
        ])

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"MappingNetwork expects z (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.layers(pixel_norm(z))
