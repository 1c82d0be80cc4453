"""Landmark detection: a small interface and the MediaPipe FaceLandmarker behind it.

A detector turns one RGB frame into a :class:`Detection`: 478 landmarks in pixel coordinates, 52 blendshape
scores, a head-pose matrix and how many faces were seen. Another detector (e.g. ``face-alignment``'s 68 points,
when its weights are on disk) can implement the same ``LandmarkDetector`` protocol.

Pixel convention: x right, y down, in pixels of the frame given; z is MediaPipe's relative depth scaled by the
frame width (smaller = closer), so all three axes share one unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from selfie_avatar.assets import resolve_asset
from selfie_avatar.face_model.names import NUM_BLENDSHAPES
from selfie_avatar.face_model.topology import NUM_LANDMARKS
from selfie_avatar.utils.log import get_logger

log = get_logger("prepare.landmarks")

# MediaPipe's canonical face model lives in OpenGL axes (y up, z towards the viewer); ours has y down, z away.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass
class Detection:
    """What a detector saw in one frame.

    Attributes:
        points: (L, 3) float32 landmarks in pixels, or None when no face was found.
        scores: (52,) float32 blendshape scores in [0, 1], or None.
        rotation: (3, 3) float32 head rotation (model space -> camera, our axes), or None.
        num_faces: how many faces the detector returned (the chosen one is the largest, most central).
    """

    points: np.ndarray | None
    scores: np.ndarray | None
    rotation: np.ndarray | None
    num_faces: int = 0

    @property
    def found(self) -> bool:
        return self.points is not None


class LandmarkDetector(Protocol):
    num_landmarks: int
    has_blendshapes: bool

    def detect(self, frame: np.ndarray, timestamp_ms: int) -> Detection: ...

    def close(self) -> None: ...


def choose_face(boxes: np.ndarray, width: int, height: int) -> int:
    """Index of the largest, most central face.

    Args:
        boxes: (N, 4) x0, y0, x1, y1 per face.

    The score is the box area discounted by the distance of its centre from the frame centre (half the area at a
    corner), so a big face at the edge still beats a small one in the middle but near-equal faces go central.
    """
    wh = boxes[:, 2:] - boxes[:, :2]
    area = wh[:, 0] * wh[:, 1]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    off = np.linalg.norm((centre - [width / 2, height / 2]) / [width / 2, height / 2], axis=1) / np.sqrt(2)
    return int(np.argmax(area * (1 - 0.5 * off)))


class MediaPipeLandmarker:
    """MediaPipe Tasks FaceLandmarker (478 landmarks, 52 blendshapes, pose matrix).

    Args:
        model_path: ``face_landmarker.task``; None resolves it from the weights folders (never downloads).
        min_confidence: detection, presence and tracking confidence thresholds.
        max_faces: faces to look for; with several, the largest central one is kept (and counted).
        video: VIDEO running mode (temporal tracking, timestamps must increase) rather than IMAGE mode.
    """

    num_landmarks = NUM_LANDMARKS
    has_blendshapes = True

    def __init__(self, model_path: str | None = None, min_confidence: float = 0.5, max_faces: int = 3,
                 video: bool = True) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = resolve_asset("face_landmarker", model_path)
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._video = video
        self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        self._last_ts = -1

    def detect(self, frame: np.ndarray, timestamp_ms: int = 0) -> Detection:
        import mediapipe as mp

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        if self._video:
            ts = max(int(timestamp_ms), self._last_ts + 1)  # VIDEO mode refuses non-increasing timestamps
            self._last_ts = ts
            res = self._landmarker.detect_for_video(image, ts)
        else:
            res = self._landmarker.detect(image)
        n = len(res.face_landmarks)
        if n == 0:
            return Detection(None, None, None, 0)
        pts = [np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float32) for lm in res.face_landmarks]
        boxes = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in pts])
        k = choose_face(boxes, w, h) if n > 1 else 0
        scores = np.array([c.score for c in res.face_blendshapes[k]], dtype=np.float32)
        if scores.shape != (NUM_BLENDSHAPES,):
            raise RuntimeError(f"landmarker returned {scores.shape[0]} blendshapes, expected {NUM_BLENDSHAPES}")
        m = np.asarray(res.facial_transformation_matrixes[k], dtype=np.float64)[:3, :3]
        m = m / np.cbrt(np.linalg.det(m))
        rot = (_GL_TO_CV @ m @ _GL_TO_CV).astype(np.float32)
        return Detection(pts[k], scores, rot, n)

    def close(self) -> None:
        # Closing explicitly matters: left to the garbage collector at exit, MediaPipe raises a TypeError.
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
