"""2D similarity warps (zoom, in-plane rotation, shift) of images and points, in relative crop coordinates.

The one home of the warp that the encoder's augmentation and the avatar's training augmentation share: points and
pixels move by ``p' = c + A (p - c) + shift`` with ``c`` the crop centre (0.5, 0.5), positions as fractions of the
crop side, and ``grid_sample`` at ``align_corners=False`` (the package's pixel-centre convention: pixel j covers
[j, j + 1) and is sampled at j + 0.5), so an image and its targets move together to sub-pixel accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["similarity_matrix", "warp_images", "warp_points"]


def similarity_matrix(k: Tensor, angle: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    """2D similarity about the crop centre in relative coordinates: ``p' = c + A (p - c) + shift``.

    Args:
        k: zoom factors.
        angle: in-plane rotation in radians (screen axes: x right, y down, as ``Rz`` in :mod:`geometry.rotation`).
        shift: translation, fractions of the crop side.

    Returns:
        ``A = k Rz(angle)`` (B, 2, 2) and ``shift`` (B, 2).

    Shape:
        - k, angle: :math:`(B,)`
        - shift: :math:`(B, 2)`
    """
    if k.dim() != 1 or angle.shape != k.shape or shift.shape != (k.shape[0], 2):
        raise ValueError(f"k and angle must be (B,) and shift (B, 2), got {tuple(k.shape)}, {tuple(angle.shape)} "
                         f"and {tuple(shift.shape)}")
    c, s = torch.cos(angle), torch.sin(angle)
    A = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2) * k[:, None, None]
    return A, shift


def warp_points(points: Tensor, A: Tensor, shift: Tensor) -> Tensor:
    """Apply :func:`similarity_matrix`'s transform to relative points (B, P, 2) -> (B, P, 2)."""
    return 0.5 + (points - 0.5) @ A.transpose(-1, -2) + shift[:, None, :]


def warp_images(images: Tensor, A: Tensor, shift: Tensor, padding_mode: str = "reflection",
                mode: str = "bilinear") -> Tensor:
    """Resample images so that content at relative position ``p`` moves to ``c + A (p - c) + shift``.

    Args:
        images: the images to move.
        A, shift: the transform (:func:`similarity_matrix`).
        padding_mode: ``grid_sample``'s fill of what comes from outside (``"zeros"``, ``"border"``,
            ``"reflection"``).
        mode: ``"bilinear"``, ``"bicubic"`` or ``"nearest"`` (the last keeps values exact, e.g. UV coordinates).

    Shape:
        - images: :math:`(B, C, H, W)` float
        - A: :math:`(B, 2, 2)`, shift: :math:`(B, 2)`
        - output: :math:`(B, C, H, W)`
    """
    if images.dim() != 4 or A.shape != (images.shape[0], 2, 2) or shift.shape != (images.shape[0], 2):
        raise ValueError(f"images must be (B, C, H, W) with A (B, 2, 2) and shift (B, 2), got "
                         f"{tuple(images.shape)}, {tuple(A.shape)} and {tuple(shift.shape)}")
    # In grid units u = 2 p - 1 (centre 0): u' = A u + 2 shift, so the output samples u = A^-1 (u' - 2 shift).
    inv = torch.linalg.inv(A)
    theta = torch.cat([inv, -(inv @ (2 * shift)[..., None])], -1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
