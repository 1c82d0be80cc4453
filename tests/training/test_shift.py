"""The translation augmentation keeps every input, target and the background window aligned pixel for pixel."""

import pytest
import torch

from selfie_avatar.models import AvatarGenerator, ModelConfig
from selfie_avatar.models.background_generator import crop_windows
from selfie_avatar.training.shift import composite_border, draw_shifts, shift_batch, shift_images


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
             "face_mask": frame[:, :1].clone(), "plate": frame[:1].clone(), "frame_index": torch.arange(3)}
    shifts = draw_shifts(3, centre, generator=torch.Generator().manual_seed(3))
    shifts[0] = torch.tensor([centre, -centre])  # the extremes are legal window offsets too
    out = shift_batch(batch, shifts)
    window = crop_windows(world, size, centre - shifts)  # what the generator's background features now show
    v = out["valid"].bool().expand(-1, 3, -1, -1)
    for key in ("image", "render", "uv", "plate"):
        assert torch.equal(out[key][v], window[v]), key  # aligned, pixel for pixel
    for key in ("matte", "face_mask"):
        assert torch.equal(out[key][v[:, :1]], window[:, :1][v[:, :1]]), key
    assert torch.equal(out["frame_index"], batch["frame_index"])
    # the pixels from outside the frame are exactly those a shift uncovers
    assert int((~out["valid"].bool()).sum(dim=(1, 2, 3))[0]) == size * size - (size - centre) ** 2


def test_the_generator_background_moves_with_the_shift():
    cfg = ModelConfig.preset("tiny", use_background_plate=False)
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
