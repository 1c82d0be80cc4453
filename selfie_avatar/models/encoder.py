"""``CodeEncoder``: a small residual CNN that regresses head pose and expression codes from a face crop.

It replaces the landmark-and-fit path where speed matters (``reenact --fast``, the live loop)::

    crop (B, 3, S, S) in [-1, 1], plus two coordinate channels
      -> 3x3 stem, stride 2 -> residual stages (each halves the side) -> global average pool -> MLP head
      -> rotation  (B, 3, 3)  6D representation, Gram-Schmidt (continuous, unlike Euler angles or quaternions)
         scale     (B,)       crop pixels per model unit, ``scale_ref * exp(raw)`` relative to the crop side
         translation (B, 2)   crop pixels, ``0.5 + raw`` relative to the crop side (the crop centre at init)
         expression (B, 52)   MediaPipe blendshape scores in [0, 1] (sigmoid)

Pose is regressed relative to the crop side and converted to pixels of whatever size came in, so the same weights
serve any input size; conventions are those of ``tracking.npz`` (``screen = scale * R @ X + t``). Only the 52
person-independent scores are predicted: a subject's PCA codes mean nothing when another person drives.

Two coordinate channels (CoordConv) go in with the image: global pooling discards where features are, and the
translation head needs exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selfie_avatar.face_model.names import NUM_BLENDSHAPES
from selfie_avatar.geometry.rotation import rotation_6d_to_matrix
from selfie_avatar.tracking.codes import TorchCodes

__all__ = ["EncoderNetConfig", "CodeEncoder"]


@dataclass
class EncoderNetConfig:
    """Architecture of :class:`CodeEncoder` (plain values: round-trips through checkpoints and JSON).

    Args:
        size: input side the network is trained at (any side >= 16 works at inference).
        width: channels of the stem; they double per stage up to ``8 * width``.
        stages: residual stages after the stem, each halving the side (5 takes 128 px to 2 px).
        blocks_per_stage: residual blocks per stage (the first one strides).
        norm: ``'batch'`` (fastest at inference) or ``'group'`` (no train / eval difference).
        head_dim: hidden width of the MLP head.
        num_expression: expression scores predicted (the 52 MediaPipe blendshapes).
        scale_ref: typical relative scale (pixels per model unit / crop side); the scale output is
            ``scale_ref * exp(raw)``, so it starts near the training data's scale and stays positive.
    """

    size: int = 128
    width: int = 32
    stages: int = 5
    blocks_per_stage: int = 1
    norm: str = "batch"
    head_dim: int = 256
    num_expression: int = NUM_BLENDSHAPES
    scale_ref: float = 1.0

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if self.width < 4 or self.stages < 1 or self.blocks_per_stage < 1 or self.head_dim < 1:
            raise ValueError(f"width >= 4, stages >= 1, blocks_per_stage >= 1 and head_dim >= 1 are needed, got "
                             f"{self.width}, {self.stages}, {self.blocks_per_stage}, {self.head_dim}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")
        if self.num_expression < 1:
            raise ValueError(f"num_expression must be >= 1, got {self.num_expression}")
        if not self.scale_ref > 0:
            raise ValueError(f"scale_ref must be positive, got {self.scale_ref}")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(min(8, channels // 4), channels)


class _ResBlock(nn.Module):
    """Pre-activation-free basic block: conv-norm-relu-conv-norm + (1x1 strided) shortcut, then relu."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(norm, cout),
        )
        # Zero-initialised last norm: each block starts as its shortcut, which trains faster from scratch.
        nn.init.zeros_(self.body[-1].weight)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class CodeEncoder(nn.Module):
    """Face crop -> head pose and expression codes (see the module docstring).

    Args:
        config: an :class:`EncoderNetConfig`; keyword arguments override its fields (or build one when None).

    Shape:
        - image: :math:`(B, 3, S, S)` RGB in [-1, 1], any side :math:`S \\ge 16`
        - output of :meth:`forward`: ``rotation`` :math:`(B, 3, 3)`, ``scale`` :math:`(B,)`, ``translation``
          :math:`(B, 2)` in pixels of the input, ``expression`` :math:`(B, 52)` in [0, 1]

    Example:
        >>> enc = CodeEncoder(width=8).eval()
        >>> out = enc(torch.zeros(2, 3, 64, 64))
        >>> out.rotation.shape, out.translation.shape, out.expression.shape
        (torch.Size([2, 3, 3]), torch.Size([2, 2]), torch.Size([2, 52]))
    """

    def __init__(self, config: EncoderNetConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = EncoderNetConfig(**overrides)
        elif overrides:
            config = EncoderNetConfig(**{**config.__dict__, **overrides})
        self.config = cfg = config
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(5, w, 3, 2, 1, bias=False), _norm(cfg.norm, w), nn.ReLU(inplace=True)]
        cin = w
        for i in range(cfg.stages):
            cout = min(w * 2 ** i, 8 * w)
            for j in range(cfg.blocks_per_stage):
                layers.append(_ResBlock(cin, cout, 2 if j == 0 else 1, cfg.norm))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.head = nn.Sequential(nn.Linear(cin, cfg.head_dim), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.head_dim, 6 + 1 + 2 + cfg.num_expression))
        # A zero last layer makes the first prediction the identity rotation, the reference scale, the crop centre
        # and scores of 0.5: a sane start, and no early step wasted undoing a random pose.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("_identity_6d", torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), persistent=False)

    def _check(self, image: Tensor) -> None:
        if not isinstance(image, Tensor):
            raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[2] != image.shape[3] or image.shape[2] < 16:
            raise ValueError(f"image must be (B, 3, S, S) with S >= 16, got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"image must be a float tensor in [-1, 1], got {image.dtype}")

    def forward_relative(self, image: Tensor) -> TorchCodes:
        """Codes with pose relative to the crop side (what the losses compare; independent of the input size).

        Args:
            image: face crops in [-1, 1].

        Returns:
            :class:`TorchCodes`: rotation (B, 3, 3), scale (B,) = pixels per model unit / S, translation (B, 2) =
            pixels / S (0 and 1 are the crop's edges), expression (B, E) in [0, 1].

        Shape:
            - image: :math:`(B, 3, S, S)`
        """
        self._check(image)
        b, _, s, _ = image.shape
        # Pixel-centre coordinates in [-1, 1], the same convention as grid_sample with align_corners=False.
        ramp = (torch.arange(s, device=image.device, dtype=image.dtype) + 0.5) * (2.0 / s) - 1.0
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="xy"))[None].expand(b, 2, s, s)
        x = self.features(torch.cat([image, coords], 1)).mean((2, 3))
        raw = self.head(x)
        rot = rotation_6d_to_matrix(raw[:, :6] + self._identity_6d.to(raw.dtype))
        return TorchCodes(rot, self.config.scale_ref * torch.exp(raw[:, 6]), 0.5 + raw[:, 7:9],
                          torch.sigmoid(raw[:, 9:]))

    def forward(self, image: Tensor) -> TorchCodes:
        """Codes in the conventions of ``tracking.npz``, pose in pixels of the input.

        Args:
            image: face crops in [-1, 1].

        Returns:
            :class:`TorchCodes`: rotation (B, 3, 3) model -> camera, scale (B,) pixels per model unit, translation
            (B, 2) pixels (screen position of the model origin), expression (B, E) scores in [0, 1].

        Shape:
            - image: :math:`(B, 3, S, S)`
        """
        return self.forward_relative(image).scaled(image.shape[-1])
