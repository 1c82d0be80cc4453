"""Pass 1 of prepare as one reusable step: a video in, its landmarks, crop and fitted tracking out.

``prepare`` runs it on the subject's video; ``reenact`` runs the very same stages on a driving video, so the
driver's codes are measured exactly the way the subject's were.

    decode -> landmarks (per frame) -> sequence clean-up -> crop -> tracking fit
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from selfie_avatar.config import PrepareConfig
from selfie_avatar.errors import NoFaceError, VideoError
from selfie_avatar.face_model import BLENDSHAPE_NAMES, mediapipe_triangles
from selfie_avatar.io.prefetch import prefetch
from selfie_avatar.io.video import VideoInfo, iter_frames, probe_video
from selfie_avatar.tracking.crop import CropBox, compute_crop
from selfie_avatar.face_model.landmark_embedding import merge_ibug68
from selfie_avatar.prepare.landmarks import Detection, MediaPipeLandmarker
from selfie_avatar.prepare.sequence import build_sequence
from selfie_avatar.prepare.tracking import TrackingResult, fit_tracking
from selfie_avatar.utils.log import get_logger

log = get_logger("prepare")


@dataclass
class StageTimer:
    """Wall time per stage, accumulated."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.seconds[stage] += t - t0
        return t


@dataclass
class TrackedClip:
    """Pass-1 results for one video.

    Attributes:
        info: the video's stream facts.
        sequence: per-frame landmarks, scores and status (:func:`build_sequence`).
        box: the clip's crop.
        landmarks_crop: (N, L, 3) landmarks in crop pixels.
        tracking: the fitted pose, rig and codes.
        multi_face_frames: how many frames showed several faces.
    """

    info: VideoInfo
    sequence: object
    box: CropBox
    landmarks_crop: np.ndarray
    tracking: TrackingResult
    multi_face_frames: int

    def __len__(self) -> int:
        return len(self.tracking.status)


def _second_landmarker(cfg: PrepareConfig):
    if cfg.landmarks == "mediapipe":
        return None
    from selfie_avatar.prepare.face_alignment_landmarks import FaceAlignmentLandmarker
    from selfie_avatar.utils.device import resolve_device

    # detector=False: MediaPipe has found the face already; its box is handed over, so S3FD is not needed.
    return FaceAlignmentLandmarker("3d" if cfg.landmarks.endswith("3d") else "2d", cfg.face_alignment_weights,
                                   resolve_device(cfg.device), detector=False, min_confidence=cfg.min_confidence)


def _with_ibug_points(found: Detection, second, frame: np.ndarray) -> Detection:
    """MediaPipe's detection with face-alignment's 68 points (found in MediaPipe's face box) put in."""
    p = found.points
    box = np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
    ibug = second.detect(frame, box=box)
    if not ibug.found:
        return found
    return Detection(merge_ibug68(p, ibug.points), found.scores, found.rotation, found.num_faces)


def track_clip(cfg: PrepareConfig, progress: bool = True, timer: StageTimer | None = None,
               info: VideoInfo | None = None) -> TrackedClip:
    """Detect landmarks in every frame of ``cfg.video``, choose the crop and fit pose and codes.

    Uses ``cfg.video``, ``max_frames``, ``landmarker``, ``min_confidence``, ``max_gap``, ``min_face_px``,
    ``min_valid_frames``, ``size``, ``crop_scale``, ``crop_shift_y``, ``crop_inside``, ``ridge``,
    ``expression_pca``, ``smooth_sigma``, ``landmarks`` and ``face_alignment_weights``; with
    ``face_model='flame'`` also ``flame``, ``landmark_embedding``, ``flame_expression`` and ``device``
    (:mod:`.flame_setup`).

    Raises:
        VideoError: nothing decodes.
        NoFaceError: fewer than ``cfg.min_valid_frames`` frames have a usable face.
        AssetMissingError: ``face_model='flame'`` and the FLAME file or its landmark embedding is not found.
    """
    timer = timer or StageTimer()
    info = info or probe_video(cfg.video)
    # A missing FLAME file should stop prepare before the landmark pass, not after it.
    flame_files = _flame_files(cfg) if cfg.face_model == "flame" else None
    # So should a missing face-alignment file or package.
    second = _second_landmarker(cfg)
    detections, hits = [], 0
    t = time.perf_counter()
    with MediaPipeLandmarker(cfg.landmarker, min_confidence=cfg.min_confidence) as det:
        frames = prefetch(iter_frames(cfg.video, max_frames=cfg.max_frames))
        bar = tqdm(total=_expected(info, cfg.max_frames), desc="landmarks", unit="frame", disable=not progress)
        frame_size = None
        while True:
            frame = next(frames, None)
            t = timer.add("decode", t)
            if frame is None:
                break
            frame_size = frame.shape[:2]
            found = det.detect(frame, int(round(len(detections) * 1000 / info.fps)))
            t = timer.add("landmarks", t)
            if second is not None and found.found:
                merged = _with_ibug_points(found, second, frame)
                hits += merged is not found
                found = merged
                t = timer.add("face_alignment", t)
            detections.append(found)
            bar.update()
        bar.close()
    if second is not None:
        log.info("face-alignment (%s): 68 points put in on %d of %d frames with a MediaPipe face", second.mode,
                 hits, sum(d.found for d in detections))
        second.close()
    if not detections:
        raise VideoError(f"{cfg.video}: no frame could be decoded; the file may be corrupt")
    seq = build_sequence(detections, frame_size, 478, len(BLENDSHAPE_NAMES), max_gap=cfg.max_gap,
                         min_face_px=cfg.min_face_px, source=str(cfg.video))
    n_valid = int(seq.valid.sum())
    if n_valid < max(cfg.min_valid_frames, 2):
        raise NoFaceError(f"{cfg.video}: only {n_valid} of {len(seq)} frames have a usable face; at least "
                          f"{max(cfg.min_valid_frames, 2)} are needed")
    multi = int((seq.num_faces > 1).sum())
    if multi:
        log.warning("%d frames show several faces; the largest, most central one was tracked", multi)

    box = compute_crop(seq.points, seq.valid, cfg.size, cfg.crop_scale, cfg.crop_shift_y,
                       frame_size=(frame_size[1], frame_size[0]) if cfg.crop_inside else None)
    lm_crop = box.points_to_crop(seq.points)
    t = time.perf_counter()
    if flame_files is not None:
        from selfie_avatar.prepare.flame_setup import fit_flame_for_config

        track = fit_flame_for_config(cfg, lm_crop, seq.status, flame_files)
    else:
        track = fit_tracking(lm_crop, seq.scores, seq.status, mediapipe_triangles(), init_rotation=seq.rotation,
                             ridge=cfg.ridge, num_pca=cfg.expression_pca, smooth_sigma=cfg.smooth_sigma)
    timer.add("tracking", t)
    return TrackedClip(info, seq, box, lm_crop, track, multi)


def _flame_files(cfg: PrepareConfig):
    from selfie_avatar.prepare.flame_setup import resolve_flame_files  # FLAME code loads only when asked for

    return resolve_flame_files(cfg.flame, cfg.landmark_embedding, prefer_ibug68=cfg.landmarks != "mediapipe")


def _expected(info: VideoInfo, max_frames: int | None) -> int | None:
    if info.num_frames is None:
        return max_frames
    return min(info.num_frames, max_frames) if max_frames else info.num_frames
