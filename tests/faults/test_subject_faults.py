"""A damaged subject folder is found when it is opened, in one line naming the damage and the way to redo it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from selfie_avatar import cli
from selfie_avatar.errors import SubjectError
from selfie_avatar.tracking.subject import Subject
from tests.faults.conftest import digest
from tests.media_factory import write_garbage


@pytest.fixture
def subject_copy(train_subject, tmp_path):
    dst = tmp_path / "subject"
    shutil.copytree(train_subject, dst)
    return dst


def test_an_intact_folder_opens(subject_copy):
    assert len(Subject(subject_copy)) == 24


@pytest.mark.parametrize(("damage", "expect"), [
    (lambda s: (s / "frames" / "000005.png").unlink(), r"frames/000005.png is missing \(frames 5\)"),
    (lambda s: write_garbage(s / "uv" / "000020.png", 300), r"uv/000020.png is not a PNG file \(frames 20\)"),
    (lambda s: (s / "matte" / "000003.png").write_bytes((s / "matte" / "000003.png").read_bytes()[:60]),
     r"matte/000003.png is cut short"),
    (lambda s: (s / "background.png").write_bytes(b""), r"background.png is empty"),
], ids=["deleted_frame", "garbage_uv", "truncated_matte", "empty_plate"])
def test_damaged_frame_files_are_named_with_the_redo_command(subject_copy, damage, expect):
    damage(subject_copy)
    with pytest.raises(SubjectError, match=expect) as info:
        Subject(subject_copy)
    msg = str(info.value)
    assert "\n" not in msg and f"--out {subject_copy} --overwrite" in msg and "selfie_d6.mp4" in msg


def test_a_frame_of_the_wrong_size_is_damage(subject_copy):
    from selfie_avatar.io.image import read_image, write_image

    write_image(subject_copy / "frames" / "000002.png", read_image(subject_copy / "frames" / "000002.png")[:32])
    with pytest.raises(SubjectError, match="64x32 pixels, expected 64x64"):
        Subject(subject_copy)


def test_meta_and_tracking_damage(subject_copy):
    meta = subject_copy / "meta.json"
    good = meta.read_bytes()
    meta.write_bytes(good[: len(good) // 2])
    with pytest.raises(SubjectError, match="meta.json is not valid JSON.*--overwrite"):
        Subject(subject_copy)
    meta.write_bytes(good)
    npz = subject_copy / "tracking.npz"
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(npz, **{**arrays, "expression": arrays["expression"][:20]})  # four frames short
    with pytest.raises(SubjectError, match="does not hold 24 frames of expression"):
        Subject(subject_copy)
    npz.write_bytes(npz.read_bytes()[:1000])
    with pytest.raises(SubjectError, match="tracking.npz cannot be read.*--overwrite"):
        Subject(subject_copy)


def test_training_never_starts_on_a_damaged_folder(subject_copy, tmp_path, capsys):
    (subject_copy / "uv" / "000010.png").unlink()
    before = {p.name: digest(p) for p in (subject_copy / "frames").iterdir()}
    out = tmp_path / "run"
    rc = cli.main(["train", str(subject_copy), "--out", str(out), "--preset", "tiny", "--max-steps", "2",
                   "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if "error:" in ln]
    assert "uv/000010.png is missing" in line
    assert not out.exists()  # nothing was started
    assert {p.name: digest(p) for p in (subject_copy / "frames").iterdir()} == before
