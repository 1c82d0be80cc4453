"""The shift (and turn) augmentation keeps every input, target and the background window aligned pixel for pixel."""

import dataclasses
import math

import pytest
import torch

from selfie_avatar.models import AvatarGenerator, ModelConfig
from selfie_avatar.models.background_generator import crop_windows
from selfie_avatar.geometry.similarity import similarity_matrix
from selfie_avatar.training.shift import (composite_border, draw_shifts, draw_similarity, shift_batch, shift_images,
                                          warp_batch)


def test_shift_images_moves_content_and_fills_the_border():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    out = shift_images(x, torch.tensor([[1, 0], [-2, 1]]))
    torch.testing.assert_close(out[0, 0, :, 1:], x[0, 0, :, :-1])  # right by one
    assert (out[0, 0, :, 0] == 0).all()
    torch.testing.assert_close(out[1, 0, 1:, :-2], x[1, 0, :-1, 2:])  # left by two, down by one
    with pytest.raises(ValueError, match="integer"):
        shift_images(x, torch.zeros(2, 2))


def test_a_shifted_sample_stays_aligned_with_its_background_window():
    # A static world seen through the frame: the frame is the canvas's centred window, as in the data.
    torch.manual_seed(0)
    size, canvas_side = 32, 40
    world = torch.rand(1, 3, canvas_side, canvas_side)
    centre = (canvas_side - size) // 2
    frame = crop_windows(world, size, batch=3)
    batch = {"image": frame, "render": frame.clone(), "uv": frame.clone(), "matte": frame[:, :1].clone(),
             "face_mask": frame[:, :1].clone(), "plate": frame[:1].clone(), "frame_index": torch.arange(3),
             "reference": frame.repeat(1, 2, 1, 1)}
    shifts = draw_shifts(3, centre, generator=torch.Generator().manual_seed(3))
    shifts[0] = torch.tensor([centre, -centre])  # the extremes are legal window offsets too
    out = shift_batch(batch, shifts)
    window = crop_windows(world, size, centre - shifts)  # what the generator's background features now show
    v = out["valid"].bool().expand(-1, 3, -1, -1)
    for key in ("image", "render", "uv", "plate"):
        assert torch.equal(out[key][v], window[v]), key  # aligned, pixel for pixel
    for half in (slice(0, 3), slice(3, 6)):  # the reference bank's answer, moved and unmoved, moves too
        assert torch.equal(out["reference"][:, half][v], window[v])
    for key in ("matte", "face_mask"):
        assert torch.equal(out[key][v[:, :1]], window[:, :1][v[:, :1]]), key
    assert torch.equal(out["frame_index"], batch["frame_index"])
    # the pixels from outside the frame are exactly those a shift uncovers
    assert int((~out["valid"].bool()).sum(dim=(1, 2, 3))[0]) == size * size - (size - centre) ** 2


def test_the_generator_background_moves_with_the_shift():
    cfg = ModelConfig.preset("tiny", use_background_plate=False, reference_frames=0)
    gen = AvatarGenerator(cfg).eval()
    canvas = gen.compute_cache()["bg_canvas"]
    centre = gen.background_generator.max_offset // 2
    shifts = torch.tensor([[3, -2]])
    shifted = shift_images(crop_windows(canvas, cfg.size, batch=1), shifts)
    moved = gen.background_generator.crop(canvas, centre - shifts)
    inside = shift_images(torch.ones(1, 1, cfg.size, cfg.size), shifts).bool().expand_as(moved)
    assert torch.equal(shifted[inside], moved[inside])


def test_composite_border_takes_the_real_frame_outside():
    fake, real = torch.zeros(1, 3, 4, 4, requires_grad=True), torch.ones(1, 3, 4, 4)
    valid = torch.zeros(1, 1, 4, 4)
    valid[..., :2] = 1
    out = composite_border(fake, real, valid)
    assert (out[..., 2:] == 1).all() and (out[..., :2] == 0).all()
    out.sum().backward()
    assert (fake.grad[..., 2:] == 0).all() and (fake.grad[..., :2] == 1).all()
    assert composite_border(fake, real, None) is fake


def test_draw_shifts_stay_in_range():
    s = draw_shifts(1000, 4, generator=torch.Generator().manual_seed(0))
    assert s.abs().max() <= 4 and s.dtype == torch.long and s.float().std() > 0.5


def _smooth(x: torch.Tensor, y: torch.Tensor, channels: int) -> torch.Tensor:
    """A smooth image, (1, channels, H, W), evaluated at pixel coordinates x, y (H, W)."""
    return torch.stack([torch.sin(x / (4 + c) + c) * torch.cos(y / (5 + c)) for c in range(channels)])[None] * 0.9


def _smooth_world(channels: int, side: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    return _smooth(xx, yy, channels)


def test_warp_batch_turns_every_map_and_marks_what_came_from_outside():
    size = 32
    world = _smooth_world(3, size)
    uv = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    batch = {"image": world, "render": world.clone(), "uv": uv, "matte": world[:, :1].clone(),
             "plate": world.clone(), "frame_index": torch.tensor([5])}
    A, _ = similarity_matrix(torch.tensor([1.08]), torch.tensor([math.radians(9.0)]), torch.zeros(1, 2))
    out = warp_batch(batch, A)
    # where each output pixel reads from: p = c + A^-1 (p' - c), in pixels
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    src = (torch.stack([xx, yy], -1) - size / 2) @ torch.linalg.inv(A[0]).T + size / 2
    truth = _smooth(src[..., 0], src[..., 1], 3)  # the same function, evaluated at the source points
    valid = out["valid"].bool()
    assert 0.8 < valid.float().mean() < 1.0  # the corners came from outside the frame
    inside = ((src > 1.5) & (src < size - 1.5)).all(-1)  # every bicubic neighbour inside the frame
    assert not valid[0, 0][~((src > -0.5) & (src < size + 0.5)).all(-1)].any()
    assert valid[0, 0][inside].float().mean() > 0.97
    for key in ("image", "render", "plate"):
        err = (out[key] - truth).abs().amax(1, keepdim=True)[valid]
        assert err.max() < 0.02, key
    err = (out["matte"] - truth[:, :1]).abs()[valid]
    assert err.max() < 0.03  # bilinear
    # I_UV is resampled nearest: every coordinate is one of the source's, unchanged
    src_values = set(map(tuple, uv[0].permute(1, 2, 0).reshape(-1, 3).tolist()))
    got = out["uv"][0].permute(1, 2, 0)[valid[0, 0]]
    assert all(tuple(v) in src_values for v in got.tolist())
    assert torch.equal(out["frame_index"], batch["frame_index"])


def test_warp_batch_keeps_an_earlier_border_and_the_identity_keeps_the_pixels():
    size = 16
    world = _smooth_world(3, size)
    batch = shift_batch({"image": world.expand(2, -1, -1, -1)}, torch.tensor([[3, 0], [0, -2]]))
    out = warp_batch(batch, torch.eye(2).expand(2, 2, 2))
    v = out["valid"].bool()
    assert not v[batch["valid"] == 0].any()  # what the shift brought in stays invalid
    torch.testing.assert_close(out["image"].expand(-1, 3, -1, -1)[v.expand(-1, 3, -1, -1)],
                               batch["image"][v.expand(-1, 3, -1, -1)])
    with pytest.raises(ValueError, match="A must be"):
        warp_batch(batch, torch.eye(2)[None])


def test_the_generator_turns_its_background_features_with_the_sample():
    # A static world seen through the frame and through the background generator's cached canvas: after the
    # same shift and turn, the frame and the background features still show the same world point per pixel.
    cfg = ModelConfig.preset("tiny", use_background_plate=False, reference_frames=0)
    gen = AvatarGenerator(cfg).eval()
    n = gen.background_generator.canvas_size
    world = _smooth_world(cfg.bg_feat_channels, n)
    centre = gen.background_generator.max_offset // 2
    frame = crop_windows(world, cfg.size, batch=2)[:, :3]
    shifts = torch.tensor([[2, -3], [-1, 0]])
    A = draw_similarity(2, 10.0, 0.1, generator=torch.Generator().manual_seed(4))
    sample = warp_batch(shift_batch({"image": frame}, shifts), A)
    render = torch.zeros(2, 3, cfg.size, cfg.size)
    uv = torch.zeros(2, 3, cfg.size, cfg.size)
    out = gen(render, uv, bg_offset=centre - shifts, bg_canvas=world, bg_warp=A)
    v = sample["valid"].bool().expand(-1, 3, -1, -1)
    assert v.float().mean() > 0.6
    assert (out["bg_features"][:, :3] - sample["image"]).abs()[v].max() < 0.03


def test_draw_similarity_stays_in_range():
    A = draw_similarity(2000, 10.0, 0.1, generator=torch.Generator().manual_seed(0))
    k = torch.linalg.det(A).sqrt()
    angle = torch.rad2deg(torch.atan2(A[:, 1, 0], A[:, 0, 0]))
    assert angle.abs().max() <= 10.0 + 1e-4 and angle.std() > 2.0
    assert k.min() >= 1 / 1.1 - 1e-5 and k.max() <= 1.1 + 1e-5 and k.std() > 0.01
    assert torch.allclose(draw_similarity(3, 0.0, 0.0), torch.eye(2).expand(3, 2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        draw_similarity(1, -1.0, 0.0)


def test_a_training_step_turns_the_sample_on_the_shifted_steps_only():
    from selfie_avatar.losses import resolve_loss_weights
    from selfie_avatar.models.reference import head_plane
    from selfie_avatar.training.module import AvatarModule

    cfg = ModelConfig.preset("tiny", num_frames=2)
    module = AvatarModule(model=dataclasses.asdict(cfg), loss_weights=resolve_loss_weights({"adversarial": 0.0}),
                          rotate_deg=10.0, zoom=0.1, reference_window=0)
    module.set_background_plate(torch.zeros(3, cfg.size, cfg.size))
    s = cfg.size
    batch = {"image": torch.rand(2, 3, s, s) * 2 - 1, "render": torch.rand(2, 3, s, s) * 2 - 1,
             "uv": torch.rand(2, 3, s, s), "matte": torch.rand(2, 1, s, s), "face_mask": torch.rand(2, 1, s, s),
             "frame_index": torch.tensor([0, 1])}
    ys, xs = torch.meshgrid((torch.arange(s) + 0.5) / s, (torch.arange(s) + 0.5) / s, indexing="ij")
    # Faces filling the frame, at two sizes: each sample has a head plane of its own.
    batch["uv"] = torch.stack([torch.stack([xs * k, ys * k, torch.ones_like(xs)]) for k in (1.0, 1.2)])
    module.reference.fill(head_plane(batch["uv"])[0], ((batch["image"] + 1) * 127.5).round().byte(),
                          torch.tensor([0, 1]))
    shifted, offsets, warp = module._augment(batch, 0)
    assert warp is not None and offsets is not None and shifted["valid"].min() == 0
    assert shifted["reference"].shape == (2, 6, s, s)
    plain, offsets, warp = module._augment(batch, 1)
    assert warp is None and offsets is None and "valid" not in plain
    # Unshifted, each sample's reference is its own frame (the window is 0 here), unmoved and moved onto itself.
    torch.testing.assert_close(plain["reference"][:, 3:], batch["image"], atol=1 / 127.5, rtol=0)
    module.hparams.rotate_deg = module.hparams.zoom = 0.0
    _, _, warp = module._augment(batch, 0)
    assert warp is None  # shift alone, as StyleAvatar
