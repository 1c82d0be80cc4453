"""``prepare``: a video in, a subject folder out. Each stage is its own module; this file only wires them.

Two streaming passes over the video keep memory flat for long clips:

    pass 1  decode -> landmarks (per frame)            -> sequence clean-up -> crop -> tracking fit  (track_clip.py)
    pass 2  decode -> crop -> matte -> render I_R, I_UV -> write images, feed the background estimator
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from selfie_avatar import __version__
from selfie_avatar.config import PrepareConfig, config_to_dict
from selfie_avatar.errors import VideoError
from selfie_avatar.face_model import NUM_MESH_VERTICES, save_face_model
from selfie_avatar.io.image import write_image
from selfie_avatar.io.prefetch import prefetch
from selfie_avatar.io.video import VideoInfo, iter_frames, probe_video
from selfie_avatar.prepare.background import BackgroundEstimator
from selfie_avatar.tracking.crop import CropBox, crop_frame, outside_fraction
from selfie_avatar.prepare.matte import HULL_SOURCE, SEGMENTER_SOURCE, create_matter, hull_matte
from selfie_avatar.prepare.preview import PreviewCollector
from selfie_avatar.tracking.status import DETECTED, INTERPOLATED, MISSING, STATUS_NAMES
from selfie_avatar.tracking.subject import FORMAT_NAME, FORMAT_VERSION, FRAME_DIRS, split_frames, write_frame_images
from selfie_avatar.prepare.track_clip import StageTimer, track_clip
from selfie_avatar.prepare.tracking import TrackingResult
from selfie_avatar.render import MeshRenderer
from selfie_avatar.geometry.rotation import matrix_to_euler
from selfie_avatar.utils.atomic import atomic_dir, atomic_path, write_json_atomic
from selfie_avatar.utils.device import resolve_device
from selfie_avatar.utils.log import get_logger
from selfie_avatar.tracking.pose import render_codes

log = get_logger("prepare")


@dataclass
class PrepareResult:
    """What ``prepare`` made: the folder and its headline figures."""

    path: Path
    num_frames: int
    num_valid: int
    num_train: int
    num_validation: int
    num_test: int
    landmark_error_px: float
    landmark_error_rel: float
    matte_source: str
    seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        return self.seconds.get("total", float("nan"))

    def summary(self) -> str:
        fps = self.num_frames / self.total_seconds if self.total_seconds > 0 else float("nan")
        return (
            f"subject folder: {self.path}\n"
            f"  frames: {self.num_frames} decoded, {self.num_valid} with a face "
            f"({self.num_train} train, {self.num_validation} validation, {self.num_test} test)\n"
            f"  landmark reprojection error: {self.landmark_error_px:.2f} px "
            f"({100 * self.landmark_error_rel:.2f}% of face size)\n"
            f"  matte: {self.matte_source}\n"
            f"  time: {self.total_seconds:.1f} s ({fps:.1f} frames/s)"
        )


def prepare(cfg: PrepareConfig, progress: bool = True) -> PrepareResult:
    """Run every prepare stage on ``cfg.video`` and write the subject folder ``cfg.out`` atomically.

    Raises:
        VideoError: the video is missing, not a video, or unreadable.
        NoFaceError: no usable face in the video.
        FileExistsError: ``cfg.out`` exists and ``cfg.overwrite`` is false.
    """
    if not cfg.out:
        raise ValueError("prepare needs an output folder (--out)")
    if cfg.size < 32 or cfg.size % 2:
        raise ValueError(f"--size must be an even number >= 32, got {cfg.size}")
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    t_start = time.perf_counter()
    timer = StageTimer()
    info = probe_video(cfg.video)
    if info.num_frames is not None and info.num_frames < 2 and cfg.min_valid_frames >= 2:
        raise VideoError(f"{cfg.video}: has {info.num_frames} frame; prepare needs a video of at least "
                         f"{cfg.min_valid_frames} frames with a face")
    device = resolve_device(cfg.device)

    # ---- pass 1: landmarks, crop, tracking -----------------------------------------------------------------
    clip = track_clip(cfg, progress, timer, info)
    seq, box, lm_crop, track, multi = clip.sequence, clip.box, clip.landmarks_crop, clip.tracking, clip.multi_face_frames
    n_valid = int(seq.valid.sum())
    split = split_frames(seq.valid, cfg.held_out_fraction, cfg.validation_fraction)
    train_frames = set(split.train)

    # ---- pass 2: crop, matte, render, write ------------------------------------------------------------
    # One interpreter thread: the other core is busy encoding the previous batch's images.
    segmenter = create_matter(cfg.segmenter, num_threads=1)  # None (with a logged warning) when the model file is missing
    matte_source = SEGMENTER_SOURCE if segmenter is not None else f"{HULL_SOURCE} (fallback: segmentation model missing)"
    model = track.model.to(device)
    renderer = MeshRenderer((cfg.size, cfg.size), model.faces, model.uv).to(device)
    bg = BackgroundEstimator(cfg.size, cfg.size)
    preview = PreviewCollector(len(seq), cfg.size, write_video=cfg.write_video)
    n = len(seq)
    # Image encoding runs in worker threads (OpenCV and PyAV release the GIL) overlapped with the next batch's
    # decode/matte/render; the tracking video has its own single worker so its frames stay in order.
    with contextlib.ExitStack() as stack:
        if segmenter is not None:
            stack.callback(segmenter.close)
        tmp = stack.enter_context(atomic_dir(out, overwrite=cfg.overwrite))
        pool = stack.enter_context(ThreadPoolExecutor(2))
        video_pool = stack.enter_context(ThreadPoolExecutor(1))
        for d in FRAME_DIRS:
            (tmp / d).mkdir()
        preview.open(tmp / "tracking.mp4", info.fps)
        in_flight: list = []
        frames = stack.enter_context(contextlib.closing(prefetch(iter_frames(cfg.video, max_frames=len(seq)))))
        bar = tqdm(total=n, desc="crop/matte/render", unit="frame", disable=not progress)
        for start in range(0, n, cfg.batch_size):
            idx = np.arange(start, min(start + cfg.batch_size, n))
            t = time.perf_counter()
            batch = [f for _, f in zip(idx, frames)]
            t = timer.add("decode", t)
            if len(batch) < len(idx):  # the second decode saw fewer frames than the first
                raise VideoError(f"{cfg.video}: the video changed or became unreadable while being prepared")
            crops = np.stack([crop_frame(f, box) for f in batch])
            t = timer.add("crop", t)
            if segmenter is not None:
                mattes = segmenter(crops)
            else:
                mattes = hull_matte(lm_crop[idx, :, :2], cfg.size, cfg.size)  # zero where no face
            t = timer.add("matte", t)
            renders, uvs = _render_batch(renderer, model, track, idx, device)
            t = timer.add("render", t)
            for p in in_flight:  # at most one batch waits in the queue: bounded memory
                p.result()
            t = timer.add("write", t)
            in_flight = []
            for k, i in enumerate(idx):
                in_flight.append(pool.submit(write_frame_images, tmp, int(i), crops[k], renders[k], uvs[k],
                                             mattes[k]))
                if int(i) in train_frames:  # the plate is a generator input: test frames must not shape it
                    bg.add(crops[k], mattes[k], uvs[k][..., 2] > 0.5)
                in_flight.append(video_pool.submit(preview.add, int(i), crops[k], renders[k], uvs[k], mattes[k],
                                                   track.landmarks[i], bool(seq.status[i] != MISSING)))
            t = timer.add("background", t)
            bar.update(len(idx))
        t = time.perf_counter()
        for p in in_flight:
            p.result()
        timer.add("write", t)
        bar.close()
        t = time.perf_counter()
        background, seen = bg.result()
        write_image(tmp / "background.png", background)
        t = timer.add("background", t)
        preview.finish(tmp / "preview.png")
        timer.add("write", t)
        _write_tracking(tmp / "tracking.npz", track, seq, box, info)
        save_face_model(track.model, tmp / "face_model.npz")
        timer.seconds["total"] = time.perf_counter() - t_start
        meta = _meta(cfg, info, seq, box, track, split, matte_source, float(1 - seen.mean()),
                     dict(timer.seconds), multi)
        write_json_atomic(tmp / "meta.json", meta)
    result = PrepareResult(out, n, n_valid, len(split.train), len(split.validation), len(split.test),
                           track.landmark_error_px,
                           track.landmark_error_rel, matte_source, dict(timer.seconds))
    log.info("prepared %s: %d frames, landmark error %.2f px", out, n, track.landmark_error_px)
    return result


@torch.no_grad()
def _render_batch(renderer: MeshRenderer, model, track: TrackingResult, idx: np.ndarray, device: torch.device):
    out = render_codes(renderer, model, track.codes[idx], device)
    valid = torch.from_numpy(track.status[idx] != MISSING).to(device)[:, None, None, None]
    render = (out["render"] * valid).permute(0, 2, 3, 1).mul(255).round().clamp(0, 255).byte().cpu().numpy()
    uv = (out["uv"] * valid).permute(0, 2, 3, 1).cpu().numpy()
    return render, uv


def _write_tracking(path: Path, track: TrackingResult, seq, box: CropBox, info: VideoInfo) -> None:
    codes = track.codes
    euler = matrix_to_euler(torch.from_numpy(codes.rotation)).numpy()
    arrays = dict(
        status=track.status, rotation=codes.rotation, scale=codes.scale, translation=codes.translation_3d(),
        euler_deg=np.degrees(euler).astype(np.float32), expression=codes.expression,
        expression_names=np.array(track.model.expression_names), landmarks=track.landmarks,
        landmarks_frame=box.points_to_frame(track.landmarks), error_px=track.error_px,
        error_rel=track.error_rel.astype(np.float32), face_size=track.face_size, confidence=track.confidence,
        num_faces=seq.num_faces, detector_scores=seq.scores,
        crop=np.array([box.x0, box.y0, box.side, box.size], np.float32), fps=np.float32(info.fps),
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def _file_digest(path: str, limit: int = 1 << 26) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import av
    import mediapipe

    return {"selfie_avatar": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "mediapipe": mediapipe.__version__, "av": av.__version__}


def _meta(cfg, info, seq, box, track, split, matte_source, bg_hole_fraction, seconds, multi) -> dict:
    counts = {STATUS_NAMES[s]: int((seq.status == s).sum()) for s in (DETECTED, INTERPOLATED, MISSING)}
    total = seconds.get("total", float("nan"))
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {
            "path": str(Path(cfg.video).resolve()), "sha256_first_64MiB": _file_digest(cfg.video),
            "fps": info.fps, "width": info.width, "height": info.height, "rotation": info.rotation,
            "sample_aspect_ratio": info.sample_aspect_ratio, "num_frames_in_file": info.num_frames,
            "has_audio": info.has_audio,
        },
        "fps": info.fps,
        "size": cfg.size,
        "num_frames": len(seq),
        "frame_status": counts,
        "frames_with_several_faces": multi,
        "crop": box.to_dict(),
        "crop_outside_fraction": outside_fraction(box, seq.frame_size[1], seq.frame_size[0]),
        "split": {"train": split.train, "validation": split.validation, "test": split.test,
                  "test_fraction": cfg.held_out_fraction, "validation_fraction": cfg.validation_fraction},
        "camera": {"model": "scaled_orthographic", "image_size": [cfg.size, cfg.size],
                   "convention": "x right, y down, z away; screen = scale * R @ vertex + translation (crop pixels)"},
        "face_model": {"kind": track.model.name, "num_vertices": int(track.model.num_vertices),
                       "num_triangles": int(track.model.faces.shape[0]),
                       "num_expression": int(track.model.num_expression),
                       "expression_names": track.model.expression_names,
                       "topology": getattr(track.model, "topology",
                                           f"mediapipe face mesh ({NUM_MESH_VERTICES} vertices)")},
        "landmark_error_px": track.landmark_error_px,
        "landmark_error_rel": track.landmark_error_rel,
        "landmark_error_note": "mean 2D distance between fitted mesh vertices and detected landmarks over detected "
                               "frames; rel = divided by the face's landmark extent",
        "matte_source": matte_source,
        "background_unseen_fraction": bg_hole_fraction,
        "timings_s": seconds,
        "frames_per_second": len(seq) / total if total > 0 else None,
        "versions": _versions(),
        "config": config_to_dict(cfg),
    }
