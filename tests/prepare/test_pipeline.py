"""End to end: prepare on the built-in sample and on a real selfie; the subject folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfie_avatar.config import PrepareConfig
from selfie_avatar.io.video import probe_video
from selfie_avatar.prepare.pipeline import prepare
from selfie_avatar.tracking.subject import FRAME_DIRS, Subject, frame_name

EXPECTED_FILES = {"meta.json", "background.png", "tracking.npz", "face_model.npz", "preview.png", "tracking.mp4",
                  *FRAME_DIRS}


@pytest.fixture(scope="module")
def sample_subject(sample_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("subj") / "sample_subject"
    result = prepare(PrepareConfig(video=str(sample_clip), out=str(out), size=128, device="cpu"), progress=False)
    return out, result


def test_sample_subject_folder_is_complete(sample_subject):
    out, result = sample_subject
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    n = result.num_frames
    assert n == 60
    for d in FRAME_DIRS:
        assert sorted(p.name for p in (out / d).iterdir()) == [frame_name(i) for i in range(n)]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert probe_video(out / "tracking.mp4").num_frames == n


def test_sample_tracking_quality_and_meta(sample_subject):
    out, result = sample_subject
    meta = json.loads((out / "meta.json").read_text())
    # The sample is the landmarker's own mesh warped smoothly, so the fit should be tight.
    assert meta["landmark_error_px"] == pytest.approx(result.landmark_error_px)
    assert 0 < meta["landmark_error_rel"] < 0.03
    assert meta["frame_status"]["detected"] == 60
    assert meta["matte_source"] == "mediapipe_selfie_segmentation"
    split = meta["split"]
    assert split["test"] == list(range(54, 60)) and split["validation"] == list(range(51, 54))
    assert split["train"] == list(range(51))
    assert meta["config"]["size"] == 128 and meta["format_version"] == 1
    for k in ("decode", "landmarks", "tracking", "matte", "render", "write", "total"):
        assert meta["timings_s"][k] >= 0


def test_subject_reader_round_trip(sample_subject):
    out, _ = sample_subject
    s = Subject(out)
    assert len(s) == 60 and s.size == 128
    f, r, uv, m = s.frame(3), s.render(3), s.uv(3), s.matte(3)
    assert f.shape == r.shape == (128, 128, 3) and uv.shape == (128, 128, 3) and m.shape == (128, 128)
    cover = uv[..., 2] > 0.5
    assert 0.05 < cover.mean() < 0.6  # the face covers part of the crop
    assert (r[cover].mean() > 40) and (r[~cover].max() == 0)  # shaded inside, black outside
    assert uv[cover][:, :2].min() >= 0 and uv[cover][:, :2].max() <= 1
    assert m[cover].mean() > 0.9  # the face is foreground
    assert s.background.shape == (128, 128, 3)
    t = s.tracking
    assert t["expression"].shape == (60, len(t["expression_names"]))
    assert np.allclose(np.linalg.det(t["rotation"]), 1, atol=1e-4)
    model = s.face_model()
    assert model.num_expression == t["expression"].shape[1]


def test_sample_head_motion_is_tracked(sample_subject):
    """The sample turns its head by up to about 14 degrees of yaw: the tracked yaw must move accordingly."""
    out, _ = sample_subject
    yaw = Subject(out).tracking["euler_deg"][:, 0]
    assert 5 < yaw.max() - yaw.min() < 40


def test_real_selfie(shared_data, tmp_path):
    out = tmp_path / "d6"
    result = prepare(PrepareConfig(video=str(shared_data / "selfie_d6.mp4"), out=str(out), size=128, max_frames=40,
                                   device="cpu"), progress=False)
    assert result.num_frames == 40 and result.num_valid == 40
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"]["width"] == 480 and meta["source"]["fps"] == pytest.approx(30, abs=0.1)
    # A real face, fitted by a per-subject linear rig: a few percent of the face size at most.
    assert meta["landmark_error_rel"] < 0.04
    print(f"selfie_d6 (40 frames): landmark error {result.landmark_error_px:.2f} px "
          f"= {100 * result.landmark_error_rel:.2f}% of face size")
