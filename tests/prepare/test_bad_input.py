"""Bad input gets a clear error naming the file and what to do, or a documented working result; nothing
half-written is left behind."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from selfie_avatar.config import PrepareConfig
from selfie_avatar.errors import NoFaceError, VideoError
from selfie_avatar.prepare import pipeline
from selfie_avatar.prepare.pipeline import prepare
from tests.media_factory import make_clip, make_moving_square_frames, truncate_file, write_garbage


def _run(video, out, **kw):
    return prepare(PrepareConfig(video=str(video), out=str(out), size=64, device="cpu", write_video=False, **kw),
                   progress=False)


def _nothing_left(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "out"] == []


@pytest.mark.parametrize("kind", ["missing", "garbage", "text", "still_jpg"])
def test_unreadable_inputs(tmp_path, kind, astronaut):
    path = tmp_path / {"missing": "nope.mp4", "garbage": "garbage.mp4", "text": "notes.mp4",
                       "still_jpg": "photo.jpg"}[kind]
    if kind == "garbage":
        write_garbage(path, 4096)
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "still_jpg":
        cv2.imwrite(str(path), astronaut[..., ::-1])
    with pytest.raises(VideoError) as e:
        _run(path, tmp_path / "out")
    assert path.name in str(e.value)
    assert _nothing_left(tmp_path)


def test_single_frame_video(tmp_path, sample_frames):
    path = tmp_path / "one.mp4"
    make_clip(path, sample_frames[:1])
    with pytest.raises(VideoError, match="one.mp4.*1 frame"):
        _run(path, tmp_path / "out")
    assert _nothing_left(tmp_path)


def test_no_face_anywhere(tmp_path):
    path = tmp_path / "squares.mp4"
    make_clip(path, make_moving_square_frames(12, 128, 128, seed=0))
    with pytest.raises(NoFaceError, match="squares.mp4: no usable face"):
        _run(path, tmp_path / "out")
    assert _nothing_left(tmp_path)


def test_face_in_only_some_frames(tmp_path, sample_frames):
    frames = sample_frames[:40].copy()
    frames[10:13] = 0  # a 3-frame gap: bridged
    frames[20:32] = 0  # a 12-frame gap: dropped from training
    path = tmp_path / "gaps.mp4"
    make_clip(path, frames)
    res = _run(path, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["frame_status"] == {"detected": 25, "interpolated": 3, "missing": 12}
    used = set(meta["split"]["train"]) | set(meta["split"]["validation"]) | set(meta["split"]["test"])
    assert used.isdisjoint(range(20, 32)) and {10, 11, 12} <= used
    assert res.num_valid == 28


def test_tiny_face(tmp_path, sample_frames):
    small = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in sample_frames[:8]])
    canvas = np.full((8, 256, 256, 3), 128, np.uint8)
    canvas[:, 100:116, 100:116] = small
    path = tmp_path / "tiny.mp4"
    make_clip(path, canvas)
    with pytest.raises(NoFaceError, match="tiny.mp4"):
        _run(path, tmp_path / "out")


@pytest.mark.parametrize("shape", [(1080, 1920), (1280, 720)], ids=["1080p", "portrait_720x1280"])
def test_large_and_portrait_videos(tmp_path, sample_frames, shape):
    h, w = shape
    frames = np.full((6, h, w, 3), 90, np.uint8)
    side = min(h, w) // 2
    # the head region of the 256 px sample (face about 50 px wide) blown up: a face about a fifth of the frame
    # height, as in a real 1080p or phone selfie
    head = sample_frames[:6, 0:128, 46:174]
    face = np.stack([cv2.resize(f, (side, side)) for f in head])
    y0, x0 = (h - side) // 3, (w - side) // 2
    frames[:, y0:y0 + side, x0:x0 + side] = face
    path = tmp_path / "big.mp4"
    make_clip(path, frames)
    res = _run(path, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert res.num_valid == 6 and meta["source"]["width"] == w and meta["source"]["height"] == h
    c = meta["crop"]
    # the crop is centred on the face, not the frame
    assert abs(c["x0"] + c["side"] / 2 - (x0 + side / 2)) < 0.2 * side


def test_small_face_in_a_wide_frame_is_found_by_the_region_search(tmp_path, sample_frames):
    """MediaPipe's short-range detector sees a 1920x1080 frame at 128 px; the region search still finds the face."""
    frames = np.full((4, 1080, 1920, 3), 90, np.uint8)
    head = sample_frames[:4, 0:128, 46:174]
    frames[:, 340:740, 760:1160] = np.stack([cv2.resize(f, (400, 400)) for f in head])  # face ~160 px wide
    path = tmp_path / "wide.mp4"
    make_clip(path, frames)
    from selfie_avatar.prepare.landmarks import MediaPipeLandmarker

    with MediaPipeLandmarker(search_rois=False) as plain:
        assert not any(plain.detect(f, 40 * i).found for i, f in enumerate(frames))  # too small for the detector
    assert _run(path, tmp_path / "out").num_valid == 4


def test_truncated_video_keeps_what_decodes(tmp_path, sample_frames):
    full = tmp_path / "full.mp4"
    make_clip(full, sample_frames[:40])
    cut = tmp_path / "cut.mp4"
    truncate_file(full, cut, 0.6)
    try:
        res = _run(cut, tmp_path / "out")
    except VideoError as e:  # documented alternative: nothing decodes at all
        assert "cut.mp4" in str(e)
        return
    assert 2 <= res.num_frames < 40


def test_existing_output_is_refused_then_replaced(tmp_path, sample_clip):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        _run(sample_clip, out, max_frames=4)
    assert (out / "keep.txt").read_text() == "mine"
    _run(sample_clip, out, max_frames=4, overwrite=True)
    assert (out / "meta.json").is_file() and not (out / "keep.txt").exists()


def test_interrupted_run_leaves_nothing(tmp_path, sample_clip, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_frame_images", boom)
    with pytest.raises(KeyboardInterrupt):
        _run(sample_clip, tmp_path / "out", max_frames=6)
    assert list(tmp_path.iterdir()) == []


def test_missing_segmenter_falls_back_and_says_so(tmp_path, sample_clip, monkeypatch):
    monkeypatch.setattr(pipeline, "create_matter", lambda path, **kw: None)
    _run(sample_clip, tmp_path / "out", max_frames=6)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["matte_source"].startswith("landmark_hull")
