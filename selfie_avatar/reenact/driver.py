"""A driving video's head codes, measured two ways.

* :func:`track_driver` runs prepare's own pass 1 (:func:`~selfie_avatar.prepare.track_clip.track_clip`): landmarks
  in every frame, one crop, the pose and expression fit. Accurate; about the cost of prepare's first pass.
* :func:`encode_driver` (``--fast``) finds the face once to place the crop, then regresses every frame's codes
  with the trained 3DMM encoder: no per-frame landmarks or fitting.

Both return codes in a crop of the subject's size, with frames that show no face marked invalid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from selfie_avatar.config import PrepareConfig
from selfie_avatar.errors import NoFaceError
from selfie_avatar.io.prefetch import prefetch
from selfie_avatar.io.video import VideoInfo, iter_frames, probe_video
from selfie_avatar.tracking.crop import CropBox, compute_crop, crop_frame
from selfie_avatar.tracking.status import MISSING
from selfie_avatar.tracking.codes import HeadCodes


@dataclass
class DriverCodes:
    """A driver's codes.

    Attributes:
        codes: per-frame codes (invalid frames hold arbitrary values until :func:`hold_missing`).
        valid: (N,) frames with a face.
        box: the driver's crop.
        info: the driver video's stream facts.
        method: ``tracked`` or ``encoder``.
        seconds: wall time per stage.
    """

    codes: HeadCodes
    valid: np.ndarray
    box: CropBox
    info: VideoInfo
    method: str
    seconds: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.codes)


def track_driver(video: str, size: int, max_frames: int | None = None, landmarker: str | None = None,
                 progress: bool = True, face_model: dict | None = None) -> DriverCodes:
    """Landmarks, crop and fit on every frame of ``video``, exactly as ``prepare`` measures a subject.

    Args:
        face_model: ``PrepareConfig`` face-model settings to fit with (``face_model``, ``flame``,
            ``landmark_embedding``, ``flame_expression``); None for the default blendshape model.

    Raises:
        NoFaceError: the driver never shows a usable face (fewer than 2 frames).
        VideoError: the file is missing or unreadable.
    """
    from selfie_avatar.prepare.track_clip import StageTimer, track_clip

    cfg = PrepareConfig(video=str(video), out="-", size=size, max_frames=max_frames, landmarker=landmarker,
                        **(face_model or {}))
    timer = StageTimer()
    t = time.perf_counter()
    try:
        clip = track_clip(cfg, progress=progress, timer=timer)
    except NoFaceError as exc:
        raise NoFaceError(f"the driving video shows no usable face: {exc}") from exc
    timer.seconds["total"] = time.perf_counter() - t
    return DriverCodes(clip.tracking.codes, clip.tracking.status != MISSING, clip.box, clip.info,
                       "tracked", dict(timer.seconds))


def first_face(frames: Iterator[np.ndarray], size: int, landmarker: str | None = None, search: int = 150,
               source: str = "the video", crop_scale: float = 2.0,
               crop_shift_y: float = -0.10) -> tuple[int, np.ndarray, CropBox]:
    """The first frame (of the next ``search`` from ``frames``) showing a face, and a crop placed on that face.

    The fast path and the live loop place their crop once this way, instead of finding landmarks in every frame.

    Returns:
        the frame's index among those read, the frame, and the crop box (output side ``size``).

    Raises:
        NoFaceError: no face in those frames.
    """
    from selfie_avatar.prepare.landmarks import MediaPipeLandmarker

    with MediaPipeLandmarker(landmarker, video=False) as det:
        for i in range(search):
            frame = next(frames, None)
            if frame is None:
                break
            d = det.detect(frame)
            if d.found:
                return i, frame, compute_crop(d.points[None], np.ones(1, bool), size, crop_scale, crop_shift_y,
                                                       frame_size=(frame.shape[1], frame.shape[0]))
    raise NoFaceError(f"{source}: no face in its first {search} frames; the crop is placed on the first face found")


@torch.no_grad()
def predict_codes(encoder, crops: np.ndarray, size: int) -> HeadCodes:
    """The encoder's codes of ``(B, s, s, 3)`` uint8 crops (``s`` = the encoder's side), in a crop of side ``size``."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return encoder.predict(x).numpy().scaled(size / float(crops.shape[1]))


def encode_driver(video: str, encoder, size: int, max_frames: int | None = None, landmarker: str | None = None,
                  batch_size: int = 16, progress: bool = True) -> DriverCodes:
    """Codes of every frame from the 3DMM encoder, in a crop of side ``size`` placed once (:func:`first_face`).

    Args:
        encoder: a loaded encoder with ``predict(crops (B, 3, s, s) in [-1, 1]) -> TorchCodes`` and ``size`` (its
            input side); see :func:`selfie_avatar.training.encoder.load_encoder`.
    """
    info = probe_video(video)
    t0 = time.perf_counter()
    _, _, box = first_face(iter_frames(video), size, landmarker, source=str(video))
    t_box = time.perf_counter() - t0
    enc_box = box.with_size(encoder.size)
    parts: list[HeadCodes] = []
    t_enc = 0.0
    frames = prefetch(iter_frames(video, max_frames=max_frames))
    bar = tqdm(total=info.num_frames if max_frames is None else max_frames, desc="encoder", unit="frame",
               disable=not progress)
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal t_enc
        t = time.perf_counter()
        parts.append(predict_codes(encoder, np.stack(batch), size))
        t_enc += time.perf_counter() - t
        bar.update(len(batch))
        batch.clear()

    for frame in frames:
        batch.append(crop_frame(frame, enc_box))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    bar.close()
    if not parts:
        raise NoFaceError(f"{video}: no frame could be decoded")
    codes = HeadCodes.concat(parts)
    n = len(codes)
    return DriverCodes(codes, np.ones(n, bool), box, info, "encoder",
                       {"find_face": t_box, "encoder": t_enc, "encoder_ms_per_frame": 1000 * t_enc / n})
