import numpy as np
import pytest

from selfie_avatar.tracking.crop import CropBox, compute_crop, crop_frame, fit_inside, outside_fraction, paste_back


def test_points_round_trip_and_affine_agree():
    box = CropBox(x0=100.5, y0=-20.0, side=300.0, size=256)
    pts = np.array([[100.5, -20, 3], [400.5, 280, -6], [250, 130, 0]], np.float32)
    c = box.points_to_crop(pts)
    assert np.allclose(c[0, :2], 0) and np.allclose(c[1, :2], 256)
    assert c[0, 2] == pytest.approx(3 * 256 / 300)
    hom = np.c_[pts[:, :2], np.ones(3)] @ box.affine().T
    assert np.allclose(hom, c[:, :2], atol=1e-4)
    assert np.allclose(box.points_to_frame(c), pts, atol=1e-4)


def test_crop_holds_the_face_through_motion():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (478, 3))
    shifts = np.c_[np.linspace(0, 60, 50), np.zeros(50), np.zeros(50)]
    pts = base[None] + shifts[:, None] + [200, 150, 0]
    box = compute_crop(pts, np.ones(50, bool), 256, crop_scale=1.5, shift_y=0.0)
    c = box.points_to_crop(pts)
    assert c[..., :2].min() >= 0 and c[..., :2].max() <= 256
    assert box.side >= 150


def test_crop_frame_pads_outside_and_matches_a_plain_slice():
    frame = (np.arange(200 * 300 * 3) % 251).astype(np.uint8).reshape(200, 300, 3)
    box = CropBox(50, 40, 100, 100)  # scale 1: an exact slice
    assert np.array_equal(crop_frame(frame, box), frame[40:140, 50:150])
    out = crop_frame(frame, CropBox(-50, -50, 200, 64))  # reaches outside: replicated border, no error
    assert out.shape == (64, 64, 3)
    shrunk = crop_frame(frame, CropBox(0, 0, 200, 50))  # area pre-shrink path
    assert shrunk.shape == (50, 50, 3)


def test_paste_back_restores_the_inside_and_keeps_the_outside():
    frame = np.full((120, 160, 3), 10, np.uint8)
    box = CropBox(40, 20, 80, 80)
    crop = np.full((80, 80, 3), 200, np.uint8)
    out = paste_back(frame, crop, box, feather=0.05)
    assert out[60, 80].tolist() == [200, 200, 200]  # centre of the crop
    assert out[5, 5].tolist() == [10, 10, 10]  # outside
    assert 10 < out[60, 41, 0] < 200  # blended border


def test_with_size_cuts_the_same_region_at_another_side():
    box = CropBox(10.0, 20.0, 100.0, 256)
    small = box.with_size(64)
    assert (small.x0, small.y0, small.side, small.size) == (10.0, 20.0, 100.0, 64)
    pts = np.array([[60.0, 70.0, 0.0]])
    np.testing.assert_allclose(small.points_to_crop(pts)[0, :2], box.points_to_crop(pts)[0, :2] / 4)


def test_crop_stays_inside_the_frame_when_asked():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (10, 478, 3)) + [20, 10, 0]  # a face near the top-left corner of a 300x200 frame
    free = compute_crop(pts, np.ones(10, bool), 128, crop_scale=2.5)
    assert free.x0 < 0 and free.y0 < 0 and free.side > 200  # unconstrained it reaches outside and past the height
    inside = compute_crop(pts, np.ones(10, bool), 128, crop_scale=2.5, frame_size=(300, 200))
    assert inside.side == pytest.approx(200)  # shrunk to the shorter side
    assert inside.x0 >= 0 and inside.y0 >= 0
    assert inside.x0 + inside.side <= 300 + 1e-6 and inside.y0 + inside.side <= 200 + 1e-6
    assert outside_fraction(inside, 300, 200) == pytest.approx(0.0)
    assert outside_fraction(free, 300, 200) > 0.3


def test_fit_inside_moves_as_little_as_needed():
    box = CropBox(250, 10, 100, 64)  # 50 px past the right edge of a 300 x 200 frame
    moved = fit_inside(box, 300, 200)
    assert (moved.x0, moved.y0, moved.side) == (200, 10, 100)
    assert fit_inside(CropBox(10, 20, 50, 64), 300, 200) == CropBox(10, 20, 50, 64)  # already inside: unchanged
    with pytest.raises(ValueError, match="positive"):
        fit_inside(box, 0, 200)
