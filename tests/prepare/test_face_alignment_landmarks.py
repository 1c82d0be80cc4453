"""face-alignment's FAN behind the LandmarkDetector protocol: local weights only, its own network classes.

The real weight files are not on these machines, so the adapter is run end to end on face-alignment's own FAN and
ResNetDepth classes with random weights, saved in the release files' formats under their release names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from selfie_avatar.errors import AssetMissingError

face_alignment = pytest.importorskip("face_alignment", reason="face-alignment is not installed (make face-alignment)")

from face_alignment.models import FAN, ResNetDepth  # noqa: E402

from selfie_avatar.assets import registry  # noqa: E402
from selfie_avatar.face_model.landmark_embedding import IBUG68_TO_MEDIAPIPE, merge_ibug68  # noqa: E402
from selfie_avatar.prepare.face_alignment_landmarks import FaceAlignmentLandmarker  # noqa: E402

NAMES = ("face_alignment_2dfan4", "face_alignment_3dfan4", "face_alignment_depth", "face_alignment_s3fd")


@pytest.fixture
def random_weights(tmp_path, monkeypatch):
    """A folder with random FAN / depth weights in face-alignment 1.5's formats; their digests are not the releases',
    so the registry's digest check is switched off for these files only."""
    torch.manual_seed(0)
    folder = tmp_path / "fa_weights"
    folder.mkdir()
    for name in NAMES:
        monkeypatch.setitem(registry.ASSETS, name, dataclasses.replace(registry.ASSETS[name], sha256_prefix=""))
    files = {n: folder / registry.ASSETS[n].filename for n in NAMES}
    torch.save(FAN(4).state_dict(), files["face_alignment_2dfan4"])
    torch.save(FAN(4).state_dict(), files["face_alignment_3dfan4"])
    depth = ResNetDepth().state_dict()  # the release wraps it the way nn.DataParallel saved it
    torch.save({"state_dict": {f"module.{k}": v for k, v in depth.items()}}, files["face_alignment_depth"])
    return folder, files


def _box(frame):
    h, w = frame.shape[:2]
    return np.array([0.3 * w, 0.2 * h, 0.7 * w, 0.65 * h])


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_random_weights_give_68_points_in_the_face_box(random_weights, astronaut, mode):
    folder, _ = random_weights
    with FaceAlignmentLandmarker(mode, folder, detector=False, flip_input=False) as det:
        assert det.num_landmarks == 68 and not det.has_blendshapes
        box = _box(astronaut)
        found = det.detect(astronaut, box=box)
    assert found.found and found.points.shape == (68, 3) and found.points.dtype == np.float32
    assert found.scores is None and found.rotation is None and found.num_faces == 1
    assert np.isfinite(found.points).all()
    # FAN looks at a crop of side 200 * (w + h) / 195 around the box centre (raised by 0.12 h), resized to 256 px,
    # and its points come back in frame pixels: even random heatmaps land inside that crop, and the points spread.
    (w, h), centre = box[2:] - box[:2], (box[:2] + box[2:]) / 2 - [0, 0.12 * (box[3] - box[1])]
    half = 100 * (w + h) / 195
    assert (np.abs(found.points[:, :2] - centre) <= half + 2).all()
    assert np.ptp(found.points[:, 0]) > 0.2 * half
    if mode == "2d":
        assert (found.points[:, 2] == 0).all()
    else:
        assert np.abs(found.points[:, 2]).max() > 0  # the depth network ran


def test_missing_weights_name_the_file(isolated_weights, random_weights):
    with pytest.raises(AssetMissingError, match=r"2DFAN4-11f355bf06\.pth\.tar.*--landmarks mediapipe"):
        FaceAlignmentLandmarker("2d", detector=False)
    with pytest.raises(AssetMissingError, match=r"3DFAN4-7835d9f11d\.pth\.tar"):
        FaceAlignmentLandmarker("3d", isolated_weights, detector=False)
    folder, _ = random_weights  # the networks are there, the face detector is not
    with pytest.raises(AssetMissingError, match=r"s3fd-619a316812\.pth"):
        FaceAlignmentLandmarker("2d", folder, detector=True)
    with pytest.raises(ValueError, match="mode"):
        FaceAlignmentLandmarker("4d")


def test_face_alignment_cannot_download(random_weights):
    """Its download function, replaced while the landmarker is built, refuses any address it was not given."""
    from face_alignment import api

    from selfie_avatar.prepare.face_alignment_landmarks import _local_downloads

    original = api.load_file_from_url
    with _local_downloads(api, {"https://example.org/a.pth": "/tmp/a.pth"}):
        assert api.load_file_from_url("https://example.org/a.pth") == "/tmp/a.pth"
        with pytest.raises(AssetMissingError, match="never downloads"):
            api.load_file_from_url(api.models_urls["2DFAN-4"])
    assert api.load_file_from_url is original


def test_a_weight_file_holding_objects_is_refused(random_weights):
    folder, files = random_weights
    torch.save({"state_dict": {}, "note": argparse.Namespace(run="anything")}, files["face_alignment_depth"])
    with pytest.raises(AssetMissingError, match="not a plain tensor file"):
        FaceAlignmentLandmarker("3d", folder, detector=False)


def test_a_landmarker_without_its_detector_needs_a_box(random_weights, astronaut):
    folder, _ = random_weights
    det = FaceAlignmentLandmarker("2d", folder, detector=False, flip_input=False)
    with pytest.raises(ValueError, match="pass a box"):
        det.detect(astronaut)
    with pytest.raises(ValueError, match="uint8"):
        det.detect(astronaut.astype(np.float32), box=_box(astronaut))


def test_merge_puts_the_ibug_points_in_exactly_and_leaves_the_rest():
    rng = np.random.default_rng(0)
    mp = rng.normal(size=(3, 478, 3)).astype(np.float32) * 50 + 100
    ibug = rng.normal(size=(3, 68, 2)) * 50 + 100
    out = merge_ibug68(mp, ibug)
    pairs = IBUG68_TO_MEDIAPIPE
    back = 0.5 * (out[:, pairs[:, 0], :2] + out[:, pairs[:, 1], :2])
    assert np.abs(back - ibug).max() < 1e-3
    untouched = np.setdiff1d(np.arange(478), pairs)
    assert np.array_equal(out[:, untouched], mp[:, untouched]) and np.array_equal(out[..., 2], mp[..., 2])
    with pytest.raises(ValueError, match="68 iBUG"):
        merge_ibug68(mp, ibug[:, :60])


def test_prepare_with_face_alignment_fits_its_points(random_weights, shared_data, tmp_path):
    """prepare --landmarks face-alignment end to end: MediaPipe's box, FAN's 68 points put in through the table,
    the default face model fitted to them and the setting recorded."""
    from selfie_avatar.config import PrepareConfig
    from selfie_avatar.prepare.pipeline import prepare
    from selfie_avatar.tracking.subject import Subject

    folder, _ = random_weights
    common = dict(video=str(shared_data / "selfie_d6.mp4"), size=64, max_frames=6, device="cpu", write_video=False)
    plain = tmp_path / "mediapipe"
    fa = tmp_path / "face_alignment"
    prepare(PrepareConfig(out=str(plain), **common), progress=False)
    prepare(PrepareConfig(out=str(fa), landmarks="face-alignment", face_alignment_weights=str(folder), **common),
            progress=False)
    meta = json.loads((fa / "meta.json").read_text())
    assert meta["config"]["landmarks"] == "face-alignment" and meta["timings_s"]["face_alignment"] > 0
    a, b = Subject(plain).tracking["landmarks"], Subject(fa).tracking["landmarks"]
    moved = np.abs(a - b).max(-1).max(0) > 1e-3  # per MediaPipe point, over frames
    assert moved[np.unique(IBUG68_TO_MEDIAPIPE)].all()  # random FAN points differ from MediaPipe's
    assert not moved[np.setdiff1d(np.arange(a.shape[1]), IBUG68_TO_MEDIAPIPE)].any()
