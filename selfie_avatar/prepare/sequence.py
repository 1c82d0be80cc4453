"""Per-frame detections -> a clean sequence: which frames have a face, which gaps are bridged, which are dropped.

Each frame gets a status (``tracking/status.py``): DETECTED; INTERPOLATED inside a gap of at most ``max_gap``
frames between two detected frames (landmarks, scores and rotation interpolated linearly, rotation
re-orthonormalised); MISSING otherwise, dropped from training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfie_avatar.errors import NoFaceError
from selfie_avatar.prepare.landmarks import Detection
from selfie_avatar.tracking.status import DETECTED, INTERPOLATED, MISSING, STATUS_NAMES, face_extent  # noqa: F401


@dataclass
class LandmarkSequence:
    """Landmarks of a whole clip, one row per decoded frame.

    Attributes:
        points: (N, L, 3) float32 pixels (NaN where MISSING).
        scores: (N, 52) float32 (NaN where MISSING).
        rotation: (N, 3, 3) float32 detector head rotation (NaN where MISSING).
        status: (N,) int8 DETECTED / INTERPOLATED / MISSING.
        num_faces: (N,) int16 faces the detector saw.
        frame_size: (height, width) of the decoded frames.
    """

    points: np.ndarray
    scores: np.ndarray
    rotation: np.ndarray
    status: np.ndarray
    num_faces: np.ndarray
    frame_size: tuple[int, int]

    @property
    def valid(self) -> np.ndarray:
        return self.status != MISSING

    def __len__(self) -> int:
        return len(self.status)


def build_sequence(detections: list[Detection], frame_size: tuple[int, int], num_landmarks: int,
                   num_scores: int, max_gap: int = 5, min_face_px: float = 24.0,
                   source: str = "video") -> LandmarkSequence:
    """Assemble detections, drop tiny faces, bridge short gaps.

    Raises:
        NoFaceError: no frame has a usable face.
    """
    n = len(detections)
    if n == 0:
        raise NoFaceError(f"{source}: no frames to look for a face in")
    points = np.full((n, num_landmarks, 3), np.nan, np.float32)
    scores = np.full((n, num_scores), np.nan, np.float32)
    rot = np.full((n, 3, 3), np.nan, np.float32)
    status = np.full(n, MISSING, np.int8)
    faces = np.zeros(n, np.int16)
    tiny = 0
    for i, d in enumerate(detections):
        faces[i] = d.num_faces
        if not d.found:
            continue
        if face_extent(d.points) < min_face_px:
            tiny += 1
            continue
        points[i], scores[i], rot[i], status[i] = d.points, d.scores, d.rotation, DETECTED
    if not (status == DETECTED).any():
        why = f" ({tiny} frames had a face smaller than {min_face_px:g} px)" if tiny else ""
        raise NoFaceError(
            f"{source}: no usable face in any of {n} frames{why}. Use a video where one face is clearly visible, "
            "roughly frontal and at least a fifth of the frame high."
        )
    seq = LandmarkSequence(points, scores, rot, status, faces, frame_size)
    _bridge_gaps(seq, max_gap)
    return seq


def _bridge_gaps(seq: LandmarkSequence, max_gap: int) -> None:
    det = np.flatnonzero(seq.status == DETECTED)
    for a, b in zip(det[:-1], det[1:]):
        gap = b - a - 1
        if gap == 0 or gap > max_gap:
            continue
        t = (np.arange(1, gap + 1) / (gap + 1)).astype(np.float32)
        idx = np.arange(a + 1, b)
        for arr in (seq.points, seq.scores, seq.rotation):
            arr[idx] = (1 - t).reshape(-1, *[1] * (arr.ndim - 1)) * arr[a] + t.reshape(-1, *[1] * (arr.ndim - 1)) * arr[b]
        u, _, vt = np.linalg.svd(seq.rotation[idx])
        seq.rotation[idx] = u @ vt
        seq.status[idx] = INTERPOLATED


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of consecutive True values."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))
