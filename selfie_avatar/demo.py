"""``selfie-avatar demo``: the main job end to end on the built-in sample clip (or your own video).

Today: build the sample clip, prepare it into a subject folder, and point at the preview. Training, evaluation
and reenactment join this command as those stages land.
"""

from __future__ import annotations

import time
from pathlib import Path

from selfie_avatar.config import DemoConfig, PrepareConfig, SampleConfig, save_config
from selfie_avatar.utils.log import get_logger

log = get_logger("demo")


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo into ``cfg.out``; returns a summary dict (also printed)."""
    from selfie_avatar.prepare.pipeline import prepare
    from selfie_avatar.sample.clip import build_sample_clip

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo_config.json")
    t0 = time.perf_counter()
    if cfg.video is None:
        video = out / "sample.mp4"
        print(f"[1/2] building the built-in sample clip -> {video}")
        build_sample_clip(SampleConfig(out=str(video), seconds=cfg.seconds, seed=cfg.seed))
    else:
        video = Path(cfg.video)
        print(f"[1/2] using your video {video}")
    subject = out / "subject"
    print(f"[2/2] preparing -> {subject}")
    result = prepare(PrepareConfig(video=str(video), out=str(subject), size=cfg.size, max_frames=cfg.max_frames,
                                   device=cfg.device, overwrite=True))
    wall = time.perf_counter() - t0
    print()
    print(result.summary())
    print(f"  preview: {subject / 'preview.png'}")
    print(f"  tracking video: {subject / 'tracking.mp4'}")
    print(f"demo finished in {wall:.1f} s; everything is under {out}")
    return {"subject": str(subject), "wall_seconds": wall, "landmark_error_px": result.landmark_error_px}
