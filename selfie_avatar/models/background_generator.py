"""G_b: background feature maps on a canvas slightly larger than the frame, cropped by a sliding window.

StyleAvatar generates the background with its own StyleGAN and crops it at random offsets during training, so
the image generator learns to handle translated backgrounds (the camera of a selfie video is never perfectly
still) instead of memorising one alignment.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .stylegan2 import MappingNetwork, SynthesisNetwork

__all__ = ["BackgroundGenerator"]


class BackgroundGenerator(nn.Module):
    """Mapping + synthesis network whose canvas is cropped to the frame.

    The canvas is generated directly at its final, non-power-of-two side: the synthesis starts from a learned
    ``bg_const_size`` x ``bg_const_size`` constant at nominal resolution 8 (9 x 9 for ``bg_margin=0.125``) and
    doubles it ``log2(size / 8)`` times, giving ``cfg.bg_canvas_size`` = 288 px for 256 px frames. No
    interpolation is involved, so a window shift moves the features by exactly that many pixels. As for the face
    texture, channels 0-2 are the RGB skip image and channels 3.. the last feature map, so every layer is trained.

    Args:
        cfg: model configuration (``size``, ``bg_margin``, ``style_dim``, ``mapping_layers``, ``channel_base``,
            ``channel_max``, ``bg_feat_channels``).

    Shape:
        - z: :math:`(B, style\\_dim)`
        - offset: :math:`(B, 2)` integer (x, y) of the window's top-left corner in canvas pixels, or None (centred)
        - Output: :math:`(B, bg\\_feat\\_channels, size, size)`
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.size, self.canvas_size = cfg.size, cfg.bg_canvas_size
        channels = {r: c for r, c in cfg.channels(cfg.size).items() if r >= 8}
        channels[cfg.size] = cfg.bg_feat_channels - 3
        self.mapping = MappingNetwork(cfg.style_dim, cfg.style_dim, cfg.mapping_layers, lr_mul=cfg.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(cfg.size, cfg.style_dim, channels=channels,
                                          out_channels=3, start_res=8, const_size=cfg.bg_const_size)
        assert self.synthesis.out_size == self.canvas_size

    @property
    def max_offset(self) -> int:
        """Largest valid offset on each axis (canvas side minus frame side)."""
        return self.canvas_size - self.size

    def centre_offset(self, batch: int = 1, device: torch.device | str | None = None) -> Tensor:
        """(B, 2) long offsets of the centred window."""
        return torch.full((batch, 2), self.max_offset // 2, dtype=torch.long, device=device)

    def random_offset(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """(B, 2) long offsets drawn uniformly in [0, max_offset] on CPU (move them to the device yourself)."""
        return torch.randint(0, self.max_offset + 1, (batch, 2), generator=generator)

    def canvas(self, z: Tensor, noise: str | list | None = None) -> Tensor:
        """The whole background canvas :math:`(B, bg\\_feat\\_channels, canvas, canvas)`.

        ``noise`` as for :meth:`FaceGenerator.forward` (None: "random" in training, "const" in eval).
        """
        if z.dim() != 2 or z.shape[1] != self.cfg.style_dim:
            raise ValueError(f"BackgroundGenerator expects z (B, {self.cfg.style_dim}), got {tuple(z.shape)}")
        features, rgb = self.synthesis(self.mapping(z), noise)
        return torch.cat([rgb, features], dim=1)

    def crop(self, canvas: Tensor, offset: Tensor | None = None, batch: int | None = None) -> Tensor:
        """Cut ``size`` x ``size`` windows out of ``canvas``.

        Args:
            canvas: :math:`(B \\text{ or } 1, C, canvas, canvas)`; a batch of 1 is shared by every window.
            offset: :math:`(B, 2)` integer (x, y) top-left corners in [0, max_offset], or None (centred).
            batch: number of windows when ``offset`` is None (default: the canvas batch).

        Returns:
            :math:`(B, C, size, size)`.
        """
        n = self.canvas_size
        if canvas.dim() != 4 or canvas.shape[2:] != (n, n):
            raise ValueError(f"canvas must be (B, C, {n}, {n}), got {tuple(canvas.shape)}")
        return crop_windows(canvas, self.size, offset, batch)

    def forward(self, z: Tensor, noise: str | list | None = None, offset: Tensor | None = None) -> Tensor:
        """Generate the canvas for ``z`` and crop it at ``offset``.

        A single z (batch 1) with an offset batch B gives B windows of the same canvas.
        """
        canvas = self.canvas(z, noise)                              # (B or 1, C_b, canvas, canvas)
        batch = offset.shape[0] if offset is not None else z.shape[0]
        return self.crop(canvas, offset, batch=batch)               # (B, C_b, size, size)


def crop_windows(canvas: Tensor, size: int, offset: Tensor | None = None, batch: int | None = None) -> Tensor:
    """Cut ``size`` x ``size`` windows out of a background canvas (see :meth:`BackgroundGenerator.crop`).

    A function of the canvas alone, so inference can window a cached canvas without building the generator.

    Shape:
        - canvas: :math:`(B \\text{ or } 1, C, N, N)`; offset: :math:`(B, 2)` integer (x, y), or None (centred).
        - Output: :math:`(B, C, size, size)`.
    """
    max_offset = canvas.shape[-1] - size
    if offset is None:
        offset = torch.full((batch or canvas.shape[0], 2), max_offset // 2, dtype=torch.long)
    if offset.dim() != 2 or offset.shape[1] != 2 or offset.dtype.is_floating_point:
        raise ValueError(f"offset must be an integer (B, 2) tensor of (x, y), got {tuple(offset.shape)} "
                         f"{offset.dtype}")
    b = offset.shape[0]
    if canvas.shape[0] not in (1, b):
        raise ValueError(f"canvas batch must be 1 or {b} (the offset batch), got {tuple(canvas.shape)}")
    offs = offset.tolist()
    if any(not (0 <= v <= max_offset) for o in offs for v in o):
        raise ValueError(f"offsets must lie in [0, {max_offset}], got {offs}")
    windows = [canvas[i if canvas.shape[0] > 1 else 0, :, y:y + size, x:x + size] for i, (x, y) in enumerate(offs)]
    return torch.stack(windows)                                                   # (B, C, size, size)
