"""Minibatch standard deviation (Karras et al. 2018, section 3): lets the discriminator see batch diversity."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MinibatchStd"]


class MinibatchStd(nn.Module):
    """Append the mean standard deviation over groups of samples as extra feature channels.

    Samples ``n`` and ``n + N/G`` share a group (as in StyleGAN2). The group size is the largest divisor of the
    batch that is ``<= group_size``, so odd batches (e.g. the last one of an epoch) work too; a batch of one gets
    zeros.

    Args:
        group_size: maximum number of samples per group.
        num_channels: number of statistics channels; the features are split into this many channel groups.

    Shape:
        - Input: :math:`(N, C, H, W)` with C divisible by ``num_channels``
        - Output: :math:`(N, C + num\\_channels, H, W)`
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ValueError(f"group_size and num_channels must be >= 1, got {group_size}, {num_channels}")
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"MinibatchStd expects (N, C, H, W), got {tuple(x.shape)}")
        n, c, h, w = x.shape
        f = self.num_channels
        if c % f:
            raise ValueError(f"MinibatchStd: {c} channels are not divisible by num_channels={f}")
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()        # (N/G, F, C/F, H, W)
        y = y.mean(dim=(2, 3, 4))                          # (N/G, F)
        y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
