"""Expression and pose sliders: a pure function from slider values to images, and the widgets around it.

:func:`slider_images` is the whole computation (tests call it directly); :class:`SliderPanel` only turns widget
values into its arguments and shows what comes back. Values:

    expression   (E,)  the face model's expression codes (52 named blendshapes, then the subject's PCA codes;
                       FLAME's codes when the subject was fitted with FLAME), by name in ``expression_names``
    yaw, pitch, roll   head rotation in degrees (``geometry.rotation.euler_to_matrix`` convention)
    tx, ty             head position in crop pixels of the subject's size
    zoom               head size relative to the rest frame

"Neutral" is the rest frame: the subject's own tracked codes of one training frame, so neutral values reproduce a
frame the avatar was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.geometry.rotation import euler_to_matrix, matrix_to_euler
from selfie_avatar.utils.images import SIGNED, to_uint8


@dataclass(frozen=True)
class SliderValues:
    """One setting of every slider."""

    expression: tuple[float, ...]
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    zoom: float = 1.0

    @classmethod
    def from_codes(cls, codes: HeadCodes, rest_scale: float | None = None) -> "SliderValues":
        """The slider values of one frame's codes (``zoom`` relative to ``rest_scale``, default 1)."""
        yaw, pitch, roll = np.degrees(matrix_to_euler(torch.from_numpy(codes.rotation[:1])).numpy()[0])
        zoom = float(codes.scale[0] / rest_scale) if rest_scale else 1.0
        return cls(tuple(float(v) for v in codes.expression[0]), float(yaw), float(pitch), float(roll),
                   float(codes.translation[0, 0]), float(codes.translation[0, 1]), zoom)


def set_code(values: SliderValues, names: list[str], name: str, value: float) -> SliderValues:
    """A copy of ``values`` with the expression code called ``name`` set to ``value``.

    Raises:
        KeyError: ``name`` is not one of ``names``.
    """
    if name not in names:
        raise KeyError(f"{name!r} is not an expression code of this face model (e.g. {names[:3]})")
    expr = list(values.expression)
    expr[names.index(name)] = float(value)
    return replace(values, expression=tuple(expr))


def values_to_codes(values: SliderValues, rest_scale: float) -> HeadCodes:
    """Slider values -> one frame of :class:`HeadCodes`."""
    angles = torch.tensor([[np.radians(values.yaw), np.radians(values.pitch), np.radians(values.roll)]],
                          dtype=torch.float32)
    return HeadCodes(euler_to_matrix(angles).numpy(), np.array([rest_scale * values.zoom]),
                     np.array([[values.tx, values.ty]]), np.asarray(values.expression, np.float32)[None])


@torch.no_grad()
def slider_images(renderer: AvatarRenderer, values: SliderValues, rest_scale: float) -> dict[str, np.ndarray]:
    """Everything the slider view shows, for one setting.

    Args:
        renderer: the avatar (:class:`~selfie_avatar.reenact.avatar_renderer.AvatarRenderer`).
        values: the slider values.
        rest_scale: the rest frame's camera scale (``zoom`` multiplies it).

    Returns:
        ``image`` (S, S, 3) uint8 avatar, ``render`` (S, S, 3) uint8 ``I_R``, ``vertices`` (V, 3) posed mesh in
        the avatar's pixels (for a 3D view), ``faces`` (T, 3).
    """
    out = renderer(values_to_codes(values, rest_scale))
    return {"image": to_uint8(out["image"], SIGNED)[0], "render": to_uint8(out["render"], SIGNED)[0],
            "vertices": out["vertices"][0].cpu().numpy(), "faces": renderer.face_model.faces.cpu().numpy()}
