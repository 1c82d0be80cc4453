"""``ModelConfig``: every architecture setting of the avatar networks, with presets.

Channel counts follow StyleGAN2's rule ``min(base // res, max)`` per resolution, separately for the StyleGAN
generators (face texture, background), the StyleUNet image generator and the discriminator. The config holds
plain values only, so ``dataclasses.asdict`` / ``ModelConfig(**d)`` round-trip through checkpoints and JSON.

Presets (measured with ``benchmarks/models.py`` on the 2-core development CPU, torch 2.14, batch 4; "train step"
is the network part of a step: G forward, D on real and fake, D backward, D on fake again, G backward; no VGG
loss, no optimiser):

=======  ====  =======  ===============================================  ======  ===========  ==============
preset   size  texture  G params (face + background + image)             D       train step   inference
=======  ====  =======  ===============================================  ======  ===========  ==============
tiny     64    64       0.20 M (0.069 + 0.049 + 0.085)                   0.07 M  ~0.11 s      ~3 ms/frame
cpu      128   128      3.27 M (1.14 + 0.80 + 1.33)                      1.19 M  ~0.6 s       ~18 ms/frame
full     512   512      75.6 M (24.9 + 19.4 + 31.4)                      24.0 M  GPU          GPU
=======  ====  =======  ===============================================  ======  ===========  ==============

Tiny: one forward + backward of G and D at batch 2 takes ~0.07 s. After G_fa and G_b are frozen and cached, the
cpu preset's step loses ~0.12 s (they run at batch 1 either way: their latent codes are fixed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .stylegan2.synthesis import channel_dict, is_power_of_two

__all__ = ["ModelConfig"]


@dataclass
class ModelConfig:
    """Architecture of the avatar generator and discriminator (defaults: 256 px, one GPU).

    Args:
        size: output frame side (power of two, >= 32); ``I_R`` and ``I_UV`` have this size.
        texture_size: side of the neural texture in UV space (power of two, >= 16).
        style_dim: width of z and w (all generators).
        mapping_layers: layers of each mapping network (face, background, time code).
        mapping_lr_mul: learning-rate multiplier of the mapping networks.
        channel_base: face and background StyleGAN channels: ``min(channel_base // res, channel_max)``.
        channel_max: see ``channel_base``.
        face_feat_channels: channels of the neural face texture (>= 4: the first three are its RGB view).
        bg_feat_channels: channels of the background feature map (>= 4, laid out like the texture).
        unet_channel_base: StyleUNet channels per resolution (same rule).
        unet_channel_max: see ``unet_channel_base``.
        unet_min_res: resolution of the StyleUNet bottleneck (power of two, >= 4, < size).
        disc_channel_base: discriminator channels per resolution (same rule).
        disc_channel_max: see ``disc_channel_base``.
        mbstd_group: discriminator minibatch-std group size.
        bg_margin: extra background canvas on each axis, as a fraction of ``size``; the canvas side is
            ``ceil(8 * (1 + bg_margin)) * size / 8`` (288 px for 256 px frames with 0.125), and the frame is a
            sliding window inside it (translation augmentation).
        use_time_code: condition the image generator on a learned per-frame code (else one learned style).
        use_background_plate: give the image generator the subject's background plate (prepare's
            ``background.png``), windowed like the frame: it enters the StyleUNet encoder and is added where the
            fusion mask selects the background, so ``G_b`` only models what the plate lacks. False for
            checkpoints written before the plate existed; every preset turns it on.
        face_is_foreground: with the plate, the face region (``I_UV``'s coverage with its eye and mouth holes
            filled, :func:`~selfie_avatar.models.image_generator.filled_face`) counts as foreground in the plate
            composite whatever the predicted mask says there, so the wall cannot show through the eyes or an open
            mouth while the mask is still learning that they are person. False for checkpoints written before it
            existed; on in the ``tiny`` and ``lite`` presets (measured in the README: it removed the ``lite``
            avatar's ghosted eyes), off in ``cpu`` (no gain measured at 128 px) and ``full`` (not measured).
        num_frames: number of training frames (rows of the time-code embedding).
        reference_frames: how many training frames the reference bank keeps (``models/reference.py``): the image
            generator also sees the bank's frame nearest in head pose, moved with the head and as filmed, and may
            show it outside the face. 0: no bank (checkpoints from before it, and ``full``, not measured on a GPU;
            at 512 px 256 frames are 200 MB in every checkpoint). 256 on ``cpu`` and ``lite`` (measured in the
            README: test LPIPS 0.11 -> 0.06 on ``selfie_d6`` at 128 px, PSNR unchanged), 16 on ``tiny``.
        reference_feather: half-width of the band across the face's outline over which the reference fades out,
            as a fraction of ``size`` (:func:`~selfie_avatar.models.image_generator.outside_face`). 0: a hard edge
            (checkpoints from before it), which left a seam across the forehead where the mesh ends and another
            frame's skin began. The photo texture's weight fades over the same width at the edge of the face
            model's coverage (:func:`~selfie_avatar.models.image_generator.inside_cover`). 1/64 (2 px at 128) on the
            presets with a bank.
        photo_texture: the training frames unwrapped into UV and averaged (``models/photo_texture.py``) start
            ``G_fa``'s RGB view (its own RGB layers start at zero), and the image generator shows that view as the
            face's colour by a weight it predicts (starting at 0.88), so the face has its colours from the first
            step. False for checkpoints written before it; on in the presets with a reference bank.
        latent_seed: seed of the fixed latent codes z_f and z_b.
    """

    size: int = 256
    texture_size: int = 256
    style_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 16384
    channel_max: int = 512
    face_feat_channels: int = 32
    bg_feat_channels: int = 32
    unet_channel_base: int = 16384
    unet_channel_max: int = 512
    unet_min_res: int = 8
    disc_channel_base: int = 16384
    disc_channel_max: int = 512
    mbstd_group: int = 4
    bg_margin: float = 0.125
    use_time_code: bool = False
    use_background_plate: bool = False
    face_is_foreground: bool = False
    num_frames: int = 1
    latent_seed: int = 0
    reference_frames: int = 0
    reference_feather: float = 0.0
    photo_texture: bool = False

    def __post_init__(self) -> None:
        if not is_power_of_two(self.size) or self.size < 32:
            raise ValueError(f"size must be a power of two >= 32, got {self.size}")
        if not is_power_of_two(self.texture_size) or self.texture_size < 16:
            raise ValueError(f"texture_size must be a power of two >= 16, got {self.texture_size}")
        if not is_power_of_two(self.unet_min_res) or not 4 <= self.unet_min_res < self.size:
            raise ValueError(f"unet_min_res must be a power of two in [4, size), got {self.unet_min_res}")
        if not 0.0 <= self.bg_margin <= 1.0:
            raise ValueError(f"bg_margin must be in [0, 1], got {self.bg_margin}")
        if self.face_feat_channels < 4 or self.bg_feat_channels < 4:
            raise ValueError(f"face_feat_channels and bg_feat_channels must be >= 4 (3 RGB + features), got "
                             f"{self.face_feat_channels} and {self.bg_feat_channels}")
        if isinstance(self.reference_frames, bool) or not isinstance(self.reference_frames, int) \
                or self.reference_frames < 0:
            raise ValueError(f"reference_frames must be an integer >= 0, got {self.reference_frames!r}")
        if not 0.0 <= self.reference_feather <= 0.25:
            raise ValueError(f"reference_feather must be in [0, 0.25] (a fraction of size), got "
                             f"{self.reference_feather!r}")
        if self.mapping_lr_mul <= 0:
            raise ValueError(f"mapping_lr_mul must be positive, got {self.mapping_lr_mul}")
        for name in ("style_dim", "mapping_layers", "channel_base", "channel_max", "face_feat_channels",
                     "bg_feat_channels", "unet_channel_base", "unet_channel_max", "disc_channel_base",
                     "disc_channel_max", "mbstd_group", "num_frames"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")

    # -- derived sizes ----------------------------------------------------------------------------------------
    @property
    def bg_canvas_size(self) -> int:
        """Side of the background canvas: a whole number of 1/8 frames, at least ``size * (1 + bg_margin)``."""
        return self.bg_const_size * self.size // 8

    @property
    def bg_const_size(self) -> int:
        """Side of the background generator's learned constant (nominal resolution 8)."""
        return math.ceil(8 * (1 + self.bg_margin) - 1e-9)  # the epsilon keeps 8 * 1.125 at 9 despite rounding

    def channels(self, max_res: int) -> dict[int, int]:
        """Face/background StyleGAN channels for resolutions 4 .. max_res."""
        return channel_dict(max_res, self.channel_base, self.channel_max)

    def unet_channels(self) -> dict[int, int]:
        """StyleUNet channels for resolutions unet_min_res .. size."""
        return channel_dict(self.size, self.unet_channel_base, self.unet_channel_max, min_res=self.unet_min_res)

    def disc_channels(self) -> dict[int, int]:
        """Discriminator channels for resolutions 4 .. size."""
        return channel_dict(self.size, self.disc_channel_base, self.disc_channel_max)

    # -- presets -------------------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """The networks of a named preset (:data:`NETWORK_PRESETS`; the names and their help are
        ``selfie_avatar.config.PRESETS``, the training schedule of each is ``training/presets.py``).

        Raises:
            ValueError: an unknown preset name.
        """
        if name not in NETWORK_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose {', '.join(NETWORK_PRESETS)}")
        return cls(**{"use_background_plate": True, **NETWORK_PRESETS[name], **overrides})


# The network sizes of each preset; every other field keeps its default.
NETWORK_PRESETS: dict[str, dict] = {
    # 64 px, a few channels: tests (forward + backward of G and D at batch 2 in ~0.07 s on 2 CPU cores).
    "tiny": dict(size=64, texture_size=64, style_dim=32, mapping_layers=2, channel_base=512, channel_max=32,
                 face_feat_channels=8, bg_feat_channels=8, unet_channel_base=512, unet_channel_max=32,
                 unet_min_res=8, disc_channel_base=512, disc_channel_max=32, face_is_foreground=True,
                 reference_frames=16, reference_feather=1 / 64, photo_texture=True),
    # 128 px with small channels: the CPU demo.
    "cpu": dict(size=128, texture_size=128, style_dim=128, mapping_layers=4, channel_base=2048, channel_max=128,
                face_feat_channels=16, bg_feat_channels=16, unet_channel_base=2048, unet_channel_max=128,
                unet_min_res=8, disc_channel_base=2048, disc_channel_max=128, reference_frames=256,
                reference_feather=1 / 64, photo_texture=True),
    # 256 px with narrow channels: real-time inference on a CPU (the live loop's CPU preset).
    "lite": dict(size=256, texture_size=256, style_dim=128, mapping_layers=4, channel_base=2048, channel_max=128,
                 face_feat_channels=16, bg_feat_channels=16, unet_channel_base=2048, unet_channel_max=64,
                 unet_min_res=16, disc_channel_base=2048, disc_channel_max=128, face_is_foreground=True,
                 reference_frames=256, reference_feather=1 / 64, photo_texture=True),
    # 512 px, one GPU. StyleGAN2's channel counts (512 up to 32 px, halving to 32 at 512 px) for every network;
    # StyleAvatar's own generator is a DoubleStyleUnet (a first StyleUNet at half resolution that fuses the face
    # texture and background features, a second one that decodes the fused features at full size, wavelet up- and
    # down-sampling), of which this single StyleUNet at output size is a simplification.
    "full": dict(size=512, texture_size=512, style_dim=512, mapping_layers=8, channel_base=16384, channel_max=512,
                 face_feat_channels=32, bg_feat_channels=32, unet_channel_base=16384, unet_channel_max=512,
                 unet_min_res=8, disc_channel_base=16384, disc_channel_max=512),
}
