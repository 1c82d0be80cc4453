"""StyleGAN2 synthesis network (Karras et al. 2020, config E: skip generator, Figure 7b).

A learned constant is upsampled by modulated convolutions to the output resolution; every resolution adds its
ToRGB output to the upsampled image of the previous one. Both the last feature map and the skip image are
returned: the avatar uses the features (a neural texture or background feature map) and shows the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .layers import bias_act
from .modulated_conv import ModulatedConv2d
from .noise import NoiseInjection, noise_mode
from .resample import DEFAULT_KERNEL
from .torgb import ToRGB

__all__ = ["StyledConv", "SynthesisNetwork", "channel_dict", "is_power_of_two"]


def is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def channel_dict(max_res: int, channel_base: int, channel_max: int, min_res: int = 4) -> dict[int, int]:
    """StyleGAN2's channel rule ``min(channel_base // res, channel_max)`` for res = min_res, 2 min_res, ..., max_res.

    Returns:
        {resolution: channels}, every count at least 1.
    """
    if not (is_power_of_two(max_res) and is_power_of_two(min_res)) or min_res > max_res:
        raise ValueError(f"resolutions must be powers of two with min_res <= max_res, got {min_res}, {max_res}")
    out, res = {}, min_res
    while res <= max_res:
        out[res] = max(1, min(channel_base // res, channel_max))
        res *= 2
    return out


class StyledConv(nn.Module):
    """Modulated convolution, noise, bias and leaky ReLU: one layer of the StyleGAN2 generator.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd square kernel side.
        style_dim: width of ``w``.
        up: upsample by 2.
        demodulate: demodulate the weights.
        blur_kernel: 1D taps of the upsampling filter.

    Shape:
        - x: :math:`(B, C_{in}, H, W)`
        - style: :math:`(B, style\\_dim)`
        - noise: :math:`(B \\text{ or } 1, 1, H', W')` or None (random)
        - Output: :math:`(B, C_{out}, H', W')`, :math:`H' = 2H` with ``up``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, up: bool = False,
                 demodulate: bool = True, blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=demodulate, up=up,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection(out_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        x = self.noise(self.conv(x, style), noise)
        return bias_act(x, self.bias, "lrelu")


class SynthesisNetwork(nn.Module):
    """Learned constant -> modulated convolutions -> (features, skip image).

    The constant sits at nominal resolution ``start_res`` and is doubled until ``size``; channel counts follow the
    nominal resolution. ``const_size`` lets the constant be larger than ``start_res`` pixels so that the output is
    ``const_size * size / start_res`` pixels wide: e.g. a 288 px background canvas for a 256 px frame is a 9x9
    constant at nominal 8 px, doubled 5 times.

    Args:
        size: nominal output resolution (power of two).
        w_dim: width of the style vectors.
        channels: {nominal resolution: channels} for every resolution from ``start_res`` to ``size``; if None,
            ``min(channel_base // res, channel_max)``.
        channel_base: see ``channels``.
        channel_max: see ``channels``.
        out_channels: channels of the skip image.
        start_res: nominal resolution of the learned constant (power of two, >= 4).
        const_size: side of the learned constant in pixels (default ``start_res``).
        blur_kernel: 1D taps of the resampling filter.

    Shape:
        - w: :math:`(B, w\\_dim)` (one style for all layers) or :math:`(B, num\\_ws, w\\_dim)`
        - Output: features :math:`(B, channels[size], S, S)` and image :math:`(B, out\\_channels, S, S)` with
          :math:`S = const\\_size \\cdot size / start\\_res`.
    """

    def __init__(self, size: int, w_dim: int, channels: Mapping[int, int] | None = None, channel_base: int = 16384,
                 channel_max: int = 512, out_channels: int = 3, start_res: int = 4, const_size: int | None = None,
                 blur_kernel: Sequence[float] = DEFAULT_KERNEL) -> None:
        super().__init__()
        if not is_power_of_two(size) or not is_power_of_two(start_res) or start_res < 4 or size < start_res:
            raise ValueError(f"size and start_res must be powers of two with 4 <= start_res <= size, "
                             f"got size={size}, start_res={start_res}")
        const_size = start_res if const_size is None else const_size
        if const_size < 1:
            raise ValueError(f"const_size must be >= 1, got {const_size}")
        resolutions = list(channel_dict(size, 1, 1, min_res=start_res))
        if channels is None:
            channels = channel_dict(size, channel_base, channel_max, min_res=start_res)
        missing = [r for r in resolutions if r not in channels]
        if missing:
            raise ValueError(f"channels has no entry for resolutions {missing}")
        self.size, self.w_dim, self.out_channels = size, w_dim, out_channels
        self.start_res, self.const_size = start_res, const_size
        self.channels = {r: int(channels[r]) for r in resolutions}
        self.out_size = const_size * size // start_res
        self.feature_channels = self.channels[size]

        c0 = self.channels[start_res]
        self.const = nn.Parameter(torch.randn(1, c0, const_size, const_size))
        self.conv1 = StyledConv(c0, c0, 3, w_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c0, w_dim, out_channels, upsample=False, blur_kernel=blur_kernel)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        sides = [const_size]
        for res in resolutions[1:]:
            cin, cout = self.channels[res // 2], self.channels[res]
            self.convs.append(StyledConv(cin, cout, 3, w_dim, up=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(cout, cout, 3, w_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(cout, w_dim, out_channels, blur_kernel=blur_kernel))
            sides += [sides[-1] * 2] * 2
        self.num_layers = 1 + len(self.convs)
        # ToRGB shares its w with the next layer's first conv; one more w for the last ToRGB.
        self.num_ws = self.num_layers + 1
        # Fixed noise for deterministic output ("const" mode): drawn once, saved with the weights.
        for i, side in enumerate(sides):
            self.register_buffer(f"noise_const_{i}", torch.randn(1, 1, side, side))

    def layer_noise(self, noise: str | Sequence[Tensor | None] | None) -> list[Tensor | None]:
        """Per-layer noise tensors for a mode (None: "random" when training, "const" in eval) or an explicit list."""
        if noise is None or isinstance(noise, str):
            mode = noise_mode(noise, self.training)
            consts = [getattr(self, f"noise_const_{i}") for i in range(self.num_layers)]
            if mode == "random":
                return [None] * self.num_layers
            return consts if mode == "const" else [torch.zeros_like(c) for c in consts]
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise must hold {self.num_layers} tensors (one per layer), got {len(noise)}")
        return noise

    def forward(self, w: Tensor, noise: str | Sequence[Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
        if w.dim() == 2 and w.shape[1] == self.w_dim:
            ws = w[:, None].expand(-1, self.num_ws, -1)
        elif w.dim() == 3 and w.shape[1:] == (self.num_ws, self.w_dim):
            ws = w
        else:
            raise ValueError(f"SynthesisNetwork expects w (B, {self.w_dim}) or (B, {self.num_ws}, {self.w_dim}), "
                             f"got {tuple(w.shape)}")
        n = self.layer_noise(noise)
        x = self.const.expand(w.shape[0], -1, -1, -1)            # (B, C0, s0, s0)
        x = self.conv1(x, ws[:, 0], n[0])
        rgb = self.to_rgb1(x, ws[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 1 + 2 * j
            x = self.convs[2 * j](x, ws[:, i], n[i])              # (B, C_res, 2s, 2s)
            x = self.convs[2 * j + 1](x, ws[:, i + 1], n[i + 1])
            rgb = to_rgb(x, ws[:, i + 2], rgb)
        return x, rgb                                             # (B, C_size, S, S), (B, out_channels, S, S)

    def extra_repr(self) -> str:
        return f"size={self.size}, out_size={self.out_size}, channels={self.channels}, num_ws={self.num_ws}"
