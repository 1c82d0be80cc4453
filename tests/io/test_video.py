"""Tests for selfie_avatar.io.video: probing, display geometry (rotation, SAR), robustness, atomic writing."""

from __future__ import annotations

import inspect
import logging

import av
import cv2
import numpy as np
import pytest

import selfie_avatar.io.video as video_module
from selfie_avatar.errors import VideoError
from selfie_avatar.io import VideoWriter, iter_frames, probe_video, read_video, write_video
from tests.media_factory import (
    make_audio_only,
    make_clip,
    make_moving_square_frames,
    truncate_file,
    write_garbage,
)

H, W = 48, 64


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def smooth_frames():
    return make_moving_square_frames(12, H, W, seed=0)


@pytest.fixture(scope="module")
def clip_with_audio(media, smooth_frames):
    return make_clip(media / "with_audio.mp4", smooth_frames, fps=25, audio=True)


def _marker_frames(n=3, h=H, w=W):
    """Dark frames with a bright 8x8 marker in the stored (coded) top-left corner."""
    frames = np.full((n, h, w, 3), 20, np.uint8)
    frames[:, :8, :8] = 235
    return frames


def _bright_corners(img):
    h, w = img.shape[:2]
    corners = {"top_left": img[:4, :4], "top_right": img[:4, w - 4 :], "bottom_left": img[h - 4 :, :4],
               "bottom_right": img[h - 4 :, w - 4 :]}  # fmt: skip
    return {name for name, patch in corners.items() if patch.mean() > 128}


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_keeps_count_rate_size_and_pixels(tmp_path, smooth_frames):
    path = write_video(tmp_path / "out.mp4", iter(smooth_frames), fps=25)
    info = probe_video(path)
    assert (info.width, info.height, info.coded_width, info.coded_height) == (W, H, W, H)
    assert info.fps == pytest.approx(25.0)
    assert info.num_frames == len(smooth_frames)
    assert info.duration == pytest.approx(len(smooth_frames) / 25, abs=0.05)
    assert (info.rotation, info.sample_aspect_ratio, info.has_audio, info.codec) == (0, 1.0, False, "h264")
    frames, info2 = read_video(path)
    assert info2 == info
    assert frames.shape == smooth_frames.shape and frames.dtype == np.uint8
    error = np.abs(frames.astype(np.int16) - smooth_frames)
    assert error.mean() < 2.5 and np.percentile(error, 99) < 16


def test_ntsc_rate_is_kept_exactly(tmp_path, smooth_frames):
    path = write_video(tmp_path / "ntsc.mp4", smooth_frames[:3], fps=30000 / 1001)
    assert probe_video(path).fps == pytest.approx(30000 / 1001, rel=1e-6)


@pytest.mark.parametrize(("height", "width"), [(1280, 720), (720, 1280)], ids=["portrait", "landscape"])
def test_portrait_and_landscape_keep_their_orientation(tmp_path, height, width):
    frames = make_moving_square_frames(2, height, width, seed=1)
    path = make_clip(tmp_path / "clip.mp4", frames)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (width, height, 0)
    decoded, _ = read_video(path)
    assert decoded.shape == (2, height, width, 3)
    assert np.abs(decoded.astype(np.int16) - frames).mean() < 2.5


def test_odd_sizes_are_padded_not_scaled(tmp_path):
    frames = make_moving_square_frames(3, 49, 67, seed=2)
    info = probe_video(write_video(tmp_path / "odd.mp4", frames, fps=25))
    assert (info.width, info.height) == (68, 50)
    decoded, _ = read_video(tmp_path / "odd.mp4")
    # Scaling would shift content everywhere; padding leaves the original pixels where they were.
    assert np.abs(decoded[:, :49, :67].astype(np.int16) - frames).mean() < 2.5
    assert np.abs(decoded[:, 49, :67].astype(np.int16) - frames[:, 48]).mean() < 4  # replicated edge row


def test_single_frame_video_decodes_to_one_frame(tmp_path):
    frame = make_moving_square_frames(1, H, W, seed=3)
    for path in (make_clip(tmp_path / "one.mp4", frame), write_video(tmp_path / "one_w.mp4", frame, fps=30)):
        assert probe_video(path).num_frames == 1
        assert len(list(iter_frames(path))) == 1


# ------------------------------------------------------------------------------------------- display geometry


@pytest.mark.parametrize(("sar", "width"), [((2, 1), 128), (4 / 3, 85), ((1, 2), 32)])
def test_non_square_pixels_decode_to_the_display_width(tmp_path, sar, width):
    frames = make_moving_square_frames(2, H, W, seed=4)
    path = make_clip(tmp_path / "sar.mp4", frames, sar=sar)
    info = probe_video(path)
    assert (info.width, info.height, info.coded_width) == (width, H, W)
    assert info.sample_aspect_ratio == pytest.approx(width / W, abs=0.01)
    decoded, _ = read_video(path)
    assert decoded.shape == (2, H, width, 3)
    expected = cv2.resize(frames[0], (width, H), interpolation=cv2.INTER_LINEAR)
    assert np.abs(decoded[0].astype(np.int16) - expected).mean() < 4


# A marker stored top-left ends up where a clockwise turn by `rotation` moves that corner.
@pytest.mark.parametrize(
    ("rotation", "corner"), [(0, "top_left"), (90, "top_right"), (180, "bottom_right"), (270, "bottom_left")]
)
def test_rotated_clip_decodes_upright(tmp_path, rotation, corner):
    path = make_clip(tmp_path / "rot.mp4", _marker_frames(), rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((H, W) if rotation in (90, 270) else (W, H))
    frames, _ = read_video(path)
    assert frames.shape == (3, info.height, info.width, 3)
    assert all(_bright_corners(frame) == {corner} for frame in frames)
    # OpenCV reads the same display matrix independently and also turns frames upright: both must agree.
    capture = cv2.VideoCapture(str(path))
    ok, reference = capture.read()
    capture.release()
    assert ok and reference.shape == frames[0].shape
    assert np.abs(frames[0].astype(np.int16) - reference[..., ::-1]).mean() < 3


def test_phone_style_portrait_is_landscape_plus_rotation(tmp_path):
    frames = _marker_frames(n=2, h=720, w=1280)
    path = make_clip(tmp_path / "phone.mp4", frames, rotation=90)
    info = probe_video(path)
    assert (info.coded_width, info.coded_height, info.width, info.height) == (1280, 720, 720, 1280)
    decoded = next(iter_frames(path))
    assert decoded.shape == (1280, 720, 3) and _bright_corners(decoded) == {"top_right"}


# ----------------------------------------------------------------------------------------------- streaming


def test_max_frames_is_honoured(clip_with_audio):
    assert len(list(iter_frames(clip_with_audio, max_frames=5))) == 5
    assert read_video(clip_with_audio, max_frames=3)[0].shape[0] == 3
    assert len(list(iter_frames(clip_with_audio, max_frames=1000))) == 12
    with pytest.raises(ValueError, match="max_frames"):
        iter_frames(clip_with_audio, max_frames=0)


def test_iter_frames_is_lazy(clip_with_audio, monkeypatch):
    converted = []
    original = video_module._to_display
    monkeypatch.setattr(video_module, "_to_display", lambda frame, info: converted.append(1) or original(frame, info))
    frames = iter_frames(clip_with_audio)
    assert inspect.isgenerator(frames)
    assert converted == []
    first, second = next(frames), next(frames)
    assert len(converted) == 2 and first.shape == second.shape == (H, W, 3)
    frames.close()


def test_progress_bar_does_not_change_frames(clip_with_audio):
    assert len(list(iter_frames(clip_with_audio, progress=True))) == 12


# ------------------------------------------------------------------------------------------------- bad input


def _still(path, ext):
    cv2.imwrite(str(path.with_suffix(ext)), make_moving_square_frames(1, H, W)[0])
    return path.with_suffix(ext)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.mp4", "does not exist"),
        (lambda p: write_garbage(p / "garbage.mp4", 5000), "not a readable video"),
        (lambda p: (p / "notes.txt").write_text("hello\n" * 200) and p / "notes.txt", "text file"),
        (lambda p: (p / "notes.mp4").write_text("hello\n" * 200) and p / "notes.mp4", "not a readable video"),
        (lambda p: _still(p / "photo", ".png"), "still image"),
        (lambda p: _still(p / "photo", ".jpg"), "still image"),
        (lambda p: make_audio_only(p / "voice.m4a"), "no video stream"),
    ],
    ids=["missing", "garbage", "text", "text-named-mp4", "png", "jpg", "audio-only"],
)
def test_unusable_inputs_raise_video_error_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    for call in (probe_video, iter_frames, read_video):
        with pytest.raises(VideoError, match=message) as raised:
            call(path)
        assert str(path) in str(raised.value)


def test_truncated_file_yields_the_frames_that_decode(tmp_path, caplog):
    full = make_clip(tmp_path / "full.mp4", make_moving_square_frames(30, H, W, seed=5))
    cut = truncate_file(full, tmp_path / "cut.mp4", 0.6)
    with caplog.at_level(logging.WARNING, logger="selfie_avatar"):
        frames = list(iter_frames(cut))
    assert 0 < len(frames) < 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(cut) in m and f"read {len(frames)} of 30" in m for m in warnings), warnings


def test_file_cut_before_any_frame_raises(tmp_path):
    full = make_clip(tmp_path / "full.mp4", make_moving_square_frames(10, H, W, seed=6))
    header_only = truncate_file(full, tmp_path / "header_only.mp4", 0.05)
    with pytest.raises(VideoError, match="header_only.mp4"):
        list(iter_frames(header_only))
    # Without faststart the index is at the end, so a cut file cannot be opened at all.
    no_index = make_clip(tmp_path / "no_index.mp4", make_moving_square_frames(10, H, W, seed=6), faststart=False)
    with pytest.raises(VideoError, match="incomplete"):
        probe_video(truncate_file(no_index, tmp_path / "no_index_cut.mp4", 0.7))


# --------------------------------------------------------------------------------------------------- writing


def test_writer_leaves_nothing_behind_when_the_block_raises(tmp_path, smooth_frames):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(target, fps=25) as writer:
            writer.write(smooth_frames[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # An existing result is left untouched by a failed rewrite.
    target.write_bytes(b"previous")
    with pytest.raises(ValueError, match="resize frames"):
        with VideoWriter(target, fps=25) as writer:
            writer.write(smooth_frames[0])
            writer.write(smooth_frames[0][:10])
    assert target.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


def test_writer_rejects_empty_output_and_bad_frames(tmp_path):
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=25):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="uint8"):
        with VideoWriter(tmp_path / "float.mp4", fps=25) as writer:
            writer.write(np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with pytest.raises(RuntimeError, match="inside"):
        VideoWriter(tmp_path / "x.mp4", fps=25).write(np.zeros((H, W, 3), np.uint8))


def test_audio_from_keeps_an_audio_stream(tmp_path, clip_with_audio, smooth_frames):
    out = write_video(tmp_path / "dubbed.mp4", smooth_frames, fps=25, audio_from=clip_with_audio)
    assert probe_video(out).has_audio
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        audio_seconds = sum(frame.samples for frame in container.decode(audio)) / audio.codec_context.sample_rate
    assert audio_seconds == pytest.approx(len(smooth_frames) / 25, abs=0.1)


def test_audio_from_without_audio_or_missing(tmp_path, smooth_frames):
    silent = make_clip(tmp_path / "silent.mp4", smooth_frames[:2])
    assert not probe_video(write_video(tmp_path / "out.mp4", smooth_frames[:2], 25, audio_from=silent)).has_audio
    with pytest.raises(VideoError, match="missing.mp4"):
        VideoWriter(tmp_path / "out2.mp4", fps=25, audio_from=tmp_path / "missing.mp4")


# ---------------------------------------------------------------------------------------------- real footage


def test_real_selfie_probes_and_streams(shared_data):
    path = shared_data / "selfie_d6.mp4"
    info = probe_video(path)
    assert (info.width, info.height) == (480, 480)
    assert info.fps == pytest.approx(30, abs=0.1)
    assert info.num_frames == pytest.approx(1008, abs=2)
    frames = list(iter_frames(path, max_frames=10))
    assert len(frames) == 10 and all(f.shape == (480, 480, 3) and f.dtype == np.uint8 for f in frames)
