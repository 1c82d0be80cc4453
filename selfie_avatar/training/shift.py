"""Translation augmentation that keeps a sample aligned: the frame, every map and the background window move together.

StyleAvatar shifts the whole training sample on alternate steps: the real frame, ``I_R``, ``I_UV``, the matte and
the background plate are translated by the same (dx, dy), and the background generator's window moves the opposite
way on its canvas, so the static background still lines up with the target. Pixels that come in from outside the
frame have no real counterpart; :func:`shift_batch` marks them in ``valid`` and the training step copies the real
frame into them (:func:`composite_border`), so no loss and no discriminator ever sees them.

    content at (x, y)  ->  (x + dx, y + dy)
    window offset      =   centre - (dx, dy)      (the frame now shows the canvas dx further left)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SHIFTED_KEYS", "composite_border", "draw_shifts", "shift_batch", "shift_images"]

#: Per-pixel entries of a training batch that move with the frame.
SHIFTED_KEYS = ("image", "render", "uv", "matte", "face_mask", "plate")


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


def shift_batch(batch: dict[str, Tensor], shifts: Tensor) -> dict[str, Tensor]:
    """The batch with every per-pixel entry of :data:`SHIFTED_KEYS` translated by ``shifts`` and a ``valid`` mask
    (1 where the pixel comes from inside the frame). Other entries (``frame_index``) are kept as they are.

    Shape:
        - batch values: :math:`(B, C, S, S)`; shifts: :math:`(B, 2)` integer (dx, dy).
        - ``valid``: :math:`(B, 1, S, S)`.
    """
    image = batch["image"]
    out = dict(batch)
    for key in SHIFTED_KEYS:
        if key in batch:
            value = batch[key]
            if value.shape[0] == 1 and image.shape[0] > 1:  # a shared map (the plate) gets one copy per sample
                value = value.expand(image.shape[0], -1, -1, -1)
            out[key] = shift_images(value, shifts)
    ones = torch.ones(image.shape[0], 1, *image.shape[2:], dtype=image.dtype, device=image.device)
    out["valid"] = shift_images(ones, shifts)
    return out


def composite_border(fake: Tensor, real: Tensor, valid: Tensor | None) -> Tensor:
    """``fake`` inside the frame, ``real`` in the pixels that entered from outside: those carry no error, no
    gradient and nothing for the discriminator to tell apart."""
    if valid is None:
        return fake
    return fake * valid + real * (1 - valid)
