import numpy as np
import pytest

from selfie_avatar.errors import NoFaceError
from selfie_avatar.prepare.landmarks import Detection, choose_face
from selfie_avatar.prepare.sequence import build_sequence, runs_of
from selfie_avatar.tracking.status import DETECTED, INTERPOLATED, MISSING


def _det(x, size=100.0):
    pts = np.zeros((478, 3), np.float32)
    pts[:, 0] = x + np.linspace(0, size, 478)
    pts[:, 1] = np.linspace(0, size, 478)
    return Detection(pts, np.full(52, x / 100, np.float32), np.eye(3, dtype=np.float32), 1)


NONE = Detection(None, None, None, 0)


def test_short_gaps_are_interpolated_long_gaps_dropped():
    dets = [_det(0), NONE, NONE, _det(30)] + [NONE] * 7 + [_det(110), _det(120)]
    seq = build_sequence(dets, (480, 640), 478, 52, max_gap=3)
    assert seq.status.tolist() == [DETECTED, INTERPOLATED, INTERPOLATED, DETECTED] + [MISSING] * 7 + [DETECTED] * 2
    assert seq.points[1, 0, 0] == pytest.approx(10) and seq.points[2, 0, 0] == pytest.approx(20)
    assert seq.scores[2, 0] == pytest.approx(0.2)
    assert np.isnan(seq.points[5]).all()
    assert seq.valid.sum() == 6


def test_leading_and_trailing_gaps_are_missing():
    seq = build_sequence([NONE, _det(0), _det(1), NONE], (480, 640), 478, 52, max_gap=5)
    assert seq.status.tolist() == [MISSING, DETECTED, DETECTED, MISSING]


def test_no_face_anywhere_is_a_clear_error():
    with pytest.raises(NoFaceError, match="clip.mp4: no usable face in any of 3 frames"):
        build_sequence([NONE] * 3, (480, 640), 478, 52, source="clip.mp4")


def test_tiny_faces_count_as_missing_and_are_named():
    with pytest.raises(NoFaceError, match="smaller than 24 px"):
        build_sequence([_det(0, size=10)] * 4, (480, 640), 478, 52, min_face_px=24)


def test_largest_central_face_is_chosen():
    boxes = np.array([[0, 0, 50, 50], [300, 200, 380, 280], [560, 400, 640, 480]], float)
    assert choose_face(boxes, 640, 480) == 1
    boxes = np.array([[0, 0, 200, 200], [300, 220, 340, 260]], float)
    assert choose_face(boxes, 640, 480) == 0  # much larger, even off-centre


def test_runs_of():
    assert runs_of(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    assert runs_of(np.zeros(3, bool)) == []


def test_search_regions_cover_the_frame_centre_first():
    from selfie_avatar.prepare.landmarks import search_regions

    rois = search_regions(1080, 1920)
    assert rois[0] == (420, 0, 1080)  # central square first
    assert {r[0] for r in rois} >= {0, 840}  # both ends covered
    assert all(x0 >= 0 and y0 >= 0 and x0 + s <= 1920 and y0 + s <= 1080 for x0, y0, s in rois)
    last = np.array([100.0, 200.0, 160.0, 260.0])
    x0, y0, side = search_regions(1080, 1920, last)[0]
    assert side == 180 and x0 <= 100 and x0 + side >= 160 and y0 <= 200 and y0 + side >= 260
    assert search_regions(720, 1280 // 2 * 2)[0][1] == 0 and search_regions(1280, 720)[0] == (0, 280, 720)
