"""The reference bank: the head plane read off I_UV, frames moved with the head, the pose search and its training
window, and how the image generator may use the reference (outside the face only)."""

from __future__ import annotations

import pytest
import torch

from selfie_avatar.models import ImageGenerator, ModelConfig
from selfie_avatar.models.image_generator import filled_face, outside_face
from selfie_avatar.models.reference import (REFERENCE_CHANNELS, ReferenceBank, farthest_point_sample, head_plane,
                                            move_with_head)

S = 32


def _grid(s: int = S) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid((torch.arange(s) + 0.5) / s, (torch.arange(s) + 0.5) / s, indexing="ij")
    return xs, ys


def plane(scale: float, angle: float, dx: float, dy: float) -> torch.Tensor:
    """(3, 2) head plane of a face seen at ``scale`` (UV units per frame side), turned by ``angle``, shifted."""
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    m = torch.stack([torch.stack([c, -s]), torch.stack([s, c])]) * scale
    return torch.cat([m, torch.tensor([[0.5 - 0.5 * scale + dx, 0.5 - 0.5 * scale + dy]])])


def uv_of(planes: torch.Tensor, s: int = S, radius: float = 0.35) -> torch.Tensor:
    """I_UV (B, 3, s, s) of faces on ``planes`` (B, 3, 2): UV from the plane, covered inside a disc of UV."""
    xs, ys = _grid(s)
    p = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, s * s, 3)
    uv = (p @ planes).reshape(-1, s, s, 2).permute(0, 3, 1, 2)
    covered = (((uv - 0.5) ** 2).sum(1, keepdim=True) < radius ** 2).float()
    return torch.cat([uv, covered], 1)


def test_head_plane_recovers_the_map_that_made_the_uv():
    truth = torch.stack([plane(1.6, 0.1, 0.05, -0.02), plane(2.2, -0.2, -0.1, 0.08)])
    got, ok = head_plane(uv_of(truth))
    assert ok.all()
    torch.testing.assert_close(got, truth, atol=1e-4, rtol=0)
    # Only the rigid upper face counts: a jaw that opens (v >= 0.6 moved) changes nothing.
    uv = uv_of(truth)
    jaw = (uv[:, 1:2] >= 0.6) & (uv[:, 2:3] > 0.5)
    uv[:, :2] = torch.where(jaw, uv[:, :2] + 0.05, uv[:, :2])
    torch.testing.assert_close(head_plane(uv)[0], truth, atol=1e-4, rtol=0)
    # No face, or too little of it: no plane.
    empty = torch.zeros(1, 3, S, S)
    assert not head_plane(empty)[1].any()
    with pytest.raises(ValueError, match="uv must be"):
        head_plane(torch.zeros(1, 2, S, S))


def test_move_with_head_puts_each_head_point_where_the_target_shows_it():
    source, target = plane(1.8, 0.0, 0.0, 0.0)[None], plane(2.0, 0.15, 0.04, -0.03)[None]
    uv_s, uv_t = uv_of(source), uv_of(target)
    moved = move_with_head(uv_s[:, :2], source, target)  # a picture whose colour is the UV it shows
    inside = (uv_t[:, 2:3] > 0.5).expand(-1, 2, -1, -1)
    assert (moved - uv_t[:, :2]).abs()[inside].max() < 1e-4
    torch.testing.assert_close(move_with_head(uv_s, source, source), uv_s, atol=1e-5, rtol=0)  # onto itself
    with pytest.raises(ValueError, match="head planes"):
        move_with_head(uv_s, source[:, :2], target)


def test_farthest_point_sample_spreads_and_keeps_all_when_asked_for_more():
    keys = torch.tensor([[0.0], [0.1], [0.2], [5.0], [10.0], [10.1]])
    assert farthest_point_sample(keys, 3).tolist() == [0, 3, 5] or farthest_point_sample(keys, 3).tolist() == [0, 3, 4]
    assert farthest_point_sample(keys, 10).tolist() == list(range(6))
    with pytest.raises(ValueError, match="k must be"):
        farthest_point_sample(keys, 0)


def _bank(n: int = 6, size: int | None = None) -> tuple[ReferenceBank, torch.Tensor, torch.Tensor]:
    planes = torch.stack([plane(1.8 + 0.05 * k, 0.03 * k, 0.01 * k, 0.0) for k in range(n)])
    images = torch.randint(0, 256, (n, 3, S, S), dtype=torch.uint8)
    fitted, ok = head_plane(uv_of(planes))
    keep = ReferenceBank.choose(fitted, ok, size or n)
    bank = ReferenceBank()
    bank.fill(fitted[keep], images[keep], torch.arange(100, 100 + n)[keep])
    return bank, planes, images


def test_the_bank_answers_with_the_frame_nearest_in_pose_moved_and_unmoved():
    bank, planes, images = _bank()
    assert len(bank) == 6 and bank.images.dtype == torch.uint8
    uv = uv_of(planes[[4, 1]])
    assert bank.nearest(head_plane(uv)[0]).tolist() == [4, 1]
    out = bank(uv)
    assert out.shape == (2, REFERENCE_CHANNELS, S, S)
    torch.testing.assert_close(out[:, 3:], images[[4, 1]].float() / 127.5 - 1)  # as filmed
    torch.testing.assert_close(out[:, :3], out[:, 3:], atol=1e-4, rtol=0)  # its own pose: moved onto itself
    # A query between two poses gets the frame moved onto the query's plane.
    query = plane(1.93, 0.08, 0.025, 0.0)[None]
    k = int(bank.nearest(head_plane(uv_of(query))[0]))
    torch.testing.assert_close(bank(uv_of(query))[:, :3],
                               move_with_head(images[k:k + 1].float() / 127.5 - 1, bank.planes[k:k + 1],
                                              head_plane(uv_of(query))[0]), atol=1e-4, rtol=0)


def test_training_leaves_the_frames_around_the_sample_out_of_the_search():
    bank, planes, _ = _bank()
    keys = head_plane(uv_of(planes[[2]]))[0]
    assert int(bank.nearest(keys, torch.tensor([102]), window=0)) == 2
    got = int(bank.nearest(keys, torch.tensor([102]), window=1))
    assert abs(int(bank.frames[got]) - 102) > 1
    # A bank with nothing outside the window answers from all of it rather than with nothing.
    assert int(bank.nearest(keys, torch.tensor([102]), window=50)) == 2


def test_the_bank_keeps_a_spread_subset_and_refuses_what_it_cannot_use():
    bank, _, _ = _bank(n=8, size=3)
    assert len(bank) == 3 and bank.images.shape == (3, 3, S, S)
    assert bank.frames.tolist() == sorted(bank.frames.tolist()) and len(set(bank.frames.tolist())) == 3
    empty = ReferenceBank()
    with pytest.raises(RuntimeError, match="empty"):
        empty(uv_of(plane(1.8, 0, 0, 0)[None]))
    with pytest.raises(ValueError, match="no frame shows enough"):
        ReferenceBank.choose(*head_plane(torch.zeros(2, 3, S, S)), 2)
    with pytest.raises(ValueError, match="uint8"):
        empty.fill(torch.zeros(2, 3, 2), torch.zeros(2, 3, S, S), torch.arange(2))
    with pytest.raises(ValueError, match="must agree"):
        empty.fill(torch.zeros(3, 3, 2), torch.zeros(2, 3, S, S, dtype=torch.uint8), torch.arange(2))


def test_the_generator_shows_the_reference_outside_the_face_only():
    cfg = ModelConfig.preset("tiny", reference_frames=4)
    g = ImageGenerator(cfg).eval()
    b, s = 2, cfg.size
    render, face = torch.randn(b, 3, s, s), torch.randn(b, cfg.face_feat_channels, s, s)
    bg, plate = torch.randn(b, cfg.bg_feat_channels, s, s), torch.rand(1, 3, s, s) * 2 - 1
    face_mask = torch.zeros(b, 1, s, s)
    face_mask[..., 16:48, 20:44] = 1
    reference = torch.rand(b, REFERENCE_CHANNELS, s, s) * 2 - 1
    with pytest.raises(ValueError, match="reference"):
        g(render, face, face_mask, bg, plate=plate)
    with pytest.raises(ValueError, match="reference"):
        g(render, face, face_mask, bg, plate=plate, reference=reference[:, :3])
    with pytest.raises(ValueError, match="without a reference bank"):
        ImageGenerator(ModelConfig.preset("tiny", reference_frames=0))(render, face, face_mask, bg, plate=plate,
                                                                       reference=reference)
    # At the start the reference is almost unused (sigmoid(-4) of it), and the rest of the network is the one a
    # generator without a bank starts as, weight for weight (but the photo weight's layer, built after the bank's).
    out = g(render, face, face_mask, bg, plate=plate, reference=reference)
    assert out["reference_weight"].max() <= torch.sigmoid(torch.tensor(-4.0)) + 1e-6
    torch.manual_seed(0)
    plain = ImageGenerator(ModelConfig.preset("tiny", reference_frames=0))
    torch.manual_seed(0)
    banked = ImageGenerator(cfg)
    for name, p in plain.state_dict().items():
        if not name.startswith("to_photo."):
            assert torch.equal(banked.state_dict()[name], p), name
    # The reference inside the (filled) face changes nothing at all, in the input or in the output.
    with torch.no_grad():
        g.from_reference.weight.normal_()
        g.to_reference.conv.weight.normal_()
    out = g(render, face, face_mask, bg, plate=plate, reference=reference)
    hidden = outside_face(face_mask, g.feather) == 0                # the face, less its feathered outline
    assert g.feather == 1 and hidden.any()
    inside = hidden.expand(-1, REFERENCE_CHANNELS, -1, -1)
    other = torch.where(inside, torch.rand_like(reference), reference)
    torch.testing.assert_close(g(render, face, face_mask, bg, plate=plate, reference=other)["image"], out["image"])
    # A generator that says "reference, moved" everywhere shows it exactly where it is person and not face.
    with torch.no_grad():
        for p in list(g.to_out.parameters()) + list(g.to_reference.parameters()):
            p.zero_()
        g.to_out.bias[..., 3, :, :] = 30.0  # mask: person everywhere
        g.to_reference.bias[..., 0, :, :] = 30.0  # weight: the reference
        g.to_reference.bias[..., 1, :, :] = 30.0  # share: moved with the head
    out = g(render, face, face_mask, bg, plate=plate, reference=reference)
    shown = (outside_face(face_mask, g.feather) == 1).expand(-1, 3, -1, -1)
    torch.testing.assert_close(out["image"][shown], reference[:, :3][shown], atol=1e-5, rtol=0)
    # The face: the generator's own (zero) colour and the texture's RGB view, by the photo weight.
    in_face = hidden.expand(-1, 3, -1, -1)
    torch.testing.assert_close(out["image"][in_face], (out["photo_weight"] * face[:, :3])[in_face])
    assert (out["reference_weight"][hidden] == 0).all()
    # Across the outline the reference fades in: a blend of the two, the weight strictly between 0 and 1.
    ramp = out["reference_weight"][(~hidden) & (outside_face(face_mask, g.feather) < 1)]
    assert ramp.numel() > 0 and (ramp > 0).all() and (ramp < 1 - 1e-3).all()


def test_outside_face_ramps_across_the_outline():
    face_mask = torch.zeros(1, 1, 16, 16)
    face_mask[..., 4:12, 4:12] = 1
    hard = outside_face(face_mask)
    assert torch.equal(hard, 1 - filled_face(face_mask))
    soft = outside_face(face_mask, feather=2)
    assert (soft[..., 6:10, 6:10] == 0).all()                     # deeper than 2 px inside: hidden
    assert (soft[..., :2, :] == 1).all() and (soft[..., :, 14:] == 1).all()   # 2 px beyond: shown
    row = soft[0, 0, 8, :8]                                       # left to right across the left edge
    assert (row[1:] <= row[:-1]).all() and 0 < row[4] < 1           # monotone, a blend at the edge
    with pytest.raises(ValueError, match="feather"):
        outside_face(face_mask, feather=-1)
