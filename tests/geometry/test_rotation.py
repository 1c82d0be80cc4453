import math

import pytest
import torch

from selfie_avatar.geometry import (axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle, matrix_to_euler,
                                  orthonormalize)


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]], dtype=torch.float64)


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=torch.float64)


def _is_rotation(R, atol=1e-6):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    return torch.allclose(R @ R.transpose(-1, -2), eye, atol=atol) and torch.allclose(
        torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol
    )


def test_euler_convention_is_rz_rx_ry():
    yaw, pitch, roll = 0.3, -0.7, 1.1
    R = euler_to_matrix(torch.tensor([yaw, pitch, roll], dtype=torch.float64))
    assert torch.allclose(R, _rz(roll) @ _rx(pitch) @ _ry(yaw), atol=1e-12)
    # Each angle alone is a rotation about its own axis.
    assert torch.allclose(euler_to_matrix(torch.tensor([yaw, 0.0, 0.0], dtype=torch.float64)), _ry(yaw))
    assert torch.allclose(euler_to_matrix(torch.tensor([0.0, pitch, 0.0], dtype=torch.float64)), _rx(pitch))
    assert torch.allclose(euler_to_matrix(torch.tensor([0.0, 0.0, roll], dtype=torch.float64)), _rz(roll))


def test_euler_round_trip_and_batch_shapes():
    g = torch.Generator().manual_seed(0)
    n = 500
    angles = torch.stack(
        [
            (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.999,
            (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * (math.pi / 2 - 1e-3),
            (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.999,
        ],
        -1,
    ).view(5, 100, 3)
    R = euler_to_matrix(angles)
    assert R.shape == (5, 100, 3, 3) and _is_rotation(R)
    assert torch.allclose(matrix_to_euler(R), angles, atol=1e-9)
    # float32 too.
    assert torch.allclose(matrix_to_euler(euler_to_matrix(angles.float())), angles.float(), atol=2e-4)


def test_euler_at_gimbal_lock_reproduces_the_matrix():
    for pitch in (math.pi / 2, -math.pi / 2):
        angles = torch.tensor([0.4, pitch, -0.3], dtype=torch.float64)
        R = euler_to_matrix(angles)
        back = matrix_to_euler(R)
        assert back[0] == 0.0
        assert torch.allclose(euler_to_matrix(back), R, atol=1e-9)


def test_matrix_to_euler_has_finite_gradients():
    angles = torch.tensor([[0.2, 0.1, -0.3], [0.0, math.pi / 2, 0.0]], dtype=torch.float64, requires_grad=True)
    matrix_to_euler(euler_to_matrix(angles)).sum().backward()
    assert torch.isfinite(angles.grad).all()
    # Exact gimbal lock, and a first column (0, 0, 1) away from it: no NaN from the discarded branches.
    locked = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)  # Rx(pi/2)
    col = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    for R, pitch in ((locked, math.pi / 2), (col, 0.0)):
        R = R.requires_grad_(True)
        out = matrix_to_euler(R)
        assert out[1].item() == pytest.approx(pitch)
        assert torch.allclose(euler_to_matrix(out), R.detach(), atol=1e-12)
        out.sum().backward()
        assert torch.isfinite(R.grad).all()


def test_axis_angle_round_trip_including_small_and_near_pi():
    g = torch.Generator().manual_seed(1)
    axes = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=-1)
    angles = torch.tensor([0.0, 1e-9, 1e-5, 0.5, 2.0, math.pi - 1e-6], dtype=torch.float64)
    aa = axes * angles[:, None]
    R = axis_angle_to_matrix(aa)
    assert _is_rotation(R, atol=1e-10)
    back = matrix_to_axis_angle(R)
    assert torch.allclose(back, aa, atol=1e-7)
    # Rodrigues against a hand case: 90 degrees about z maps x to y.
    Rz = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    assert torch.allclose(Rz @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0],
                          dtype=torch.float64), atol=1e-12)
    # Agrees with the Euler convention for single-axis rotations.
    assert torch.allclose(axis_angle_to_matrix(torch.tensor([0.0, 0.7, 0.0], dtype=torch.float64)), _ry(0.7))


def test_axis_angle_gradients_are_finite_at_zero():
    aa = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    R = axis_angle_to_matrix(aa)
    (R * torch.randn(2, 3, 3, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(aa.grad).all() and aa.grad.abs().sum() > 0
    Rm = torch.eye(3, dtype=torch.float64).expand(2, 3, 3).clone().requires_grad_(True)
    matrix_to_axis_angle(Rm).sum().backward()
    assert torch.isfinite(Rm.grad).all()


def test_orthonormalize_projects_onto_rotations():
    g = torch.Generator().manual_seed(2)
    R = euler_to_matrix(torch.randn(8, 3, generator=g, dtype=torch.float64))
    noisy = R + 1e-3 * torch.randn(8, 3, 3, generator=g, dtype=torch.float64)
    fixed = orthonormalize(noisy)
    assert _is_rotation(fixed, atol=1e-10)
    assert (fixed - R).abs().max() < 3e-3
    assert torch.allclose(orthonormalize(R), R, atol=1e-10)
    # A reflection comes back with det +1.
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    assert torch.linalg.det(orthonormalize(reflection)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "fn, bad",
    [
        (euler_to_matrix, torch.zeros(4, 2)),
        (matrix_to_euler, torch.zeros(3, 2)),
        (axis_angle_to_matrix, torch.zeros(4)),
        (matrix_to_axis_angle, torch.zeros(2, 3, 4)),
        (orthonormalize, torch.zeros(2, 2)),
        (euler_to_matrix, torch.zeros(3, dtype=torch.long)),
    ],
)
def test_bad_shapes_raise(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)
