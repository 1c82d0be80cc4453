"""Foreground-weighted L1 reconstruction loss, with extra weight on the face and an optional mask term."""

from __future__ import annotations

import torch
from torch import nn

_EPS = 1e-8


def _check_map(name: str, m: torch.Tensor, ref: torch.Tensor) -> None:
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(m).__name__}")
    b, _, h, w = ref.shape
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] != b or m.shape[2:] != (h, w):
        raise ValueError(f"{name} must be ({b}, 1, {h}, {w}) to match the images, got {tuple(m.shape)}")


def foreground_reconstruction_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    matte: torch.Tensor,
    face_mask: torch.Tensor | None = None,
    face_weight: float = 2.0,
    pred_mask: torch.Tensor | None = None,
    target_mask: torch.Tensor | None = None,
    mask_weight: float = 1.0,
    background_weight: float = 0.0,
) -> torch.Tensor:
    """L1 between generated and real frames, weighted by the foreground matte.

    Per pixel the weight is ``(matte + background_weight * (1 - matte)) * (1 + (face_weight - 1) * face_mask)``:
    with the default ``background_weight = 0`` the background counts nothing and the face ``face_weight`` times
    the rest of the foreground. A small background weight lets the background generator learn the plate too
    (training uses 0.2, see ``GeneratorLoss``); without it only the adversarial loss shapes the background. Each frame's weighted error is divided by the
    sum of its weights (times the channel count), so the value is a weighted mean absolute error that does not
    depend on how much of the frame the subject fills; frames are then averaged. A frame with an empty matte
    contributes 0.

    When ``pred_mask`` is given, ``mask_weight * mean|pred_mask - target_mask|`` over the whole frame is added,
    with ``target_mask`` defaulting to ``matte`` (the prepared matte is the mask target).

    Args:
        fake: generated frames.
        real: real frames, same range as ``fake``.
        matte: soft foreground matte in [0, 1].
        face_mask: face region in [0, 1]; ``None`` weights the whole foreground alike.
        face_weight: relative weight of the face (>= 0; 1 disables the emphasis).
        pred_mask: the generator's predicted foreground mask, if it has one.
        target_mask: target for ``pred_mask`` (default: ``matte``).
        mask_weight: weight of the mask term.
        background_weight: weight of background pixels relative to foreground ones (in [0, 1]).

    Returns:
        Scalar loss.

    Shape:
        - fake, real: :math:`(B, C, H, W)`.
        - matte, face_mask, pred_mask, target_mask: :math:`(B, 1, H, W)`.
        - Output: :math:`()`.
    """
    if not isinstance(fake, torch.Tensor) or not isinstance(real, torch.Tensor):
        raise TypeError("fake and real must be tensors")
    if fake.ndim != 4:
        raise ValueError(f"fake must be (B, C, H, W), got {tuple(fake.shape)}")
    if real.shape != fake.shape:
        raise ValueError(f"real has shape {tuple(real.shape)}, fake has {tuple(fake.shape)}; they must match")
    _check_map("matte", matte, fake)
    if face_weight < 0:
        raise ValueError(f"face_weight must be >= 0, got {face_weight}")

    if not 0.0 <= background_weight <= 1.0:
        raise ValueError(f"background_weight must be in [0, 1], got {background_weight}")
    weight = matte + background_weight * (1.0 - matte) if background_weight else matte
    if face_mask is not None:
        _check_map("face_mask", face_mask, fake)
        weight = weight * (1.0 + (face_weight - 1.0) * face_mask)
    err = (fake - real).abs().mean(dim=1, keepdim=True)
    per_frame = (weight * err).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(_EPS)
    loss = per_frame.mean()

    if pred_mask is not None:
        _check_map("pred_mask", pred_mask, fake)
        target = matte if target_mask is None else target_mask
        _check_map("target_mask", target, fake)
        loss = loss + mask_weight * (pred_mask - target).abs().mean()
    elif target_mask is not None:
        raise ValueError("target_mask was given without pred_mask")
    return loss


class ForegroundReconstructionLoss(nn.Module):
    """Module form of :func:`foreground_reconstruction_loss`.

    Args:
        face_weight: relative weight of the face region.
        mask_weight: weight of the predicted-mask term.
        background_weight: weight of background pixels relative to the foreground.

    Shape:
        - fake, real: :math:`(B, C, H, W)`; matte, face_mask, pred_mask, target_mask: :math:`(B, 1, H, W)`.
        - Output: :math:`()`.
    """

    def __init__(self, face_weight: float = 2.0, mask_weight: float = 1.0, background_weight: float = 0.0) -> None:
        super().__init__()
        if face_weight < 0:
            raise ValueError(f"face_weight must be >= 0, got {face_weight}")
        self.face_weight = float(face_weight)
        self.mask_weight = float(mask_weight)
        self.background_weight = float(background_weight)

    def forward(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        matte: torch.Tensor,
        face_mask: torch.Tensor | None = None,
        pred_mask: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return foreground_reconstruction_loss(
            fake, real, matte, face_mask, self.face_weight, pred_mask, target_mask, self.mask_weight,
            self.background_weight,
        )

    def extra_repr(self) -> str:
        return (f"face_weight={self.face_weight}, mask_weight={self.mask_weight}, "
                f"background_weight={self.background_weight}")
