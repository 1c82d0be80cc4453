"""Rotations as 3x3 matrices: Euler angles (yaw, pitch, roll), axis-angle (Rodrigues), the continuous 6D
representation (Gram-Schmidt), projection onto SO(3).

Axes follow screen / OpenCV camera coordinates: x right, y down, z away from the camera (right-handed).

Euler convention (used everywhere in this package)::

    angles = (yaw, pitch, roll)            # radians
    R = Rz(roll) @ Rx(pitch) @ Ry(yaw)     # yaw is applied to a point first, roll last

    Ry(a) = [[ c, 0, s],   Rx(a) = [[1, 0,  0],   Rz(a) = [[c, -s, 0],
             [ 0, 1, 0],             [0, c, -s],             [s,  c, 0],
             [-s, 0, c]]             [0, s,  c]]             [0,  0, 1]]

:func:`matrix_to_euler` returns pitch in [-pi/2, pi/2] and yaw, roll in (-pi, pi]; inside those ranges and away
from gimbal lock (|pitch| = pi/2) the two functions are exact inverses. At gimbal lock yaw is reported as 0 and
the whole in-plane rotation goes to roll.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "orthonormalize",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
]

# Below this |cos(pitch)| the yaw and roll axes coincide (to float32 precision) and cannot be told apart.
_GIMBAL_EPS = 1e-6
# Below this angle Rodrigues' coefficients are replaced by their Taylor series (their closed forms are 0/0).
_SMALL_ANGLE = 1e-4


def _check_matrix(R: Tensor, name: str = "R") -> None:
    if not isinstance(R, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(R).__name__}")
    if R.dim() < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {tuple(R.shape)}")


def _check_vec3(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {tuple(x.shape)}")


def euler_to_matrix(angles: Tensor) -> Tensor:
    """Rotation matrices from (yaw, pitch, roll) angles, ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``.

    Args:
        angles: yaw (about y), pitch (about x) and roll (about z) in radians.

    Returns:
        The rotation matrices.

    Shape:
        - angles: :math:`(..., 3)`
        - output: :math:`(..., 3, 3)`
    """
    _check_vec3(angles, "angles")
    if not angles.is_floating_point():
        raise ValueError(f"angles must be a floating point tensor, got {angles.dtype}")
    cy, cx, cz = torch.cos(angles).unbind(-1)
    sy, sx, sz = torch.sin(angles).unbind(-1)
    # Rows of Rx @ Ry, expanded once by hand so the product is a handful of elementwise ops.
    m10, m11, m12 = sx * sy, cx, -sx * cy
    m20, m21, m22 = -cx * sy, sx, cx * cy
    m00, m02 = cy, sy
    rows = (
        (cz * m00 - sz * m10, -sz * m11, cz * m02 - sz * m12),
        (sz * m00 + cz * m10, cz * m11, sz * m02 + cz * m12),
        (m20, m21, m22),
    )
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def matrix_to_euler(R: Tensor) -> Tensor:
    """(yaw, pitch, roll) angles of rotation matrices; the inverse of :func:`euler_to_matrix`.

    Args:
        R: rotation matrices (orthonormal, det +1; see :func:`orthonormalize` for noisy ones).

    Returns:
        yaw in (-pi, pi], pitch in [-pi/2, pi/2], roll in (-pi, pi], radians. At gimbal lock yaw is 0.

    Shape:
        - R: :math:`(..., 3, 3)`
        - output: :math:`(..., 3)`
    """
    _check_matrix(R)
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # Clamped so sqrt's gradient stays finite at gimbal lock (where the clamp's own gradient is 0).
    cos_pitch = torch.sqrt((r20 * r20 + r22 * r22).clamp_min(1e-30))
    # atan2 rather than asin(r21): asin loses half its digits near +-pi/2.
    pitch = torch.atan2(r21, cos_pitch)
    locked = cos_pitch < _GIMBAL_EPS
    # Feed each atan2 harmless inputs in the branch torch.where discards, or its NaN gradient leaks through.
    zero, one = torch.zeros_like(r22), torch.ones_like(r22)
    yaw = torch.atan2(torch.where(locked, zero, -r20), torch.where(locked, one, r22))
    roll_free = torch.atan2(torch.where(locked, zero, -R[..., 0, 1]), torch.where(locked, one, R[..., 1, 1]))
    # With yaw = 0 the first column is (cos roll, sin roll, 0), whatever the pitch.
    roll_locked = torch.atan2(torch.where(locked, R[..., 1, 0], zero), torch.where(locked, R[..., 0, 0], one))
    roll = torch.where(locked, roll_locked, roll_free)
    return torch.stack([yaw, pitch, roll], dim=-1)


def _skew(v: Tensor) -> Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], dim=-2
    )


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    The vector's direction is the rotation axis and its norm the angle in radians (right-hand rule).

    Args:
        axis_angle: axis-angle vectors; the zero vector gives the identity.

    Returns:
        The rotation matrices.

    Shape:
        - axis_angle: :math:`(..., 3)`
        - output: :math:`(..., 3, 3)`
    """
    _check_vec3(axis_angle, "axis_angle")
    if not axis_angle.is_floating_point():
        raise ValueError(f"axis_angle must be a floating point tensor, got {axis_angle.dtype}")
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < _SMALL_ANGLE**2
    # sqrt has an infinite gradient at 0: evaluate the closed forms only on a safe stand-in there.
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    K = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def _matrix_to_quaternion(R: Tensor) -> Tensor:
    """(w, x, y, z) with w >= 0, from whichever of the four textbook formulas has the largest divisor."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    # 2 * |q_i| for each component; clamped away from 0 so the divisions below (discarded or not) stay finite.
    two_abs = torch.sqrt(four_sq.clamp_min(1e-12))
    candidates = torch.stack(
        [
            torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], -1),
        ],
        dim=-2,
    ) / (2.0 * two_abs[..., :, None])
    best = four_sq.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Axis-angle vectors of rotation matrices; the inverse of :func:`axis_angle_to_matrix`.

    Goes through a unit quaternion, which stays accurate near 0 and pi where ``acos((trace - 1) / 2)`` does not.

    Args:
        R: rotation matrices (orthonormal, det +1).

    Returns:
        Axis-angle vectors with norm (angle) in [0, pi].

    Shape:
        - R: :math:`(..., 3, 3)`
        - output: :math:`(..., 3)`
    """
    _check_matrix(R)
    q = _matrix_to_quaternion(R)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < _SMALL_ANGLE**2
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / sin(angle / 2) = 2 * atan2(n, w) / n; near n = 0 (where w ~ 1) use its series 2 / w * (1 - n^2 / 3w^2).
    w_safe = w.clamp_min(0.5)
    factor = torch.where(small, 2.0 / w_safe * (1.0 - n2 / (3.0 * w_safe * w_safe)), 2.0 * torch.atan2(n, w) / n)
    return v * factor[..., None]


def orthonormalize(M: Tensor) -> Tensor:
    """Nearest rotation matrix (in the Frobenius sense) to each 3x3 matrix, via SVD, with det +1.

    Args:
        M: any real 3x3 matrices, e.g. a rotation that drifted through optimisation.

    Returns:
        Rotation matrices ``U diag(1, 1, det(U V^T)) V^T``.

    Shape:
        - M: :math:`(..., 3, 3)`
        - output: :math:`(..., 3, 3)`
    """
    _check_matrix(M, "M")
    if not M.is_floating_point():
        raise ValueError(f"M must be a floating point tensor, got {M.dtype}")
    U, _, Vh = torch.linalg.svd(M)
    d = torch.sign(torch.linalg.det(U @ Vh))
    # det is exactly +-1 in theory; sign(0) can only come from a NaN input, keep it a reflection-free identity sign.
    d = torch.where(d == 0, torch.ones_like(d), d)
    ones = torch.ones_like(d)
    D = torch.stack([ones, ones, d], dim=-1)
    return (U * D[..., None, :]) @ Vh


def rotation_6d_to_matrix(d6: Tensor, eps: float = 1e-8) -> Tensor:
    """Rotation matrices from the continuous 6D representation (Zhou et al., CVPR 2019) by Gram-Schmidt.

    The two 3-vectors are the matrix's first two rows before orthonormalisation; the third row is their cross
    product. Unlike Euler angles or quaternions the map is continuous and surjective, which suits regression.

    Args:
        d6: two stacked 3-vectors ``(a1, a2)``; any pair that is not parallel gives a rotation.
        eps: floor of the norms divided by, so a degenerate pair gives a finite (if arbitrary) result.

    Returns:
        Rotation matrices with rows ``b1 = a1 / |a1|``, ``b2`` = the unit part of ``a2`` orthogonal to ``b1``,
        ``b3 = b1 x b2`` (so det = +1).

    Shape:
        - d6: :math:`(..., 6)`
        - output: :math:`(..., 3, 3)`
    """
    if not isinstance(d6, Tensor):
        raise TypeError(f"d6 must be a torch.Tensor, got {type(d6).__name__}")
    if d6.dim() < 1 or d6.shape[-1] != 6:
        raise ValueError(f"d6 must have shape (..., 6), got {tuple(d6.shape)}")
    if not d6.is_floating_point():
        raise ValueError(f"d6 must be a floating point tensor, got {d6.dtype}")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(eps)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2, dim=-1)], dim=-2)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """The 6D representation of rotation matrices (their first two rows); the inverse of
    :func:`rotation_6d_to_matrix` on rotation matrices.

    Shape:
        - R: :math:`(..., 3, 3)`
        - output: :math:`(..., 6)`
    """
    _check_matrix(R)
    return R[..., :2, :].reshape(*R.shape[:-2], 6)
