"""The full avatar generator: G_fa (face texture) + warp + G_b (background window) + G_I (StyleUNet).

Both StyleGAN generators have a fixed latent code, so their outputs do not depend on the frame: they are computed
once per call with batch 1 and shared by the whole batch. StyleAvatar freezes them after some training steps and
caches their outputs; :meth:`AvatarGenerator.compute_cache` makes that cache and ``forward`` accepts it, after
which only the image generator runs (this is also what inference needs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfie_avatar.geometry.similarity import warp_images

from .background_generator import BackgroundGenerator
from .config import ModelConfig
from .face_generator import FaceGenerator
from .image_generator import ImageGenerator
from .warp import warp_texture

__all__ = ["AvatarGenerator"]


class AvatarGenerator(nn.Module):
    """Render + UV image (+ frame index) -> avatar frame, foreground mask and intermediate features.

    The latent codes ``z_f`` and ``z_b`` (:math:`(1, style\\_dim)` buffers) are drawn once at construction from a
    ``torch.Generator`` seeded with ``cfg.latent_seed``, independently of the global RNG, and saved with the
    weights.

    Args:
        cfg: model configuration.

    Shape:
        - render: :math:`(B, 3, S, S)` ``I_R`` in [-1, 1]
        - uv: :math:`(B, 3, S, S)` ``I_UV``: u, v, coverage mask, in [0, 1]
        - frame_index: :math:`(B,)` long or None (see :class:`ImageGenerator`)
        - bg_offset: :math:`(B, 2)` long (x, y) window corners in canvas pixels, or None (centred)
        - bg_warp: :math:`(B, 2, 2)` similarity about the frame centre applied to the windowed background
          features (training's rotation and zoom augmentation, ``training/shift.py``), or None
        - face_texture: cached :math:`(1 \\text{ or } B, C_f, T, T)` (with the photo texture, as
          :meth:`compute_cache` makes it) or None (run G_fa)
        - bg_canvas: cached :math:`(1 \\text{ or } B, C_b, N, N)` (N = ``cfg.bg_canvas_size``) or None (run G_b)
        - plate: :math:`(B \\text{ or } 1, 3, S, S)` background plate in [-1, 1], windowed like the frame (required
          with ``cfg.use_background_plate``, else None)
        - reference: :math:`(B, 6, S, S)` the reference bank's answer, shifted like the frame (required with
          ``cfg.reference_frames``, else None; ``models/reference.py``)
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.face_generator = FaceGenerator(cfg)
        self.background_generator = BackgroundGenerator(cfg)
        self.image_generator = ImageGenerator(cfg)
        g = torch.Generator().manual_seed(cfg.latent_seed)
        self.register_buffer("z_f", self.face_generator.sample_z(1, generator=g, device="cpu"))
        self.register_buffer("z_b", self.face_generator.sample_z(1, generator=g, device="cpu"))
        if cfg.photo_texture:
            # The training frames unwrapped into UV (models/photo_texture.py), added to G_fa's RGB view, which the
            # image generator shows as the face's colour by a learned weight; zero until training fills it
            # (training/data.py::fill_photo_texture). G_fa's own RGB layers start at zero (a random StyleGAN2
            # RGB image has a spread of about 1.4, more than the photo's): the view starts as the photo, and G_fa
            # learns what it lacks. Zeroed after construction, so every layer draws the weights it draws without.
            self.register_buffer("photo_texture", torch.zeros(1, 3, cfg.texture_size, cfg.texture_size))
            synthesis = self.face_generator.synthesis
            with torch.no_grad():
                for to_rgb in [synthesis.to_rgb1, *synthesis.to_rgbs]:
                    to_rgb.conv.weight.zero_()

    def face_texture(self, noise: str | list | None = None) -> Tensor:
        """G_fa's texture for the fixed code, with the photo texture added to its RGB view when there is one.

        Returns:
            :math:`(1, C_f, T, T)`.
        """
        texture, _ = self.face_generator(self.z_f, noise)                       # (1, C_f, T, T)
        if self.cfg.photo_texture:
            texture = torch.cat([texture[:, :3] + self.photo_texture, texture[:, 3:]], dim=1)
        return texture

    @torch.no_grad()
    def compute_cache(self) -> dict[str, Tensor]:
        """Outputs of G_fa and G_b for the fixed codes, with the fixed ("const") noise buffers so the cache is
        deterministic and identical to ``forward(..., noise="const")``.

        Returns:
            dict with ``face_texture`` :math:`(1, C_f, T, T)`, ``texture_rgb`` :math:`(1, 3, T, T)` and
            ``bg_canvas`` :math:`(1, C_b, N, N)`, all detached.
        """
        texture = self.face_texture(noise="const")
        canvas = self.background_generator.canvas(self.z_b, noise="const")
        return {"face_texture": texture, "texture_rgb": texture[:, :3], "bg_canvas": canvas}

    def forward(self, render: Tensor, uv: Tensor, frame_index: Tensor | None = None, bg_offset: Tensor | None = None,
                face_texture: Tensor | None = None, bg_canvas: Tensor | None = None,
                image_generator: ImageGenerator | None = None, noise: str | None = None,
                plate: Tensor | None = None, bg_warp: Tensor | None = None,
                reference: Tensor | None = None) -> dict[str, Tensor | None]:
        """Args:
            render, uv, frame_index, bg_offset, face_texture, bg_canvas, plate, bg_warp: see the class docstring.
            image_generator: run this image generator instead of ``self.image_generator`` (e.g. an EMA copy).
            noise: ``"random"``, ``"const"``, ``"zero"`` or None ("random" for modules in training mode, "const" in
                eval mode), used by all three generators.

        Returns:
            dict with ``image`` :math:`(B, 3, S, S)`, ``mask`` :math:`(B, 1, S, S)`, ``bg_mask``
            :math:`(B, 1, S, S)` (see :class:`ImageGenerator`), ``face_features`` :math:`(B, C_f, S, S)` (warped
            texture, zero off the face), ``texture`` :math:`(1, C_f, T, T)` (the texture used, shared by the
            batch), ``texture_rgb`` :math:`(1, 3, T, T)` (its first three channels, the RGB view),
            ``bg_features`` :math:`(B, C_b, S, S)` and, when one was given, ``reference`` (as it was).
        """
        s = self.cfg.size
        if render.dim() != 4 or render.shape[1:] != (3, s, s):
            raise ValueError(f"render must be (B, 3, {s}, {s}), got {tuple(render.shape)}")
        b = render.shape[0]
        if uv.shape != (b, 3, s, s):
            raise ValueError(f"uv must be ({b}, 3, {s}, {s}) with channels u, v, mask, got {tuple(uv.shape)}")
        if noise is not None and not isinstance(noise, str):
            raise ValueError("AvatarGenerator noise must be a mode string or None; pass per-layer tensors to the "
                             "generators themselves")

        if face_texture is None:
            face_texture = self.face_texture(noise)                              # (1, C_f, T, T)
        face_features = warp_texture(face_texture, uv)                           # (B, C_f, S, S)
        if bg_canvas is None:
            bg_canvas = self.background_generator.canvas(self.z_b, noise)       # (1, C_b, N, N)
        bg_features = self.background_generator.crop(bg_canvas, bg_offset, batch=b)   # (B, C_b, S, S)
        if bg_warp is not None:
            bg_features = warp_images(bg_features, bg_warp.to(bg_features), bg_features.new_zeros(b, 2),
                                      padding_mode="zeros")

        g_i = image_generator if image_generator is not None else self.image_generator
        out = g_i(render, face_features, uv[:, 2:3], bg_features, frame_index=frame_index, noise=noise, plate=plate,
                  reference=reference)
        return {**out, "face_features": face_features, "texture": face_texture, "texture_rgb": face_texture[:, :3],
                "bg_features": bg_features, **({} if reference is None else {"reference": reference})}
