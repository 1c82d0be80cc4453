"""``selfie-avatar live RUN_DIR --source webcam|VIDEO``: the real-time loop.

    frame in -> crop (placed once, on the first face found) -> codes -> transfer onto the subject -> I_R, I_UV
      -> generator (one of the inference paths) -> frame out: [driver crop | avatar], frames per second drawn on it

Codes come from the 3DMM encoder when one is trained (``RUN_DIR/encoder/encoder.ckpt`` or ``--encoder``), else
from per-frame MediaPipe landmarks (its 52 scores and head rotation; slower, no fitting). With a display the
frames are shown in a window (q or Esc stops); without one (a server, CI) they are written to ``--out`` and the
frames-per-second figures are printed. ``OUT.json`` records them per stage either way.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from selfie_avatar.config import LiveConfig, config_to_dict
from selfie_avatar.errors import NoFaceError, SelfieAvatarError
from selfie_avatar.io.video import iter_frames, probe_video
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.tracking.crop import CropBox, crop_frame
from selfie_avatar.tracking.status import face_extent
from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.utils.images import SIGNED, to_uint8
from selfie_avatar.reenact.codes import choose_rest_frame, transfer
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.reenact.driver import first_face, predict_codes
from selfie_avatar.reenact.inference import BakedAvatar, make_path
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.device import resolve_device
from selfie_avatar.utils.log import get_logger

log = get_logger("live")
STAGES = ("read", "codes", "render", "generator", "output")


@dataclass
class LiveResult:
    frames: int
    frames_per_second: float
    stage_ms: dict[str, float]
    codes: str
    path: str
    output: Path | None
    report: Path

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        where = f"written to {self.output}" if self.output else "shown in a window"
        return (f"live: {self.frames} frames at {self.frames_per_second:.1f} frames/s end to end "
                f"(codes: {self.codes}, generator: {self.path}); {where}\n"
                f"  ms per frame: {stages}\n  report: {self.report}")


def has_display() -> bool:
    """Whether a window can be opened here (a display server, and OpenCV built with a GUI backend)."""
    if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("selfie_avatar_probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("selfie_avatar_probe")
        return True
    except cv2.error:
        return False


def open_source(source: str, max_frames: int | None) -> tuple[Iterator[np.ndarray], float]:
    """Frames (RGB uint8) and the frame rate of ``webcam``, ``webcam:N`` or a video file."""
    if source.startswith("webcam"):
        index = int(source.split(":", 1)[1]) if ":" in source else 0
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise SelfieAvatarError(f"no webcam at index {index} could be opened; pass --source VIDEO to drive the "
                                    f"avatar from a file")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

        def frames():
            n = 0
            try:
                while max_frames is None or n < max_frames:
                    ok, bgr = cap.read()
                    if not ok:
                        return
                    n += 1
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            finally:
                cap.release()
        return frames(), float(fps)
    info = probe_video(source)
    return iter_frames(source, max_frames=max_frames), info.fps


class _LandmarkCodes:
    """Codes from MediaPipe alone: its 52 scores and rotation, scale from the face's extent (no fitting)."""

    def __init__(self, landmarker: str | None, box: CropBox, model_extent: float) -> None:
        from selfie_avatar.prepare.landmarks import MediaPipeLandmarker

        self.det = MediaPipeLandmarker(landmarker, video=True)
        self.box, self.model_extent = box, model_extent
        self.last: HeadCodes | None = None
        self.t_ms = 0

    def __call__(self, frame: np.ndarray) -> HeadCodes | None:
        d = self.det.detect(frame, self.t_ms)
        self.t_ms += 33
        if not d.found:
            return self.last
        pts = self.box.points_to_crop(d.points)
        # Same units as tracked codes: crop pixels per model unit, model origin near the landmark centroid.
        scale = float(face_extent(pts[None])[0]) / self.model_extent
        self.last = HeadCodes(d.rotation[None], [scale], pts[:, :2].mean(0)[None], d.scores[None])
        return self.last

    def close(self) -> None:
        self.det.close()


class _EncoderCodes:
    def __init__(self, encoder, box: CropBox, size: int) -> None:
        self.encoder, self.box, self.size = encoder, box.with_size(encoder.size), size

    def __call__(self, frame: np.ndarray) -> HeadCodes:
        return predict_codes(self.encoder, crop_frame(frame, self.box)[None], self.size)

    def close(self) -> None:
        pass


def live(cfg: LiveConfig) -> LiveResult:
    """Run the real-time loop (see the module docstring).

    Raises:
        SelfieAvatarError: bad run folder, no webcam, an inference path this device cannot run, or no face in the
            first frames of the source.
    """
    from selfie_avatar.training.checkpoint import open_run

    device = resolve_device(cfg.device)
    run = open_run(cfg.run_dir, cfg.checkpoint, device)
    subject = run.subject
    renderer = AvatarRenderer(run.avatar, subject.face_model(), subject.size)
    try:
        generate = make_path(BakedAvatar(run.avatar), cfg.path, device)
    except ValueError as exc:
        raise SelfieAvatarError(str(exc)) from exc
    tracking = subject.tracking
    rest = subject.codes([choose_rest_frame(tracking, subject.train_indices)])
    warm = renderer.geometry(rest)
    for _ in range(2):  # torch.compile compiles on the first call: keep that out of the measured loop
        generate(warm["render"], warm["uv"])

    frames, fps = open_source(cfg.source, cfg.max_frames)
    _, first, box = first_face(frames, subject.size, cfg.landmarker, cfg.search_frames, source=cfg.source)
    encoder = _encoder(cfg, run, device)
    if encoder is not None:
        source_codes, method = _EncoderCodes(encoder, box, subject.size), "encoder"
    else:
        t = renderer.face_model.template
        extent = float((t[:, :2].max(0).values - t[:, :2].min(0).values).max())
        source_codes, method = _LandmarkCodes(cfg.landmarker, box, extent), "landmarks"
        log.info("no encoder found: codes come from per-frame landmarks (train one with `selfie-avatar "
                 "train-encoder` for the fast path)")

    show = {"auto": has_display(), "yes": True, "no": False}[cfg.display]
    out = None if show else Path(cfg.out) if cfg.out else run.root / "live" / "live.mp4"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    stage = dict.fromkeys(STAGES, 0.0)
    n = 0
    reference = None
    t_loop = time.perf_counter()
    try:
        with (VideoWriter(out, fps) if out is not None else contextlib.nullcontext()) as writer:
            frame = first
            while frame is not None:
                t0 = time.perf_counter()
                codes = source_codes(frame)
                if codes is None:  # no face yet in landmark mode: nothing to hold
                    frame = next(frames, None)
                    continue
                reference = codes if reference is None else reference
                pair = HeadCodes.concat([reference, codes])
                target = transfer(pair, rest, cfg.pose, cfg.neutral, cfg.expression_scale, reference=0)[1]
                t1 = time.perf_counter()
                geo = renderer.geometry(target)
                t2 = time.perf_counter()
                image = generate(geo["render"], geo["uv"])
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t3 = time.perf_counter()
                avatar = to_uint8(image, SIGNED)[0]
                view = _compose(crop_frame(frame, box.with_size(avatar.shape[0])), avatar,
                                n / max(time.perf_counter() - t_loop, 1e-6))
                if show:
                    cv2.imshow("selfie_avatar live", view[..., ::-1])
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
                else:
                    writer.write(view)
                t4 = time.perf_counter()
                for k, a, b in (("codes", t0, t1), ("render", t1, t2), ("generator", t2, t3), ("output", t3, t4)):
                    stage[k] += b - a
                n += 1
                if not show and cfg.progress and n % 30 == 0:
                    print(f"\r{n} frames, {n / (time.perf_counter() - t_loop):.1f} frames/s", end="", flush=True)
                t5 = time.perf_counter()
                frame = next(frames, None)
                stage["read"] += time.perf_counter() - t5
    finally:
        source_codes.close()
        if show:
            cv2.destroyAllWindows()
    if not show and cfg.progress and n >= 30:
        print()
    total = time.perf_counter() - t_loop
    if n == 0:
        raise NoFaceError(f"{cfg.source}: no frame with a face to drive the avatar")
    fps_out = n / total
    stage_ms = {k: 1000 * v / n for k, v in stage.items()}
    report = (out.with_suffix(".json") if out is not None else run.root / "live" / "live.json")
    report.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report, {
        "run": str(run.root.resolve()), "source": cfg.source, "frames": n, "frames_per_second": fps_out,
        "stage_ms_per_frame": stage_ms, "codes": method, "path": cfg.path, "device": str(device),
        "size": renderer.size, "output": str(out) if out else None, "config": config_to_dict(cfg),
    })
    return LiveResult(n, fps_out, stage_ms, method, cfg.path, out, report)


def _encoder(cfg: LiveConfig, run, device):
    if cfg.codes == "landmarks":
        return None
    path = Path(cfg.encoder) if cfg.encoder else run.root / "encoder" / "encoder.ckpt"
    if not path.is_file():
        if cfg.codes == "encoder":
            raise SelfieAvatarError(f"--codes encoder needs {path}; train it with `selfie-avatar train-encoder` or "
                                    f"pass --encoder PATH")
        return None
    from selfie_avatar.training.encoder import load_encoder

    return load_encoder(path, device)


def _compose(driver: np.ndarray, avatar: np.ndarray, fps: float) -> np.ndarray:
    view = np.ascontiguousarray(np.concatenate([driver, avatar], 1))
    scale = max(view.shape[0] / 256, 0.4)
    cv2.putText(view, f"{fps:.1f} fps", (6, int(20 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 0),
                max(1, int(scale)), cv2.LINE_AA)
    return view
