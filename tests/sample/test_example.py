"""Footage for the notebooks: the shared selfie when present, else the built-in sample; subjects reused."""

import pytest

from selfie_avatar.io.video import probe_video
from selfie_avatar.sample.example import EXAMPLE_VIDEO, ensure_subject, example_video, shared_data_dir


def test_shared_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIE_AVATAR_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    (tmp_path / EXAMPLE_VIDEO).write_bytes(b"stand-in")
    assert example_video(tmp_path / "work") == tmp_path / EXAMPLE_VIDEO
    monkeypatch.delenv("SELFIE_AVATAR_SHARED_DATA")
    assert shared_data_dir().parts[-2:] == ("shared", "data")


def test_example_video_falls_back_to_the_sample_clip(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIE_AVATAR_SHARED_DATA", str(tmp_path / "absent"))
    video = example_video(tmp_path / "work", seconds=0.2, size=128)
    assert video.parent == tmp_path / "work" and probe_video(video).num_frames == 5
    stamp = video.stat().st_mtime_ns
    assert example_video(tmp_path / "work", seconds=0.2, size=128).stat().st_mtime_ns == stamp  # reused
    with pytest.raises(ValueError, match="seconds"):
        example_video(tmp_path, seconds=0)


def test_ensure_subject_reuses_a_subject_and_protects_other_folders(train_subject, tmp_path):
    assert ensure_subject(train_subject, video="unused.mp4") == train_subject
    (tmp_path / "mine").mkdir()
    with pytest.raises(FileExistsError, match="not a subject folder"):
        ensure_subject(tmp_path / "mine", video="unused.mp4")
