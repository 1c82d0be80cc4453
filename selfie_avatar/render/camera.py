"""Scaled-orthographic (weak-perspective) camera: model space -> screen space for :mod:`.rasterize`.

Model space and screen space share one set of axes: x right, y down, z away from the camera (right-handed, like
OpenCV camera coordinates). A model point ``p`` lands at::

    q = R @ p
    screen_xy = scale * q_xy + translation      # pixels, (0, 0) is the top-left corner of the image
    screen_z  = scale * q_z                     # depth: smaller is closer to the camera

z is scaled with xy so the screen-space mesh is a similarity transform of the model (normals and shading stay
right); translation does not move z because depth only matters relatively, for the z-buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from selfie_avatar.geometry.rotation import euler_to_matrix

__all__ = ["project", "OrthoCamera"]


def _check_camera(rotation: Tensor, scale: Tensor, translation: Tensor, batch: int | None) -> int:
    if rotation.dim() != 3 or rotation.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must have shape (B, 3, 3), got {tuple(rotation.shape)}")
    B = rotation.shape[0] if batch is None else batch
    if rotation.shape[0] != B:
        raise ValueError(f"rotation has batch {rotation.shape[0]}, expected {B}")
    if scale.shape != (B,):
        raise ValueError(f"scale must have shape ({B},), got {tuple(scale.shape)}")
    if translation.shape != (B, 2):
        raise ValueError(f"translation must have shape ({B}, 2), got {tuple(translation.shape)}")
    return B


def project(points: Tensor, rotation: Tensor, scale: Tensor, translation: Tensor) -> Tensor:
    """Project model-space points to screen space with a scaled-orthographic camera.

    ``xy = scale * (R p)_xy + t`` and ``z = scale * (R p)_z``.

    Args:
        points: model-space points (x right, y down, z away from the camera).
        rotation: model-to-camera rotation matrices.
        scale: pixels per model unit.
        translation: screen position, in pixels, of the model origin.

    Returns:
        Screen-space points: x, y in pixels (pixel (i, j) is centred at (j + 0.5, i + 0.5)), z depth with smaller
        values closer to the camera; ready for :func:`~selfie_avatar.render.rasterize`.

    Shape:
        - points: :math:`(B, V, 3)`
        - rotation: :math:`(B, 3, 3)`
        - scale: :math:`(B,)`
        - translation: :math:`(B, 2)`
        - output: :math:`(B, V, 3)`
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, V, 3), got {tuple(points.shape)}")
    _check_camera(rotation, scale, translation, points.shape[0])
    q = points @ rotation.transpose(-1, -2)
    q = q * scale[:, None, None]
    return torch.cat([q[..., :2] + translation[:, None, :], q[..., 2:]], dim=-1)


@dataclass
class OrthoCamera:
    """A batch of scaled-orthographic cameras (see :func:`project` for the model).

    Attributes:
        rotation: model-to-camera rotations, :math:`(B, 3, 3)`.
        scale: pixels per model unit, :math:`(B,)`.
        translation: screen position of the model origin in pixels, :math:`(B, 2)`.

    Example:
        >>> cam = OrthoCamera.from_euler(torch.zeros(1, 3), torch.tensor([100.0]), torch.tensor([[128.0, 128.0]]))
        >>> cam.project(torch.tensor([[[0.1, -0.2, 0.3]]]))
        tensor([[[138.0000, 108.0000,  30.0000]]])
    """

    rotation: Tensor
    scale: Tensor
    translation: Tensor

    def __post_init__(self) -> None:
        _check_camera(self.rotation, self.scale, self.translation, None)

    @classmethod
    def from_euler(cls, angles: Tensor, scale: Tensor, translation: Tensor) -> "OrthoCamera":
        """Camera whose rotation is :func:`~selfie_avatar.geometry.rotation.euler_to_matrix` of (yaw, pitch, roll).

        Args:
            angles: (yaw, pitch, roll) in radians, :math:`(B, 3)`.
            scale: :math:`(B,)`.
            translation: :math:`(B, 2)`.
        """
        if angles.dim() != 2 or angles.shape[-1] != 3:
            raise ValueError(f"angles must have shape (B, 3), got {tuple(angles.shape)}")
        return cls(euler_to_matrix(angles), scale, translation)

    @property
    def batch_size(self) -> int:
        return self.rotation.shape[0]

    def to(self, *args, **kwargs) -> "OrthoCamera":
        """A copy with every tensor moved / cast, with the same arguments as :meth:`torch.Tensor.to`."""
        return OrthoCamera(
            self.rotation.to(*args, **kwargs), self.scale.to(*args, **kwargs), self.translation.to(*args, **kwargs)
        )

    def project(self, points: Tensor) -> Tensor:
        """Screen-space points, :math:`(B, V, 3)`, of model-space ``points`` :math:`(B, V, 3)`."""
        return project(points, self.rotation, self.scale, self.translation)
