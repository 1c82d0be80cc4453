import math

import pytest
import torch

from selfie_avatar.geometry import euler_to_matrix
from selfie_avatar.render import OrthoCamera, project


def test_project_against_a_hand_computation():
    # Yaw of 90 degrees: Ry maps x -> -z and z -> x. Then scale 2, shift (10, 20).
    R = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]])
    assert torch.allclose(euler_to_matrix(torch.tensor([[math.pi / 2, 0.0, 0.0]])), R, atol=1e-7)
    p = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    out = project(p, R, torch.tensor([2.0]), torch.tensor([[10.0, 20.0]]))
    # R p = (3, 2, -1) -> xy = 2 * (3, 2) + (10, 20) = (16, 24), z = 2 * -1 = -2.
    assert out.tolist() == [[[16.0, 24.0, -2.0], [10.0, 20.0, 0.0]]]


def test_identity_camera_and_batching():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 5, 3, generator=g)
    eye = torch.eye(3).expand(2, 3, 3)
    assert torch.allclose(project(p, eye, torch.ones(2), torch.zeros(2, 2)), p)
    R = euler_to_matrix(torch.randn(2, 3, generator=g))
    scale, t = torch.tensor([1.5, 3.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = project(p, R, scale, t)
    for b in range(2):
        q = p[b] @ R[b].T * scale[b]
        assert torch.allclose(out[b, :, :2], q[:, :2] + t[b], atol=1e-6)
        assert torch.allclose(out[b, :, 2], q[:, 2], atol=1e-6)


def test_ortho_camera_matches_project_and_is_differentiable():
    angles = torch.tensor([[0.1, -0.2, 0.3]], requires_grad=True)
    scale = torch.tensor([100.0], requires_grad=True)
    t = torch.tensor([[128.0, 120.0]], requires_grad=True)
    cam = OrthoCamera.from_euler(angles, scale, t)
    p = torch.tensor([[[0.1, -0.2, 0.3], [0.0, 0.1, -0.1]]])
    out = cam.project(p)
    assert torch.allclose(out, project(p, euler_to_matrix(angles), scale, t))
    out.sum().backward()
    assert angles.grad.abs().sum() > 0 and scale.grad.abs().sum() > 0 and t.grad.tolist() == [[2.0, 2.0]]
    assert cam.batch_size == 1
    assert cam.to(torch.float64).rotation.dtype == torch.float64


@pytest.mark.parametrize(
    "shapes",
    [
        ((1, 4, 3), (1, 3, 3), (2,), (1, 2)),
        ((1, 4, 3), (1, 3, 3), (1,), (1, 3)),
        ((1, 4, 2), (1, 3, 3), (1,), (1, 2)),
        ((2, 4, 3), (1, 3, 3), (2,), (2, 2)),
    ],
)
def test_bad_shapes_raise(shapes):
    p, R, s, t = (torch.zeros(x) for x in shapes)
    with pytest.raises(ValueError):
        project(p, R, s, t)


def test_ortho_camera_checks_shapes():
    with pytest.raises(ValueError, match="scale"):
        OrthoCamera(torch.eye(3)[None], torch.ones(2), torch.zeros(1, 2))
