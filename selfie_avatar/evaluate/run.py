"""``selfie-avatar evaluate RUN_DIR``: render the held-out frames from their own tracked codes and compare.

Writes into ``RUN_DIR/eval/`` (or ``--out``): ``metrics.json`` (per frame and averaged, with the run's config,
loss set, VGG source and commit), ``grid.png`` (real | generated | error map) and ``heldout.mp4``
(real | generated side by side); prints the generator's frames per second.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfie_avatar.assets import assets_record
from selfie_avatar.config import EvaluateConfig, config_to_dict
from selfie_avatar.evaluate.metrics import frame_metrics, lpips_status
from selfie_avatar.io.image import write_image
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.device import resolve_device
from selfie_avatar.utils.timing import calls_per_second


@dataclass
class EvaluateResult:
    out_dir: Path
    means: dict[str, float]
    frames_per_second: float
    lpips: str

    def summary(self) -> str:
        m = self.means
        return (f"held-out frames: {int(m['frames'])}\n"
                f"  full frame: L1 {m['l1']:.4f}  PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}\n"
                f"  foreground: L1 {m['fg_l1']:.4f}  PSNR {m['fg_psnr']:.2f} dB  SSIM {m['fg_ssim']:.4f}\n"
                f"  untrained network: PSNR {m['untrained_psnr']:.2f} dB\n"
                f"  LPIPS: {self._lpips()}\n"
                f"  generator: {self.frames_per_second:.1f} frames/s\n"
                f"  written to {self.out_dir}")


    def _lpips(self) -> str:
        if "lpips" not in self.means:
            return f"unavailable ({self.lpips})"
        return f"{self.means['lpips']:.4f} full frame, {self.means['fg_lpips']:.4f} foreground ({self.lpips})"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def evaluate(cfg: EvaluateConfig) -> EvaluateResult:
    """Evaluate a training run on its subject's held-out frames.

    Raises:
        SelfieAvatarError: the run folder, its checkpoint or its subject is missing.
    """
    from selfie_avatar.training.checkpoint import open_run
    from selfie_avatar.training.data import SubjectFrames

    device = resolve_device(cfg.device)
    opened = open_run(cfg.run_dir, cfg.checkpoint, device)
    run, record, ckpt, avatar, subject = opened.root, opened.record, opened.checkpoint, opened.avatar, opened.subject
    held = subject.heldout_indices or subject.train_indices[-1:]
    data = SubjectFrames(subject, held, size=avatar.config.size, cache=False)
    untrained = _untrained(avatar, device)
    ok, lpips_note = lpips_status()
    lpips_metric = None
    if ok:
        from selfie_avatar.evaluate.metrics import LPIPSMetric

        lpips_metric = LPIPSMetric().to(device)
        lpips_note = f"lpips v0.1, AlexNet trunk from {lpips_metric.path}"

    per_frame: dict[str, list[float]] = {}
    reals, fakes = [], []
    for start in range(0, len(data), cfg.batch_size):
        batch = torch.utils.data.default_collate([data[k] for k in range(start, min(start + cfg.batch_size, len(data)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        real = (batch["image"] + 1) / 2
        fake = (avatar.render(batch["render"], batch["uv"])["image"] + 1) / 2
        base = (untrained.render(batch["render"], batch["uv"])["image"] + 1) / 2
        m = frame_metrics(fake, real, batch["matte"])
        m["untrained_psnr"] = frame_metrics(base, real)["psnr"]
        if lpips_metric is not None:
            m["lpips"] = lpips_metric(fake, real)
            m["fg_lpips"] = lpips_metric(fake * batch["matte"], real * batch["matte"])
        for k, v in m.items():
            per_frame.setdefault(k, []).extend(v.cpu().tolist())
        reals.append(real.cpu())
        fakes.append(fake.clamp(0, 1).cpu())
    means = {k: float(np.mean(v)) for k, v in per_frame.items()}
    means["frames"] = len(held)
    render, uv = data[0]["render"][None].to(device), data[0]["uv"][None].to(device)
    with torch.no_grad():
        fps = calls_per_second(lambda: avatar.render(render, uv), device=device)

    out = Path(cfg.out) if cfg.out else run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    real_all, fake_all = torch.cat(reals), torch.cat(fakes)
    write_image(out / "grid.png", _grid(real_all, fake_all))
    with VideoWriter(out / "heldout.mp4", subject.meta.get("fps", 25)) as w:
        for r, f in zip(real_all, fake_all):
            w.write(_to_uint8(torch.cat([r, f], 2)))
    write_json_atomic(out / "metrics.json", {
        "run": str(run.resolve()), "checkpoint": str(ckpt), "step": avatar.step, "frames": held,
        "mean": means, "per_frame": per_frame,
        "lpips": means.get("lpips"), "lpips_note": lpips_note,
        "generator_frames_per_second": fps, "device": str(device),
        "loss_weights": record.get("loss_weights"), "vgg_source": record.get("vgg_source"),
        "assets": assets_record(), "train_assets": record.get("assets"),  # at evaluation, and when training
        "train_config": record.get("train_config"), "model": record.get("model"),
        "evaluate_config": config_to_dict(cfg), "commit": _commit(),
    })
    return EvaluateResult(out, means, fps, lpips_note)


def _untrained(avatar, device):
    """The same networks freshly initialised: the reference every trained run must beat."""
    from selfie_avatar.models import AvatarGenerator
    from selfie_avatar.training.checkpoint import LoadedAvatar

    torch.manual_seed(0)
    gen = AvatarGenerator(avatar.config).to(device).eval()
    cache = gen.compute_cache()
    return LoadedAvatar(avatar.config, gen.image_generator, cache["face_texture"], cache["bg_canvas"], 0, {}, None)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _grid(real: torch.Tensor, fake: torch.Tensor, rows: int = 8) -> np.ndarray:
    """Rows of real | generated | error map (absolute error, amplified 4x, in red)."""
    idx = np.linspace(0, len(real) - 1, min(rows, len(real))).round().astype(int)
    lines = []
    for i in idx:
        err = (fake[i] - real[i]).abs().mean(0, keepdim=True).mul(4).clamp(0, 1)
        heat = torch.cat([err, torch.zeros_like(err), torch.zeros_like(err)])
        lines.append(torch.cat([real[i], fake[i], heat], 2))
    return _to_uint8(torch.cat(lines, 1))
