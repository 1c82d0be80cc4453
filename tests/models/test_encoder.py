"""The 3DMM encoder network: 6D rotations, output shapes and ranges, pixel conventions, input checks."""

from __future__ import annotations

import math

import pytest
import torch

from selfie_avatar.models.encoder import CodeEncoder, EncoderNetConfig
from selfie_avatar.geometry.rotation import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix


def _assert_rotations(R: torch.Tensor, atol: float = 1e-5) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=atol)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol)


def test_rotation_6d_round_trip():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(64, 3, generator=g, dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(64, 1, generator=g, dtype=torch.float64) * math.pi
    R = axis_angle_to_matrix(aa)
    d6 = matrix_to_rotation_6d(R)
    assert d6.shape == (64, 6)
    assert torch.allclose(rotation_6d_to_matrix(d6), R, atol=1e-12)


def test_rotation_6d_of_any_pair_is_a_rotation_spanning_the_pair():
    g = torch.Generator().manual_seed(1)
    d6 = torch.randn(5, 7, 6, generator=g, dtype=torch.float64) * 3
    R = rotation_6d_to_matrix(d6)
    assert R.shape == (5, 7, 3, 3)
    _assert_rotations(R, atol=1e-10)
    a1, a2 = d6[..., :3], d6[..., 3:]
    # Gram-Schmidt: the first row points along a1, the second lies in the plane of (a1, a2) on a2's side.
    assert torch.allclose(R[..., 0, :], a1 / a1.norm(dim=-1, keepdim=True), atol=1e-10)
    assert torch.allclose((R[..., 2, :] * a2).sum(-1), torch.zeros(5, 7, dtype=torch.float64), atol=1e-9)
    assert ((R[..., 1, :] * a2).sum(-1) > 0).all()
    # Scaling either vector changes nothing.
    assert torch.allclose(rotation_6d_to_matrix(torch.cat([a1 * 2.5, a2 * 0.1], -1)), R, atol=1e-10)


def test_rotation_6d_checks_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        rotation_6d_to_matrix(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="floating point"):
        rotation_6d_to_matrix(torch.zeros(4, 6, dtype=torch.long))


@pytest.mark.parametrize("size,norm", [(64, "batch"), (128, "group"), (48, "batch")])
def test_encoder_shapes_and_ranges(size, norm):
    torch.manual_seed(0)
    enc = CodeEncoder(width=8, norm=norm, scale_ref=0.003)
    # Perturb the zero-initialised head so the outputs are not trivially the initial ones.
    torch.nn.init.normal_(enc.head[-1].weight, std=0.5)
    enc.eval()
    out = enc(torch.rand(3, 3, size, size) * 2 - 1)
    assert out.rotation.shape == (3, 3, 3) and out.scale.shape == (3,)
    assert out.translation.shape == (3, 2) and out.expression.shape == (3, 52)
    _assert_rotations(out.rotation)
    assert (out.scale > 0).all()
    assert ((out.expression >= 0) & (out.expression <= 1)).all()
    assert not torch.allclose(out.expression, torch.full_like(out.expression, 0.5))


def test_pose_is_relative_to_the_crop_and_reported_in_pixels_of_the_input():
    torch.manual_seed(0)
    enc = CodeEncoder(width=8, scale_ref=0.0025).eval()
    # Untrained, the zero head predicts the identity, the reference scale, the crop centre and scores of 0.5.
    for s in (32, 96):
        out = enc(torch.zeros(2, 3, s, s))
        assert torch.allclose(out.rotation, torch.eye(3).expand(2, 3, 3), atol=1e-6)
        assert torch.allclose(out.scale, torch.full((2,), 0.0025 * s))
        assert torch.allclose(out.translation, torch.full((2, 2), s / 2))
        assert torch.allclose(out.expression, torch.full((2, 52), 0.5))
    torch.nn.init.normal_(enc.head[-1].weight, std=0.5)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    rel, px = enc.forward_relative(x), enc(x)
    assert torch.allclose(px.scale, rel.scale * 64) and torch.allclose(px.translation, rel.translation * 64)


def test_encoder_rejects_bad_input_and_config():
    enc = CodeEncoder(width=8)
    with pytest.raises(ValueError, match=r"\(2, 3, 64, 32\)"):
        enc(torch.zeros(2, 3, 64, 32))
    with pytest.raises(ValueError, match=r"\(2, 1, 64, 64\)"):
        enc(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match="uint8"):
        enc(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="norm"):
        EncoderNetConfig(norm="layer")
    with pytest.raises(ValueError, match="scale_ref"):
        EncoderNetConfig(scale_ref=0.0)


def test_encoder_can_fit_a_batch():
    """A few hundred steps on four crops bring every output to its target: all heads are wired to the loss."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: two threads only wait on each other, badly so on a busy machine
    try:
        _fit_a_batch()
    finally:
        torch.set_num_threads(threads)


def _fit_a_batch():
    torch.manual_seed(0)
    enc = CodeEncoder(width=8, norm="group", scale_ref=0.003)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    target_rot = axis_angle_to_matrix(torch.randn(4, 3) * 0.3)
    target_t = torch.rand(4, 2) * 0.2 + 0.4
    target_s = torch.full((4,), 0.003) * torch.tensor([0.9, 1.0, 1.1, 1.2])
    target_e = torch.rand(4, 52)
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)

    def loss_fn():
        o = enc.forward_relative(x)
        return ((o.rotation - target_rot).square().mean() + (o.translation - target_t).square().mean()
                + (o.scale.log() - target_s.log()).square().mean() + (o.expression - target_e).square().mean())

    with torch.no_grad():
        first = loss_fn().item()
    for _ in range(200):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first
