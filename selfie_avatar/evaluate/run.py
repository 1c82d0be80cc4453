"""``selfie-avatar evaluate RUN_DIR``: the avatar on its subject's test frames, beside what trivial methods score.

Every test frame is rendered from its own tracked codes and compared with the real frame. The test frames (the last
10 % of the clip) chose nothing: the checkpoint is chosen on the validation frames before them, and the trivial
baselines (``evaluate/baselines.py``) are built from training frames only. Metrics (``evaluate/scoring.py``) are
computed identically for the avatar, the baselines and an untrained network (a sanity line); every mean has a 95 %
block-bootstrap interval (``evaluate/stats.py``), and the margin over the best baseline is a paired difference.

Writes into ``RUN_DIR/eval/`` (or ``--out``): ``metrics.json`` (per frame and averaged for every predictor, the
margins, the run's config, loss set, VGG source, model files and commit), ``grid.png`` (real | generated | error
map), ``baselines.png`` (real | avatar | each baseline) and ``test.mp4`` (real | generated); prints the table and
the generator's frames per second.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfie_avatar.assets import assets_record
from selfie_avatar.config import EvaluateConfig, config_to_dict
from selfie_avatar.evaluate.baselines import BASELINES
from selfie_avatar.evaluate.report import format_report, margins, summarise_scores
from selfie_avatar.evaluate.test_set import TestSet
from selfie_avatar.io.image import write_image
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.device import resolve_device
from selfie_avatar.utils.images import to_uint8
from selfie_avatar.utils.log import get_logger
from selfie_avatar.utils.timing import calls_per_second

log = get_logger("evaluate")


@dataclass
class EvaluateResult:
    out_dir: Path
    means: dict[str, float]
    frames_per_second: float
    lpips: str
    report: dict

    def summary(self) -> str:
        r = self.report
        sel = r["checkpoint_selection"]
        return (f"test frames: {len(r['frames'])} (never trained on, chose nothing); checkpoint {r['checkpoint_name']}"
                f" ({sel})\n{format_report(r['summary'], r['margin'], tuple(r['metrics']))}\n"
                f"  LPIPS: {r['notes']['lpips']}\n  identity: {r['notes']['identity']}\n"
                f"  generator: {self.frames_per_second:.1f} frames/s\n  written to {self.out_dir}")


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def checkpoint_selection(record: dict, checkpoint: str) -> tuple[str, str]:
    """Which checkpoint to evaluate, and how it was chosen.

    A ``best.ckpt`` of a run trained before the validation split was chosen on the frames that are now the test
    set; scoring it there would report a number selected on the test frames, so ``last.ckpt`` is used instead.

    Returns:
        ``(checkpoint name, sentence saying how it was chosen)``.
    """
    if checkpoint == "last":
        return "last", "the last training step; nothing chose it"
    chosen = record.get("checkpoint_selection")
    if not chosen:
        log.warning("this run was trained before the validation split: its best.ckpt was chosen on what are now "
                    "the test frames, so last.ckpt is evaluated instead")
        return "last", "last.ckpt: this run's best.ckpt was chosen on the test frames (trained before the split)"
    return "best", chosen


def evaluate(cfg: EvaluateConfig, progress: bool = True) -> EvaluateResult:
    """Evaluate a training run on its subject's test frames.

    Raises:
        SelfieAvatarError: the run folder, its checkpoint or its subject is missing, or the subject has no test
            frames.
    """
    from selfie_avatar.training.checkpoint import open_run, read_run_record

    device = resolve_device(cfg.device)
    name, selection = checkpoint_selection(read_run_record(cfg.run_dir), cfg.checkpoint)
    opened = open_run(cfg.run_dir, name, device)
    run, record, ckpt, avatar, subject = opened.root, opened.record, opened.checkpoint, opened.avatar, opened.subject
    tests = TestSet(subject, avatar.config.size, device, cfg.batch_size, progress=progress)
    test = tests.frames
    untrained = _untrained(avatar, device)
    scores, fakes = tests.score(lambda r, uv: avatar.render(r, uv)["image"], keep=True)
    per_frame = {"avatar": scores, **tests.baseline_scores,
                 "untrained": tests.score(lambda r, uv: untrained.render(r, uv)["image"], desc="untrained")[0]}

    summary = {p: summarise_scores(v) for p, v in per_frame.items()}
    margin = margins(per_frame["avatar"], {b: per_frame[b] for b in BASELINES})
    means = {m: s["mean"] for m, s in summary["avatar"].items()}
    means["untrained_psnr"] = summary["untrained"]["psnr"]["mean"]
    means["frames"] = len(test)
    first = tests.data[0]
    render, uv = first["render"][None].to(device), first["uv"][None].to(device)
    with torch.no_grad():
        fps = calls_per_second(lambda: avatar.render(render, uv), device=device)

    out = Path(cfg.out) if cfg.out else run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    real_all, fake_all = torch.stack([tests.real(k) for k in range(len(test))]), torch.stack(fakes)
    write_image(out / "grid.png", _grid(real_all, fake_all))
    shown = _rows(len(test))
    base = tests.baselines.predict([test[k] for k in shown])
    write_image(out / "baselines.png", to_uint8(torch.cat(
        [torch.cat([real_all[k], fake_all[k], *(base[b][j] for b in BASELINES)], 2) for j, k in enumerate(shown)],
        1)))
    with VideoWriter(out / "test.mp4", subject.meta.get("fps", 25)) as w:
        for r, f in zip(real_all, fake_all):
            w.write(to_uint8(torch.cat([r, f], 2)))
    split = subject.split
    report = {
        "run": str(run.resolve()), "checkpoint": str(ckpt), "checkpoint_name": name,
        "checkpoint_selection": selection, "step": avatar.step, "frames": test,
        "split": {"train": len(split.train), "validation": split.validation, "test": split.test,
                  "validation_derived_at_read_time": split.derived},
        "metrics": list(tests.scorer.metrics), "mean": means, "ci95": {m: s["ci95"] for m, s in summary["avatar"].items()},
        "per_frame": per_frame["avatar"],
        "baselines": {b: {"mean": {m: s["mean"] for m, s in summary[b].items()},
                          "ci95": {m: s["ci95"] for m, s in summary[b].items()}, "per_frame": per_frame[b]}
                      for b in (*BASELINES, "untrained")},
        "baseline_sources": tests.baselines.sources(test), "summary": summary, "margin": margin,
        "notes": tests.scorer.notes, "lpips": means.get("lpips"), "lpips_note": tests.scorer.notes["lpips"],
        "generator_frames_per_second": fps, "device": str(device),
        "loss_weights": record.get("loss_weights"), "vgg_source": record.get("vgg_source"),
        "assets": assets_record(), "train_assets": record.get("assets"),  # at evaluation, and when training
        "train_config": record.get("train_config"), "model": record.get("model"),
        "evaluate_config": config_to_dict(cfg), "commit": _commit(),
    }
    write_json_atomic(out / "metrics.json", report)
    return EvaluateResult(out, means, fps, tests.scorer.notes["lpips"], report)


def _untrained(avatar, device):
    """The same networks freshly initialised: a sanity line every trained run must clear (not the reference)."""
    from selfie_avatar.models import AvatarGenerator
    from selfie_avatar.training.checkpoint import LoadedAvatar

    torch.manual_seed(0)
    gen = AvatarGenerator(avatar.config).to(device).eval()
    cache = gen.compute_cache()
    # The plate and the reference bank are inputs, not something it learned.
    return LoadedAvatar(avatar.config, gen.image_generator, cache["face_texture"], cache["bg_canvas"], 0, {}, None,
                        avatar.plate, avatar.reference)


def _rows(n: int, rows: int = 8) -> list[int]:
    """The test positions the pictures show: ``rows`` spread over the test frames."""
    return np.linspace(0, n - 1, min(rows, n)).round().astype(int).tolist()


def _grid(real: torch.Tensor, fake: torch.Tensor, rows: int = 8) -> np.ndarray:
    """Rows of real | generated | error map (absolute error, amplified 4x, in red)."""
    idx = _rows(len(real), rows)
    lines = []
    for i in idx:
        err = (fake[i] - real[i]).abs().mean(0, keepdim=True).mul(4).clamp(0, 1)
        heat = torch.cat([err, torch.zeros_like(err), torch.zeros_like(err)])
        lines.append(torch.cat([real[i], fake[i], heat], 2))
    return to_uint8(torch.cat(lines, 1))
