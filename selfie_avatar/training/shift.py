"""Augmentation that keeps a sample aligned: the frame, every map and the background window move together.

StyleAvatar shifts the whole training sample on alternate steps: the real frame, ``I_R``, ``I_UV``, the matte and
the background plate are translated by the same (dx, dy), and the background generator's window moves the opposite
way on its canvas, so the static background still lines up with the target. Pixels that come in from outside the
frame have no real counterpart; :func:`shift_batch` marks them in ``valid`` and the training step copies the real
frame into them (:func:`composite_border`), so no loss and no discriminator ever sees them.

    content at (x, y)  ->  (x + dx, y + dy)
    window offset      =   centre - (dx, dy)      (the frame now shows the canvas dx further left)

On the same steps an optional in-plane rotation and zoom about the frame centre (:func:`draw_similarity`,
:func:`warp_batch`; not in StyleAvatar) turns the shifted sample further, and the generator turns its background
features by the same transform (``AvatarGenerator(bg_warp=...)``). It was meant to teach the image generator that
the hair follows the face's render when the head rolls or comes closer, because the hair outline on held-out frames
rolled beyond the training frames' range is where the ``cpu`` avatar's error concentrated
(``benchmarks/error_regions.py``); measured on ``selfie_d6`` it left that outline as it was (README), so every
preset leaves it off. RGB maps are resampled bicubically, the masks bilinearly and ``I_UV`` nearest (its
coordinates must stay exact); pixels that any part of the resampling took from outside join the border in
``valid``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from selfie_avatar.geometry.similarity import similarity_matrix, warp_images

__all__ = ["SHIFTED_KEYS", "composite_border", "draw_shifts", "draw_similarity", "shift_batch", "shift_images",
           "warp_batch"]

#: Per-pixel entries of a training batch that move with the frame.
SHIFTED_KEYS = ("image", "render", "uv", "matte", "face_mask", "plate", "reference")


def shift_images(x: Tensor, shifts: Tensor, fill: float = 0.0) -> Tensor:
    """Translate each image of a batch by a whole number of pixels.

    Args:
        x: images.
        shifts: (dx, dy) per image; positive moves the content right / down.
        fill: value of the pixels that enter from outside.

    Returns:
        The shifted images, same shape.

    Shape:
        - x: :math:`(B, C, H, W)`; shifts: :math:`(B, 2)` integer.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got {tuple(x.shape)}")
    if shifts.shape != (x.shape[0], 2) or shifts.dtype.is_floating_point:
        raise ValueError(f"shifts must be an integer ({x.shape[0]}, 2) tensor of (dx, dy), got "
                         f"{tuple(shifts.shape)} {shifts.dtype}")
    h, w = x.shape[-2:]
    m = int(shifts.abs().max()) if shifts.numel() else 0
    if m >= min(h, w):
        raise ValueError(f"shifts of {m} px leave nothing of a {h}x{w} image")
    if m == 0:
        return x
    padded = F.pad(x, (m, m, m, m), value=fill)
    out = [padded[i, :, m - dy:m - dy + h, m - dx:m - dx + w] for i, (dx, dy) in enumerate(shifts.tolist())]
    return torch.stack(out)


def draw_shifts(batch: int, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, 2) integer shifts around 0: normal with sigma ``max_shift / 3``, clipped to ``[-max_shift, max_shift]``
    (StyleAvatar draws its window offsets around the centre the same way)."""
    if max_shift <= 0:
        return torch.zeros(batch, 2, dtype=torch.long)
    s = torch.randn(batch, 2, generator=generator) * (max_shift / 3)
    return s.round().clamp(-max_shift, max_shift).long()


def _pixel_maps(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The entries of :data:`SHIFTED_KEYS` in ``batch``, one copy per sample (a shared map, the plate, expanded)."""
    b = batch["image"].shape[0]
    return {key: v.expand(b, -1, -1, -1) if v.shape[0] == 1 and b > 1 else v
            for key, v in batch.items() if key in SHIFTED_KEYS}


def shift_batch(batch: dict[str, Tensor], shifts: Tensor) -> dict[str, Tensor]:
    """The batch with every per-pixel entry of :data:`SHIFTED_KEYS` translated by ``shifts`` and a ``valid`` mask
    (1 where the pixel comes from inside the frame). Other entries (``frame_index``) are kept as they are.

    Shape:
        - batch values: :math:`(B, C, S, S)`; shifts: :math:`(B, 2)` integer (dx, dy).
        - ``valid``: :math:`(B, 1, S, S)`.
    """
    image = batch["image"]
    out = dict(batch)
    for key, value in _pixel_maps(batch).items():
        out[key] = shift_images(value, shifts)
    ones = torch.ones(image.shape[0], 1, *image.shape[2:], dtype=image.dtype, device=image.device)
    out["valid"] = shift_images(ones, shifts)
    return out


# How each per-pixel entry is resampled by warp_batch: exact values for the UV coordinates, sharp RGB.
_WARP_MODES = {"image": "bicubic", "plate": "bicubic", "reference": "bicubic", "render": "bicubic", "uv": "nearest",
               "matte": "bilinear", "face_mask": "bilinear"}


def draw_similarity(batch: int, max_degrees: float, max_zoom: float,
                    generator: torch.Generator | None = None) -> Tensor:
    """(B, 2, 2) similarity matrices ``k Rz(angle)``: the angle normal with sigma ``max_degrees / 3`` clipped to
    ``+-max_degrees``, the zoom ``k = exp(z)`` with ``z`` normal with sigma ``log(1 + max_zoom) / 3``, clipped
    likewise (both drawn around the identity, as :func:`draw_shifts` draws its shifts)."""
    if max_degrees < 0 or max_zoom < 0:
        raise ValueError(f"max_degrees and max_zoom must be >= 0, got {max_degrees} and {max_zoom}")
    r = torch.randn(batch, 2, generator=generator).clamp(-3, 3) / 3
    angle = r[:, 0] * math.radians(max_degrees)
    k = torch.exp(r[:, 1] * math.log1p(max_zoom))
    A, _ = similarity_matrix(k, angle, torch.zeros(batch, 2))
    return A


def warp_batch(batch: dict[str, Tensor], A: Tensor) -> dict[str, Tensor]:
    """The batch with every per-pixel entry of :data:`SHIFTED_KEYS` turned and zoomed by ``A`` about the frame
    centre, and ``valid`` (all ones if the batch had none) cleared wherever the resampling reached outside the
    frame or into an invalid pixel.

    Shape:
        - batch values: :math:`(B, C, S, S)`; A: :math:`(B, 2, 2)` (:func:`draw_similarity`).
    """
    image = batch["image"]
    b = image.shape[0]
    if A.shape != (b, 2, 2):
        raise ValueError(f"A must be ({b}, 2, 2), got {tuple(A.shape)}")
    A = A.to(device=image.device, dtype=image.dtype)
    zero = torch.zeros(b, 2, device=image.device, dtype=image.dtype)
    out = dict(batch)
    for key, value in _pixel_maps(batch).items():
        warped = warp_images(value, A, zero, padding_mode="zeros", mode=_WARP_MODES[key])
        out[key] = warped.clamp(-1, 1) if _WARP_MODES[key] == "bicubic" else warped
    valid = batch.get("valid")
    if valid is None:
        valid = torch.ones(b, 1, *image.shape[2:], dtype=image.dtype, device=image.device)
    # Bicubic reads 4 x 4 neighbours, bilinear 2 x 2: a bilinear read of the valid region shrunk by one pixel
    # (the frame's edge included) is whole exactly where every bicubic neighbour was valid.
    shrunk = -F.max_pool2d(-F.pad(valid, (1, 1, 1, 1), value=0.0), 3, stride=1)
    reach = warp_images(shrunk, A, zero, padding_mode="zeros", mode="bilinear")
    out["valid"] = (reach > 1 - 1e-4).to(image.dtype)
    return out


def composite_border(fake: Tensor, real: Tensor, valid: Tensor | None) -> Tensor:
    """``fake`` inside the frame, ``real`` in the pixels that entered from outside: those carry no error, no
    gradient and nothing for the discriminator to tell apart."""
    if valid is None:
        return fake
    return fake * valid + real * (1 - valid)
