"""Mattes: the MediaPipe selfie segmenter on a real photo, the landmark-hull fallback, temporal smoothing."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from selfie_avatar.errors import AssetMissingError
from selfie_avatar.prepare import matte as matte_mod
from selfie_avatar.prepare.matte import (
    HULL_SOURCE,
    SEGMENTER_SOURCE,
    SelfieSegmenter,
    create_matter,
    hull_matte,
    smooth_mattes,
)


@pytest.fixture(scope="module")
def segmenter():
    try:
        seg = SelfieSegmenter()
    except AssetMissingError as err:
        pytest.skip(f"selfie segmentation model not installed: {err}")
    yield seg
    seg.close()


# --- SelfieSegmenter ----------------------------------------------------------------------------------------


def test_segmenter_astronaut_person_vs_background(segmenter, astronaut):
    m = segmenter(astronaut)
    assert m.shape == astronaut.shape[:2] and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    face = m[90:170, 195:245]  # cheeks, eyes and mouth, clear of the hair edge
    assert face.min() > 0.5 and face.mean() > 0.95
    suit = m[300:420, 100:250]  # the orange suit
    assert suit.mean() > 0.9
    # The grey studio wall either side of the head.
    for wall in (m[0:50, 90:150], m[20:150, 320:380]):
        assert wall.max() < 0.2 and wall.mean() < 0.05


def test_segmenter_single_and_batch_shapes(segmenter, astronaut):
    frame = np.ascontiguousarray(astronaut[40:280, 60:380])  # 240x320, not square
    single = segmenter(frame)
    assert single.shape == (240, 320) and single.dtype == np.float32
    batch = segmenter(np.stack([frame, frame[:, ::-1]]))
    assert batch.shape == (2, 240, 320) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], single, atol=1e-6)
    # Each batch entry is its own frame's matte, and the mirrored frame's matte roughly mirrors the first.
    np.testing.assert_allclose(batch[1], segmenter(np.ascontiguousarray(frame[:, ::-1])), atol=1e-6)
    assert np.abs(batch[1][:, ::-1] - single).mean() < 0.1
    assert segmenter(np.zeros((0, 240, 320, 3), np.uint8)).shape == (0, 240, 320)


@pytest.mark.parametrize("grey", [40, 128, 220])
def test_segmenter_uniform_grey_is_background(segmenter, grey):
    m = segmenter(np.full((180, 240, 3), grey, np.uint8))
    assert m.mean() < 0.05


def test_segmenter_rejects_bad_frames(segmenter):
    with pytest.raises(ValueError, match="uint8"):
        segmenter(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(64, 64, 4\)"):
        segmenter(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="H, W > 0"):
        segmenter(np.zeros((0, 64, 3), np.uint8))


def test_segmenter_closed_and_context_manager(segmenter):
    assert segmenter.source == SEGMENTER_SOURCE
    with SelfieSegmenter(segmenter.model_path, num_threads=1) as seg:
        assert seg(np.zeros((32, 32, 3), np.uint8)).shape == (32, 32)
    with pytest.raises(RuntimeError, match="closed"):
        seg(np.zeros((32, 32, 3), np.uint8))


def test_create_matter_returns_none_without_model(monkeypatch, caplog):
    def missing(name, explicit=None):
        raise AssetMissingError(f"model file for '{name}' was not found (test)")

    monkeypatch.setattr(matte_mod, "resolve_asset", missing)
    with caplog.at_level(logging.WARNING, logger="selfie_avatar.prepare.matte"):
        assert create_matter() is None
    assert "was not found (test)" in caplog.text


def test_create_matter_returns_segmenter(segmenter):
    matter = create_matter(segmenter.model_path)
    assert isinstance(matter, SelfieSegmenter)
    matter.close()


# --- hull_matte ---------------------------------------------------------------------------------------------


def _ellipse(cx=100.0, cy=90.0, rx=30.0, ry=40.0, n=36):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def test_hull_matte_inside_outside_and_monotone_edge():
    pts = _ellipse()
    m = hull_matte(pts, 180, 200)
    assert m.shape == (180, 200) and m.dtype == np.float32
    assert HULL_SOURCE == "landmark_hull"
    assert m[70:110, 85:115].min() > 0.99  # well inside the hull
    assert m[:, :30].max() < 1e-3 and m[:, 180:].max() < 1e-3  # far to either side
    # Along a row through the centre the matte rises then falls, never wiggling.
    row = m[90, :100]
    assert np.all(np.diff(row) >= -1e-6)
    assert np.all(np.diff(m[90, 100:]) <= 1e-6)
    # Half-way point sits at the hull edge grown by dilate * size (size = 80, the hull's larger side).
    x_half = np.interp(0.5, row, np.arange(100))
    assert abs(x_half - (100 - 30 - 0.08 * 80)) < 1.5


def test_hull_matte_parameters():
    pts = _ellipse()
    hard = hull_matte(pts, 180, 200, dilate=0.0, feather=0.0)
    assert set(np.unique(hard)) <= {0.0, 1.0}
    assert abs(hard.sum() - np.pi * 30 * 40) < 0.03 * np.pi * 30 * 40  # area of the (36-gon) ellipse
    assert hull_matte(pts, 180, 200, dilate=0.2).sum() > hull_matte(pts, 180, 200, dilate=0.0).sum()


def test_hull_matte_batch_extra_coords_and_missing_frames():
    pts = np.concatenate([_ellipse(), np.zeros((36, 1))], axis=1)  # (P, 3): z is ignored
    batch = np.stack([pts, pts + [20.0, 0.0, 0.0], np.full_like(pts, np.nan)])
    m = hull_matte(batch, 180, 200)
    assert m.shape == (3, 180, 200) and m.dtype == np.float32
    np.testing.assert_allclose(m[0], hull_matte(pts[:, :2], 180, 200))
    np.testing.assert_allclose(m[1][:, 40:], m[0][:, 20:-20], atol=1e-5)  # shifted hull, shifted matte
    assert m[2].max() == 0.0  # untracked frame


def test_hull_matte_partly_outside_frame():
    m = hull_matte(_ellipse(cx=-5.0), 180, 200)
    assert m[90, 0] > 0.99 and m[90, 60] < 1e-3


def test_hull_matte_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        hull_matte(np.zeros(5), 10, 10)
    with pytest.raises(ValueError, match="P >= 3"):
        hull_matte(np.zeros((2, 2)), 10, 10)
    with pytest.raises(ValueError, match="dilate"):
        hull_matte(_ellipse(), 10, 10, dilate=-0.1)
    with pytest.raises(ValueError, match="height and width"):
        hull_matte(_ellipse(), 0, 10)
    with pytest.raises(ValueError, match="one point"):
        hull_matte(np.ones((5, 2)), 10, 10)


# --- smooth_mattes ------------------------------------------------------------------------------------------


def test_smooth_mattes_uncertainty_weighted():
    prev = np.array([[0.0, 1.0, 1.0]], np.float32)
    cur = np.array([[1.0, 0.0, 0.5]], np.float32)
    out = smooth_mattes(prev, cur, alpha=0.7)
    assert out.dtype == np.float32
    # Confident pixels follow the current frame (no ghost of a moving head); the uncertain one leans back.
    assert out[0, 0] > 0.999 and out[0, 1] < 1e-3
    assert out[0, 2] == pytest.approx(0.5 + 0.7 * 0.5, abs=1e-5)


def test_smooth_mattes_plain_ema_and_first_frame():
    cur = np.full((4, 4), 0.9, np.float32)
    first = smooth_mattes(None, cur)
    np.testing.assert_array_equal(first, cur)
    assert first is not cur
    out = smooth_mattes(np.zeros((4, 4)), cur, alpha=0.25, uncertainty_weighted=False)
    np.testing.assert_allclose(out, 0.75 * 0.9, atol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        smooth_mattes(np.zeros((3, 4)), cur)
    with pytest.raises(ValueError, match="alpha"):
        smooth_mattes(None, cur, alpha=1.0)
