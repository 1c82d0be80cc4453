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

import cv2
import numpy as np

from selfie_avatar.assets import resolve_asset
from selfie_avatar.face_model.names import NUM_BLENDSHAPES
from selfie_avatar.face_model.topology import NUM_LANDMARKS
from selfie_avatar.utils.log import get_logger
from selfie_avatar.utils.native_log import quiet_native_logs

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
        search_rois: when the whole frame shows no face, look again in square regions (around the last face
            seen, else the frame's central square and squares along its long side). MediaPipe's face detector is
            a short-range model that sees the frame at 128 px, so a face filling a tenth of a 1080p frame is too
            small for it until the frame is cropped.
    """

    num_landmarks = NUM_LANDMARKS
    has_blendshapes = True

    def __init__(self, model_path: str | None = None, min_confidence: float = 0.5, max_faces: int = 3,
                 video: bool = True, search_rois: bool = True) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = resolve_asset("face_landmarker", model_path)

        def make(mode):
            return vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(path)),
                running_mode=mode,
                num_faces=max_faces,
                min_face_detection_confidence=min_confidence,
                min_face_presence_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            ))

        self._video = video
        with quiet_native_logs("MediaPipe face landmarker"):
            self._landmarker = make(vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE)
            # ROI search runs single images: feeding crops to the VIDEO-mode tracker would confuse its tracking.
            self._roi_landmarker = make(vision.RunningMode.IMAGE) if search_rois else None
        self._last_box: np.ndarray | None = None
        self._last_ts = -1
        self.roi_hits = 0

    def detect(self, frame: np.ndarray, timestamp_ms: int = 0) -> Detection:
        import mediapipe as mp

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        if self._video:
            ts = max(int(timestamp_ms), self._last_ts + 1)  # VIDEO mode refuses non-increasing timestamps
            self._last_ts = ts
            res = self._landmarker.detect_for_video(image, ts)
        else:
            res = self._landmarker.detect(image)
        det = _parse(res, frame.shape[:2], (0, 0, 1.0))
        if not det.found and self._roi_landmarker is not None:
            det = self._search(frame)
        if det.found:
            p = det.points
            self._last_box = np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
        return det

    def _search(self, frame: np.ndarray) -> Detection:
        import mediapipe as mp

        h, w = frame.shape[:2]
        for x0, y0, side in search_regions(h, w, self._last_box):
            crop = frame[y0:y0 + side, x0:x0 + side]
            scale = 1.0
            if side > 512:  # the detector looks at 128 px anyway; a smaller copy is cheaper to hand over
                scale = side / 512
                crop = cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop))
            det = _parse(self._roi_landmarker.detect(image), crop.shape[:2], (x0, y0, scale))
            if det.found:
                self.roi_hits += 1
                return det
        return Detection(None, None, None, 0)

    def close(self) -> None:
        # Closing explicitly matters: left to the garbage collector at exit, MediaPipe raises a TypeError.
        for name in ("_landmarker", "_roi_landmarker"):
            lm = getattr(self, name)
            if lm is not None:
                lm.close()
                setattr(self, name, None)

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def search_regions(h: int, w: int, last_box: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Square regions (x0, y0, side) inside an (h, w) frame to look for a face in, most promising first:
    around the last face seen (three times its size), then the central square, then squares along the long side.
    """
    rois = []
    if last_box is not None:
        c = (last_box[:2] + last_box[2:]) / 2
        side = int(min(max(3 * (last_box[2:] - last_box[:2]).max(), 64), min(h, w)))
        rois.append((int(np.clip(c[0] - side / 2, 0, w - side)), int(np.clip(c[1] - side / 2, 0, h - side)), side))
    side, long = min(h, w), max(h, w)
    n = int(np.ceil(long / side)) + 1 if long > side else 1
    starts = np.linspace(0, long - side, n).round().astype(int).tolist()
    for s0 in sorted(starts, key=lambda s: abs(s + side / 2 - long / 2)):
        rois.append((s0, 0, side) if w > h else (0, s0, side))
    return rois


def _parse(res, shape: tuple[int, int], roi: tuple[int, int, float]) -> Detection:
    """A MediaPipe result on an image of ``shape`` that sits at roi = (x0, y0, scale) in the frame -> Detection
    in frame pixels."""
    n = len(res.face_landmarks)
    if n == 0:
        return Detection(None, None, None, 0)
    h, w = shape
    x0, y0, sc = roi
    pts = [np.array([(p.x * w * sc + x0, p.y * h * sc + y0, p.z * w * sc) for p in lm], dtype=np.float32)
           for lm in res.face_landmarks]
    boxes = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in pts])
    k = choose_face(boxes, w * sc + 2 * x0, h * sc + 2 * y0) if n > 1 else 0
    scores = np.array([c.score for c in res.face_blendshapes[k]], dtype=np.float32)
    if scores.shape != (NUM_BLENDSHAPES,):
        raise RuntimeError(f"landmarker returned {scores.shape[0]} blendshapes, expected {NUM_BLENDSHAPES}")
    m = np.asarray(res.facial_transformation_matrixes[k], dtype=np.float64)[:3, :3]
    m = m / np.cbrt(np.linalg.det(m))
    rot = (_GL_TO_CV @ m @ _GL_TO_CV).astype(np.float32)
    return Detection(pts[k], scores, rot, n)
