"""Per-pixel noise inputs (StyleGAN section 3.2): stochastic detail without spending style capacity on it.

Generators take a ``noise`` argument that is either explicit tensors or one of the modes below; :func:`noise_mode`
turns ``None`` into ``"random"`` while training and ``"const"`` in eval mode, so inference is deterministic (no
flicker between frames) without every caller having to ask for it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NoiseInjection", "NOISE_MODES", "noise_mode"]

NOISE_MODES = ("random", "const", "zero")


def noise_mode(noise: str | None, training: bool) -> str:
    """Resolve a generator's ``noise`` argument: None means "random" in training mode, "const" in eval mode."""
    if noise is None:
        return "random" if training else "const"
    if noise not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES} or None, got {noise!r}")
    return noise


class NoiseInjection(nn.Module):
    """Add single-channel noise scaled by one learned strength per layer (zero at initialisation), as StyleGAN2 and
    StyleAvatar do (StyleGAN1 had one per channel).

    Args:
        channels: number of feature channels (checked on input; the strength is shared by all of them).

    Shape:
        - x: :math:`(B, C, H, W)`
        - noise: :math:`(B, 1, H, W)` or :math:`(1, 1, H, W)`; None draws it with ``torch.randn`` on ``x``'s device.
        - Output: :math:`(B, C, H, W)`
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"NoiseInjection expects (B, {self.channels}, H, W), got {tuple(x.shape)}")
        b, _, h, w = x.shape
        if noise is None:
            noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        elif noise.dim() != 4 or noise.shape[1] != 1 or noise.shape[2:] != (h, w) or noise.shape[0] not in (1, b):
            raise ValueError(f"noise must be ({b} or 1, 1, {h}, {w}), got {tuple(noise.shape)}")
        return x + self.weight * noise
