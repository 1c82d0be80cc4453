"""Bad videos through `selfie-avatar prepare`, generated at test time: each either ends in one clear line naming
the file (and a failed `--overwrite` leaves the subject folder already there untouched), or gives a subject folder
that opens and checks whole."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from selfie_avatar import cli
from selfie_avatar.tracking.subject import Subject
from selfie_avatar.utils.native_log import NATIVE_LINE
from tests.conftest import SHARED_DATA
from tests.faults.conftest import digest
from tests.media_factory import make_clip, make_moving_square_frames, truncate_file, write_garbage


@pytest.fixture(scope="module")
def face_frames(tmp_path_factory) -> np.ndarray:
    """Eight real frames (the shared selfie, else the built-in sample), 256x256 RGB."""
    from selfie_avatar.io.video import read_video

    video = SHARED_DATA / "selfie_d6.mp4"
    if not video.is_file():
        from tests.prepare.conftest import build_short_sample

        video = build_short_sample(tmp_path_factory.mktemp("faces") / "sample.mp4", seconds=0.4)
    frames, _ = read_video(video, max_frames=8)
    return np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture
def existing_subject(train_subject, tmp_path):
    dst = tmp_path / "subject"
    shutil.copytree(train_subject, dst)
    return dst, {p.relative_to(dst).as_posix(): digest(p) for p in dst.rglob("*") if p.is_file()}


def _prepare(video, out, capsys, *extra):
    rc = cli.main(["prepare", str(video), "--out", str(out), "--size", "64", "--device", "cpu", "--no-write-video",
                   *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert not [ln for ln in err.splitlines() if NATIVE_LINE.match(ln)], err  # no MediaPipe/LiteRT noise
    return rc, err


def _make_bad(kind: str, folder, faces):
    if kind == "empty":
        (p := folder / "empty.mp4").write_bytes(b"")
    elif kind == "text":
        (p := folder / "notes.mp4").write_text("this is not a video\n" * 50)
    elif kind == "random_bytes":
        p = write_garbage(folder / "random.mp4", 65536)
    elif kind == "truncated_before_any_frame":
        p = truncate_file(make_clip(folder / "whole.mp4", faces, faststart=False), folder / "cut.mp4", 0.3)
    elif kind == "one_frame":
        p = make_clip(folder / "one.mp4", faces[:1])
    elif kind == "no_face":
        p = make_clip(folder / "squares.mp4", make_moving_square_frames(8, 128, 128, seed=0))
    elif kind == "still_photo":
        cv2.imwrite(str(p := folder / "photo.jpg"), faces[0][..., ::-1])
    return p


@pytest.mark.parametrize(("kind", "message"), [
    ("empty", "empty"), ("text", "not a video"), ("random_bytes", "not a video"),
    ("truncated_before_any_frame", "cut.mp4"), ("one_frame", "1 frame"), ("no_face", "no usable face"),
    ("still_photo", "photo.jpg"),
])
def test_a_bad_video_is_one_line_and_loses_nothing(kind, message, existing_subject, face_frames, tmp_path, capsys):
    subject, before = existing_subject
    video = _make_bad(kind, tmp_path, face_frames)
    rc, err = _prepare(video, subject, capsys, "--overwrite")
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert rc == 2 and len(lines) == 1, err
    assert video.name in lines[0] and message in lines[0], lines[0]
    after = {p.relative_to(subject).as_posix(): digest(p) for p in subject.rglob("*") if p.is_file()}
    assert after == before  # the subject folder that was there is untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".subject")]  # no half-built folder left


def _grayscale(f):
    g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    return np.repeat(g[..., None], 3, -1)


@pytest.mark.parametrize("kind", ["grayscale", "portrait", "non_square_pixels", "vp9_webm", "4k"])
def test_an_unusual_but_good_video_gives_a_whole_subject(kind, face_frames, tmp_path, capsys):
    f = face_frames
    if kind == "grayscale":
        video = make_clip(tmp_path / "grey.mp4", np.stack([_grayscale(x) for x in f]))
    elif kind == "portrait":
        video = make_clip(tmp_path / "portrait.mp4", np.stack([np.pad(x, ((96, 96), (0, 0), (0, 0))) for x in f]))
    elif kind == "non_square_pixels":  # stored half as wide, shown at full width
        video = make_clip(tmp_path / "anamorphic.mp4", np.stack([cv2.resize(x, (128, 256)) for x in f]), sar=(2, 1))
    elif kind == "vp9_webm":
        video = make_clip(tmp_path / "clip.webm", f, codec="libvpx-vp9")
    else:  # the face in the middle of a 3840x2160 frame
        big = [np.pad(cv2.resize(x, (1080, 1080)), ((540, 540), (1380, 1380), (0, 0))) for x in f[:4]]
        video = make_clip(tmp_path / "uhd.mp4", np.stack(big), crf=30)
    out = tmp_path / "subject"
    rc, err = _prepare(video, out, capsys)
    assert rc == 0, err
    s = Subject(out)  # checks the whole folder
    assert len(s) >= 4 and s.size == 64 and len(s.train_indices) >= 1
