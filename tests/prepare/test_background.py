"""Background plate: recovery of a known background behind a moving person, sampling, masking, errors."""

from __future__ import annotations

import numpy as np
import pytest

from selfie_avatar.prepare.background import BackgroundEstimator, estimate_background

H, W = 96, 128


def _scene(n=60, seed=0):
    """Known smooth background, a blob sweeping across it and a block covering the same spot in every frame.

    Returns frames (with sensor noise), their true mattes, the true background and the always-covered mask.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    bg = np.stack([40 + 1.2 * xx, 60 + 1.5 * yy, 180 - 0.5 * xx - 0.4 * yy], -1)
    static = (np.abs(xx - 64) < 10) & (yy > 70)  # e.g. a shoulder that never moves
    frames, mattes = [], []
    for i in range(n):
        cx = 20 + (W - 40) * (0.5 - 0.5 * np.cos(2 * np.pi * i / n))  # out and back across the frame
        cy = 40 + 10 * np.sin(4 * np.pi * i / n)
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 < 18**2
        fg = blob | static
        f = bg + rng.normal(0, 2.0, bg.shape)
        f[fg] = (230, 30, 200)  # opaque foreground, far from any background colour
        frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
        mattes.append(fg.astype(np.float32))
    return np.stack(frames), np.stack(mattes), np.round(bg).astype(np.uint8), static


def test_recovers_known_background_and_flags_unseen():
    frames, mattes, bg, static = _scene()
    est = BackgroundEstimator(H, W, dilate_px=2)
    for f, m in zip(frames, mattes):
        est.add(f, m)
    plate, seen = est.result()
    assert plate.shape == (H, W, 3) and plate.dtype == np.uint8
    assert seen.shape == (H, W) and seen.dtype == bool
    # Never seen: the static block, and nothing far from it.
    assert not seen[static].any()
    assert seen[:60].all() and seen[:, :40].all() and seen[:, 90:].all()
    err = np.abs(plate.astype(int) - bg)
    assert err[seen].max() <= 4 and err[seen].mean() < 1.0
    # Inpainted pixels continue the surrounding colour, not the foreground's magenta.
    assert err[~seen].mean() < 12
    assert np.abs(plate[~seen].astype(int) - (230, 30, 200)).min(-1).min() > 40


def test_face_mask_excludes_pixels_the_matte_missed():
    frames, mattes, bg, static = _scene(n=30)
    mattes[:, static] = 0.0  # the matte misses the block; the face mask catches it
    plate, seen = estimate_background(frames, mattes, np.broadcast_to(static, mattes.shape), dilate_px=1)
    assert not seen[static].any()
    assert np.abs(plate.astype(int) - bg)[seen].max() <= 4
    # Without the face mask the block is "seen" and leaks into the plate.
    plate2, seen2 = estimate_background(frames, mattes, dilate_px=1)
    assert seen2[static].all()
    assert np.abs(plate2.astype(int) - bg)[static].mean() > 50


def test_dilation_protects_soft_edges():
    frames, mattes, bg, _ = _scene(n=30)
    # A halo of person colour just outside the matte edge, as soft mattes leave.
    from scipy.ndimage import binary_dilation

    for f, m in zip(frames, mattes):
        ring = binary_dilation(m > 0.5, iterations=2) & (m < 0.5)
        f[ring] = (230, 30, 200)
    tight, _ = estimate_background(frames, mattes, dilate_px=0)
    wide, seen = estimate_background(frames, mattes, dilate_px=3)
    assert np.abs(wide.astype(int) - bg)[seen].max() <= 4
    assert np.abs(tight.astype(int) - bg).max() > np.abs(wide.astype(int) - bg)[seen].max()


def test_function_matches_streaming_and_accepts_iterables():
    frames, mattes, _, _ = _scene(n=25)
    est = BackgroundEstimator(H, W, max_samples=8)
    for f, m in zip(frames, mattes):
        est.add(f, m)
    a = est.result()
    b = estimate_background(iter(list(frames)), (m for m in mattes), max_samples=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_median_matches_nanmedian():
    rng = np.random.default_rng(3)
    n = 10
    frames = rng.integers(0, 256, (n, 6, 7, 3), dtype=np.uint8)
    mattes = (rng.random((n, 6, 7)) < 0.4).astype(np.float32)
    mattes[:, 0, 0] = 1.0  # one pixel never seen
    est = BackgroundEstimator(6, 7, dilate_px=0)
    for f, m in zip(frames, mattes):
        est.add(f, m)
    plate, seen = est.result()
    masked = np.where((mattes < 0.5)[..., None], frames.astype(float), np.nan)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmedian(masked, axis=0)
    ref = np.floor(ref + 0.5)  # halves round up
    assert not seen[0, 0] and seen.sum() == 6 * 7 - 1
    np.testing.assert_array_equal(plate[seen], ref[seen])


def test_even_subsampling_over_unknown_length():
    est = BackgroundEstimator(4, 4, max_samples=50)
    frame, matte = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)
    n = 1000
    kept = [est.add(frame, matte) for _ in range(n)]
    idx = np.array(est.sample_indices)
    assert est.num_added == n and sum(kept[-est.stride * 10:]) > 0
    assert 25 <= len(idx) <= 50
    assert idx[0] == 0 and idx[-1] >= n - est.stride  # spans the whole clip, start to end
    assert np.all(np.diff(idx) == est.stride)  # evenly spaced
    # The stored frames are the ones indexed: tag frames by value to check thinning moved the right rows.
    est = BackgroundEstimator(2, 2, max_samples=7, dilate_px=0)
    for i in range(100):
        est.add(np.full((2, 2, 3), i, np.uint8), np.zeros((2, 2), np.float32))
    idx = est.sample_indices
    assert [int(v) for v in est._frames[: len(idx), 0, 0, 0]] == idx
    plate, _ = est.result()
    assert plate[0, 0, 0] == int(np.floor(np.median(idx) + 0.5))


def test_short_clip_keeps_every_frame_and_initial_stride():
    est = BackgroundEstimator(4, 4, max_samples=10)
    for _ in range(7):
        est.add(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    assert est.sample_indices == list(range(7))
    est = BackgroundEstimator(4, 4, max_samples=10, stride=3)
    for _ in range(10):
        est.add(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    assert est.sample_indices == [0, 3, 6, 9]


def test_nothing_ever_seen_gives_flat_plate():
    est = BackgroundEstimator(8, 8)
    est.add(np.full((8, 8, 3), 9, np.uint8), np.ones((8, 8), np.float32))
    plate, seen = est.result()
    assert not seen.any() and plate.shape == (8, 8, 3)


def test_errors():
    est = BackgroundEstimator(8, 10)
    ok_f, ok_m = np.zeros((8, 10, 3), np.uint8), np.zeros((8, 10), np.float32)
    with pytest.raises(ValueError, match="no frames"):
        est.result()
    with pytest.raises(ValueError, match=r"\(10, 8, 3\)"):
        est.add(np.zeros((10, 8, 3), np.uint8), ok_m)
    with pytest.raises(ValueError, match="uint8"):
        est.add(ok_f.astype(np.float32), ok_m)
    with pytest.raises(ValueError, match=r"matte must be \(8, 10\), got \(8, 10, 1\)"):
        est.add(ok_f, ok_m[..., None])
    with pytest.raises(ValueError, match="divide uint8 by 255"):
        est.add(ok_f, ok_m.astype(np.uint8))
    with pytest.raises(ValueError, match="face_mask"):
        est.add(ok_f, ok_m, np.zeros((8, 9), bool))
    assert est.num_added == 0  # rejected frames are not counted
    with pytest.raises(ValueError, match="max_samples"):
        BackgroundEstimator(8, 10, max_samples=1)
    with pytest.raises(ValueError, match="fg_threshold"):
        BackgroundEstimator(8, 10, fg_threshold=0.0)
    with pytest.raises(ValueError, match="no frames given"):
        estimate_background(np.zeros((0, 8, 10, 3), np.uint8), np.zeros((0, 8, 10)))
    with pytest.raises(ValueError, match="fewer mattes"):
        estimate_background(np.zeros((3, 8, 10, 3), np.uint8), np.zeros((2, 8, 10)))
    with pytest.raises(ValueError, match="more mattes"):
        estimate_background(np.zeros((2, 8, 10, 3), np.uint8), np.zeros((3, 8, 10)))
    with pytest.raises(ValueError, match="fewer face masks"):
        estimate_background(np.zeros((2, 8, 10, 3), np.uint8), np.zeros((2, 8, 10)), np.zeros((1, 8, 10), bool))
