"""``selfie-avatar demo``: the main job end to end on the built-in sample clip (or your own video).

    [1/5] clips     the built-in sample (or --video), and a second built-in clip to drive it (or --driver)
    [2/5] prepare   -> OUT/subject/   landmarks, crop, tracking, I_R, I_UV, matte, background, preview
    [3/5] train     -> OUT/run/       the avatar with the cpu preset (about 10 minutes on 2 CPU cores)
    [4/5] evaluate  -> OUT/eval/      test-frame L1, PSNR, SSIM, LPIPS, identity beside trivial baselines, grid, video
    [5/5] reenact   -> OUT/reenact/   the avatar driven by the driving clip, alone and beside the driver

Ends with a one-screen summary, also written to ``OUT/summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from selfie_avatar.config import (DemoConfig, EvaluateConfig, PrepareConfig, ReenactConfig, SampleConfig, TrainConfig,
                                  save_config)
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.log import get_logger

log = get_logger("demo")


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo into ``cfg.out``; returns the summary dict (also printed and written to summary.json)."""
    from selfie_avatar.evaluate.run import evaluate
    from selfie_avatar.prepare.pipeline import prepare
    from selfie_avatar.reenact.run import reenact
    from selfie_avatar.sample.clip import build_sample_clip
    from selfie_avatar.training.run import train

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo_config.json")
    seconds: dict[str, float] = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = now - t
        t = now

    if cfg.video is None:
        video = out / "sample.mp4"
        print(f"[1/5] building the built-in sample clip -> {video}")
        build_sample_clip(SampleConfig(out=str(video), seconds=cfg.seconds, seed=cfg.seed))
    else:
        video = Path(cfg.video)
        print(f"[1/5] using your video {video}")
    if cfg.driver is None:
        driver = out / "driver.mp4"
        print(f"      building the driving clip (the sample with another motion schedule) -> {driver}")
        build_sample_clip(SampleConfig(out=str(driver), seconds=cfg.seconds, seed=cfg.seed + 1))
    else:
        driver = Path(cfg.driver)
    lap("clips")

    subject = out / "subject"
    print(f"[2/5] preparing -> {subject}")
    prepared = prepare(PrepareConfig(video=str(video), out=str(subject), size=cfg.size, max_frames=cfg.max_frames,
                                     device=cfg.device, overwrite=cfg.overwrite))
    print(prepared.summary())
    lap("prepare")

    run = out / "run"
    print(f"[3/5] training the avatar ({cfg.preset} preset) -> {run}")
    trained = train(TrainConfig(subject=str(subject), out=str(run), preset=cfg.preset, max_minutes=cfg.max_minutes,
                                max_steps=cfg.max_steps, seed=cfg.seed, device=cfg.device, overwrite=cfg.overwrite,
                                run_name="demo"))
    print(trained.summary())
    lap("train")

    print(f"[4/5] evaluating on the test frames -> {out / 'eval'}")
    checkpoint = "best" if trained.best_checkpoint else "last"
    evaluated = evaluate(EvaluateConfig(run_dir=str(run), checkpoint=checkpoint, out=str(out / "eval"),
                                        device=cfg.device))
    lap("evaluate")

    print(f"[5/5] reenacting with {driver} -> {out / 'reenact'}")
    reenacted = reenact(ReenactConfig(run_dir=str(run), driver=str(driver), out=str(out / "reenact" / "avatar.mp4"),
                                      checkpoint=checkpoint, device=cfg.device))
    lap("reenact")
    seconds["total"] = time.perf_counter() - t0

    m = evaluated.means
    summary = {
        "out": str(out), "video": str(video), "driver": str(driver), "seconds": seconds,
        "prepare": {"frames": prepared.num_frames, "train_frames": prepared.num_train,
                    "validation_frames": prepared.num_validation, "test_frames": prepared.num_test,
                    "landmark_error_px": prepared.landmark_error_px,
                    "matte": prepared.matte_source},
        "train": {"preset": cfg.preset, "steps": trained.steps, "minutes": trained.seconds / 60,
                  "val_psnr": trained.val_psnr, "vgg_source": trained.vgg_source},
        "test": {k: m.get(k) for k in ("l1", "psnr", "ssim", "lpips", "identity", "fg_psnr", "untrained_psnr")}
                | {"notes": evaluated.report["notes"], "checkpoint": evaluated.report["checkpoint_selection"]},
        "baselines": {b: v["mean"] for b, v in evaluated.report["baselines"].items()},
        "margin": evaluated.report["margin"],
        "generator_frames_per_second": evaluated.frames_per_second,
        "reenact": {"frames": reenacted.frames, "fps": reenacted.generator_fps, "identity": reenacted.identity},
        "files": {"preview": str(subject / "preview.png"), "tracking_video": str(subject / "tracking.mp4"),
                  "grid": str(out / "eval" / "grid.png"), "test_video": str(out / "eval" / "test.mp4"),
                  "baselines": str(out / "eval" / "baselines.png"),
                  "avatar_video": str(reenacted.video),
                  "side_by_side_video": str(reenacted.side_by_side) if reenacted.side_by_side else None},
    }
    write_json_atomic(out / "summary.json", summary)
    print(format_summary(summary))
    return summary


def _margin_line(s: dict) -> str:
    from selfie_avatar.evaluate.report import LABELS, TITLES, margin_verdict

    parts = []
    for metric, g in s["margin"].items():
        if metric.startswith("fg_") or metric == "l1":
            continue
        parts.append(f"{TITLES[metric]} {g['improvement']:+.3f} ({margin_verdict(g)}, vs {LABELS[g['baseline']]})")
    return "; ".join(parts)


def _identity_line(ident: dict | None) -> str:
    if not ident or "to_subject" not in ident:
        return f"identity not measured ({(ident or {}).get('note', 'switched off')})"
    return (f"identity: avatar to subject {ident['to_subject']['mean']:.3f}, to driver {ident['to_driver']['mean']:.3f} "
            f"(subject vs driver {ident['driver_to_subject']['mean']:.3f}; cosine of dlib descriptors)")


def format_summary(s: dict) -> str:
    """The one-screen summary of a demo run."""
    h, sec, f = s["test"], s["seconds"], s["files"]

    def num(v, digits: int, note: str) -> str:
        return f"{v:.{digits}f}" if v is not None else f"unavailable ({note})"

    best = {m: s["margin"][m]["baseline_mean"] for m in ("psnr", "ssim") if m in s["margin"]}
    lines = [
        "",
        "=" * 78,
        f"selfie_avatar demo finished in {sec['total'] / 60:.1f} min; everything is under {s['out']}",
        "=" * 78,
        f"prepare   {s['prepare']['frames']} frames ({s['prepare']['train_frames']} train, "
        f"{s['prepare']['validation_frames']} validation, {s['prepare']['test_frames']} test), landmark error "
        f"{s['prepare']['landmark_error_px']:.2f} px, {sec['prepare']:.0f} s",
        f"train     {s['train']['preset']} preset: {s['train']['steps']} steps in {s['train']['minutes']:.1f} min "
        f"(VGG: {s['train']['vgg_source']})",
        f"test      PSNR {h['psnr']:.2f} dB (best trivial baseline {best.get('psnr', float('nan')):.2f}, untrained "
        f"{h['untrained_psnr']:.2f}), SSIM {h['ssim']:.3f} (baseline {best.get('ssim', float('nan')):.3f})",
        f"          LPIPS {num(h['lpips'], 4, h['notes']['lpips'])}, identity "
        f"{num(h['identity'], 3, h['notes']['identity'])}",
        f"margin    {_margin_line(s)}",
        f"          checkpoint: {h['checkpoint']}",
        f"reenact   {_identity_line(s['reenact'].get('identity'))}",
        f"speed     generator {s['generator_frames_per_second']:.1f} frames/s; reenact {s['reenact']['frames']} "
        f"frames at {s['reenact']['fps']:.1f} frames/s (render + generator)",
        "look at",
        f"  {f['preview']}          tracking contact sheet",
        f"  {f['grid']}             real | generated | error, test frames",
        f"  {f['baselines']}        real | avatar | nearest-codes, mean, last training frame",
        f"  {f['side_by_side_video']}   driver | avatar",
        f"  {f['avatar_video']}",
        "=" * 78,
    ]
    return "\n".join(lines)
