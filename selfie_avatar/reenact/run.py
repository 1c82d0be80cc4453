"""``selfie-avatar reenact RUN_DIR --driver VIDEO --out OUT.mp4``: a driving video's expressions and head motion
on the trained subject.

    driver video --(track_driver | encode_driver)--> driver codes --hold_missing--> every frame valid
      --transfer (relative/absolute pose, expression offset and strength)--> subject codes
      --AvatarRenderer--> avatar crops --paste_back into the subject's full frame--> OUT.mp4 (+ driver audio)
                                                                                  OUT_side_by_side.mp4
Also writes ``OUT.json``: what was done, with timings.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from selfie_avatar.config import ReenactConfig, config_to_dict
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.reenact_identity import sample_positions
from selfie_avatar.face_model import NUM_BLENDSHAPES
from selfie_avatar.io.prefetch import prefetch
from selfie_avatar.io.video import iter_frames, probe_video
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.tracking.crop import CropBox, paste_back
from selfie_avatar.tracking.status import MISSING
from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.utils.images import SIGNED, to_uint8
from selfie_avatar.reenact.codes import choose_rest_frame, hold_missing, transfer
from selfie_avatar.reenact.driver import encode_driver, track_driver
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.device import resolve_device
from selfie_avatar.utils.log import get_logger

log = get_logger("reenact")


@dataclass
class ReenactResult:
    video: Path
    side_by_side: Path | None
    report: Path
    frames: int
    frames_without_face: int
    generator_fps: float
    seconds: dict[str, float]
    identity: dict | None = None

    def summary(self) -> str:
        lines = [f"avatar video: {self.video} ({self.frames} frames)"]
        if self.side_by_side:
            lines.append(f"driver | avatar: {self.side_by_side}")
        if self.frames_without_face:
            lines.append(f"  {self.frames_without_face} driver frames showed no face and held the last pose")
        lines.append(f"  codes: {self.seconds.get('driver', float('nan')):.1f} s; render + generator: "
                     f"{self.generator_fps:.1f} frames/s; total {self.seconds.get('total', float('nan')):.1f} s")
        ident = self.identity or {}
        if "to_subject" in ident:
            leak = "n/a" if ident["leakage"] is None else f"{ident['leakage']:+.3f}"
            lines.append(f"  identity (dlib descriptor cosine): avatar to subject {ident['to_subject']['mean']:.3f}, "
                         f"avatar to driver {ident['to_driver']['mean']:.3f} (the two people: "
                         f"{ident['driver_to_subject']['mean']:.3f}; leakage {leak})")
        elif ident:
            lines.append(f"  identity: not measured ({ident.get('note')})")
        lines.append(f"  report: {self.report}")
        return "\n".join(lines)


def side_by_side_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}_side_by_side{out.suffix or '.mp4'}")


def reenact(cfg: ReenactConfig) -> ReenactResult:
    """Drive the trained avatar in ``cfg.run_dir`` with ``cfg.driver``.

    Raises:
        SelfieAvatarError: bad run folder or checkpoint, a driver with no face (NoFaceError), an unreadable driver
            (VideoError), a missing encoder for ``--fast``, a rest frame outside the subject, or a subject source
            video whose resolution no longer matches the subject folder.
    """
    from selfie_avatar.training.checkpoint import open_run

    if not cfg.out:
        raise ValueError("reenact needs an output video path (--out)")
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    device = resolve_device(cfg.device)
    run = open_run(cfg.run_dir, cfg.checkpoint, device)
    subject = run.subject
    renderer = AvatarRenderer(run.avatar, subject.face_model(), subject.size)
    probe_video(cfg.driver)  # a missing or broken driver fails here, before any work

    t = time.perf_counter()
    if cfg.fast:
        enc_path = Path(cfg.encoder) if cfg.encoder else run.root / "encoder" / "encoder.ckpt"
        if not enc_path.is_file():
            raise SelfieAvatarError(f"--fast needs a trained encoder, and {enc_path} does not exist: run "
                                    f"`selfie-avatar train-encoder {subject.root} --out {enc_path.parent}` or pass "
                                    f"--encoder PATH")
        from selfie_avatar.training.encoder import load_encoder

        encoder = load_encoder(enc_path, device)
        seconds["load_encoder"] = time.perf_counter() - t
        t = time.perf_counter()
        driver = encode_driver(cfg.driver, encoder, subject.size, cfg.max_frames, cfg.landmarker,
                               progress=cfg.progress)
    else:
        driver = track_driver(cfg.driver, subject.size, cfg.max_frames, cfg.landmarker, progress=cfg.progress,
                              face_model=_face_model_settings(subject))
    seconds["driver"] = time.perf_counter() - t
    n = len(driver)
    missing = int((~driver.valid).sum())
    if missing:
        log.warning("%d of %d driver frames show no face; they hold the last pose", missing, n)
    codes = hold_missing(driver.codes, driver.valid)
    reference = int(np.flatnonzero(driver.valid)[0])

    tracking = subject.tracking
    rest = _rest_frame(cfg, subject, tracking)
    flame = subject.meta.get("face_model", {}).get("kind") == "flame"
    out_codes = transfer(codes, subject.codes([rest]), cfg.pose, cfg.neutral,
                         cfg.expression_scale, reference,
                         shared=renderer.face_model.num_expression if flame else NUM_BLENDSHAPES, bounded=not flame)

    plate, box = _plate(cfg, subject, rest, renderer.size)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sbs = side_by_side_path(out) if cfg.side_by_side else None
    fps = driver.info.fps
    audio = cfg.driver if driver.info.has_audio else None
    t_gen = 0.0
    written = 0
    probe = set(sample_positions(n, 32) if cfg.identity else [])
    probed: tuple[list, list] = ([], [])  # avatar crops and their driver frames, for the identity report
    with VideoWriter(out, fps, audio_from=audio) as w_avatar, \
            (VideoWriter(sbs, fps, audio_from=audio) if sbs else contextlib.nullcontext()) as w_sbs:
        frames = prefetch(iter_frames(cfg.driver, max_frames=n))
        bar = tqdm(total=n, desc="reenact", unit="frame", disable=not cfg.progress)
        for start in range(0, n, cfg.batch_size):
            idx = np.arange(start, min(start + cfg.batch_size, n))
            t = time.perf_counter()
            images = to_uint8(renderer(out_codes[idx])["image"], SIGNED)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_gen += time.perf_counter() - t
            for img in images:
                frame = paste_back(plate, img, box) if plate is not None else img
                w_avatar.write(frame)
                drv = next(frames, None)
                if sbs and drv is not None:
                    w_sbs.write(_side_by_side(drv, frame))
                if written in probe and drv is not None:
                    probed[0].append(img)
                    probed[1].append(drv)
                written += 1
            bar.update(len(idx))
        bar.close()
    seconds["generate"] = t_gen
    t = time.perf_counter()
    identity = _identity(cfg, probed, subject, device)
    seconds["identity"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start
    gen_fps = written / t_gen if t_gen > 0 else float("nan")
    report = out.with_suffix(".json")
    write_json_atomic(report, {
        "run": str(run.root.resolve()), "checkpoint": str(run.checkpoint), "driver": str(Path(cfg.driver).resolve()),
        "video": str(out), "side_by_side": str(sbs) if sbs else None, "frames": written, "fps": fps,
        "driver_method": driver.method, "driver_frames_without_face": missing, "reference_frame": reference,
        "rest_frame": rest, "pasted_back": plate is not None, "audio": audio is not None,
        "render_and_generator_frames_per_second": gen_fps, "device": str(device), "seconds": seconds,
        "driver_seconds": driver.seconds, "identity": identity, "config": config_to_dict(cfg),
    })
    log.info("reenacted %d frames into %s", written, out)
    return ReenactResult(out, sbs, report, written, missing, gen_fps, seconds, identity)


def _identity(cfg: ReenactConfig, probed: tuple[list, list], subject, device) -> dict | None:
    """Identity similarity of sampled avatar frames to the subject and to the driver (identity leakage)."""
    if not cfg.identity:
        return None
    from selfie_avatar.evaluate.scoring import identity_status

    ok, note = identity_status()
    if not ok:
        log.warning("identity not measured: %s", note)
        return {"note": note}
    from selfie_avatar.evaluate.reenact_identity import reenactment_identity

    return reenactment_identity(probed[0], probed[1], subject, landmarker_path=cfg.landmarker, device=device)


def _face_model_settings(subject) -> dict | None:
    """A FLAME subject's driver is fitted with the same FLAME files, so its codes mean the same thing."""
    if subject.meta.get("face_model", {}).get("kind") != "flame":
        return None
    c = subject.meta.get("config", {})
    return {k: c[k] for k in ("face_model", "flame", "landmark_embedding", "flame_expression") if k in c}


def _rest_frame(cfg: ReenactConfig, subject, tracking: dict) -> int:
    if cfg.rest_frame is None:
        return choose_rest_frame(tracking, subject.train_indices)
    r = int(cfg.rest_frame)
    if not 0 <= r < len(subject) or tracking["status"][r] == MISSING:
        raise SelfieAvatarError(f"--rest-frame {r} is not a subject frame with a face (the subject has "
                                f"{len(subject)} frames)")
    return r


def _plate(cfg: ReenactConfig, subject, rest: int, size: int) -> tuple[np.ndarray | None, CropBox | None]:
    """The subject's full-resolution frame to paste into, and the crop box at the avatar's size."""
    if not cfg.paste_back:
        return None, None
    src = subject.meta.get("source", {})
    path = Path(src.get("path", ""))
    if not path.is_file():
        log.warning("the subject's source video %s is gone; writing the avatar crop without pasting it back", path)
        return None, None
    info = probe_video(path)
    if (info.width, info.height) != (src.get("width"), src.get("height")):
        raise SelfieAvatarError(
            f"the subject's source video {path} is now {info.width}x{info.height}, but the subject folder was "
            f"prepared from a {src.get('width')}x{src.get('height')} video; its crop box would not fit. Prepare the "
            f"subject again, or pass --no-paste-back to write the avatar crop only")
    plate = None
    for plate in iter_frames(path, max_frames=rest + 1):
        pass
    c = subject.meta["crop"]
    return plate, CropBox(**c).with_size(size)


def _side_by_side(driver: np.ndarray, avatar: np.ndarray) -> np.ndarray:
    h = avatar.shape[0]
    w = max(2, int(round(driver.shape[1] * h / driver.shape[0])))
    d = cv2.resize(driver, (w, h), interpolation=cv2.INTER_AREA if driver.shape[0] > h else cv2.INTER_LINEAR)
    return np.concatenate([d, avatar], 1)
