"""G_fa: a StyleGAN2 generator whose output is a neural texture in UV space (StyleAvatar section 3.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .stylegan2 import MappingNetwork, SynthesisNetwork

__all__ = ["FaceGenerator"]


class FaceGenerator(nn.Module):
    """Mapping + synthesis network producing a ``face_feat_channels`` neural texture and its RGB view.

    The texture is indexed by the face model's UV coordinates, so a texel follows the same point of the face in
    every frame. In StyleAvatar z is fixed per subject: :class:`~selfie_avatar.models.avatar.AvatarGenerator` draws
    one z once (from a seeded generator, see :meth:`sample_z`) and keeps it as a buffer, so the texture is learned
    through the network weights; any z can be passed here.

    Texture layout: channels 0-2 are the synthesis network's RGB skip image (the sum of the ToRGB outputs of every
    resolution), channels 3.. are its last feature map (``face_feat_channels - 3`` channels). Putting the RGB view
    inside the texture means the image generator sees it, so it is trained like the rest of the texture and every
    ToRGB layer gets gradients (a visual-only output would stay random); a loss can also pull it towards the photo,
    as Deferred Neural Rendering does with the first three texture channels. The returned ``rgb`` is
    ``features[:, :3]``.

    Args:
        cfg: model configuration (``texture_size``, ``style_dim``, ``mapping_layers``, ``channel_base``,
            ``channel_max``, ``face_feat_channels``).

    Shape:
        - z: :math:`(B, style\\_dim)`
        - Output: features :math:`(B, face\\_feat\\_channels, T, T)`, rgb :math:`(B, 3, T, T)`, T = texture_size.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        channels = cfg.channels(cfg.texture_size)
        channels[cfg.texture_size] = cfg.face_feat_channels - 3
        self.mapping = MappingNetwork(cfg.style_dim, cfg.style_dim, cfg.mapping_layers, lr_mul=cfg.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(cfg.texture_size, cfg.style_dim, channels=channels, out_channels=3)

    def sample_z(self, batch: int = 1, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> Tensor:
        """Standard-normal latent codes :math:`(B, style\\_dim)`; drawn on CPU from ``generator`` (reproducible
        whatever the device), then moved to ``device`` (default: this module's device)."""
        if device is None:
            device = self.synthesis.const.device
        return torch.randn(batch, self.cfg.style_dim, generator=generator).to(device)

    def forward(self, z: Tensor, noise: str | list | None = None) -> tuple[Tensor, Tensor]:
        """Args:
            z: latent codes.
            noise: ``"random"``, ``"const"`` (fixed buffers), ``"zero"``, a list of per-layer tensors, or None
                ("random" in training mode, "const" in eval mode).

        Returns:
            (features, rgb).
        """
        if z.dim() != 2 or z.shape[1] != self.cfg.style_dim:
            raise ValueError(f"FaceGenerator expects z (B, {self.cfg.style_dim}), got {tuple(z.shape)}")
        features, rgb = self.synthesis(self.mapping(z), noise)       # (B, C_f - 3, T, T), (B, 3, T, T)
        texture = torch.cat([rgb, features], dim=1)                  # (B, C_f, T, T)
        return texture, texture[:, :3]
