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

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfie_avatar.assets import assets_record
from selfie_avatar.config import EvaluateConfig, config_to_dict
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.baselines import BASELINES, TrivialBaselines
from selfie_avatar.evaluate.report import format_report, margins, summarise_scores
from selfie_avatar.evaluate.scoring import FrameScorer
from selfie_avatar.io.image import write_image
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.device import resolve_device
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


def _landmarks(subject, frames: list[int], size: int) -> torch.Tensor:
    """The real frames' tracked landmarks (B, L, 2) in pixels at the evaluation size."""
    lm = np.asarray(subject.tracking["landmarks"], np.float32)[frames, :, :2]
    return torch.from_numpy(lm * (size / subject.size))


def evaluate(cfg: EvaluateConfig, progress: bool = True) -> EvaluateResult:
    """Evaluate a training run on its subject's test frames.

    Raises:
        SelfieAvatarError: the run folder, its checkpoint or its subject is missing, or the subject has no test
            frames.
    """
    from tqdm.auto import tqdm

    from selfie_avatar.training.checkpoint import open_run
    from selfie_avatar.training.data import SubjectFrames

    device = resolve_device(cfg.device)
    run_dir = Path(cfg.run_dir)
    record = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    name, selection = checkpoint_selection(record, cfg.checkpoint)
    opened = open_run(cfg.run_dir, name, device)
    run, record, ckpt, avatar, subject = opened.root, opened.record, opened.checkpoint, opened.avatar, opened.subject
    test = subject.test_indices
    if not test:
        raise SelfieAvatarError(f"{subject.root} has no test frames (too few frames with a face); prepare a longer "
                                "clip to evaluate on")
    size = avatar.config.size
    data = SubjectFrames(subject, test, size=size, cache=False)
    baselines = TrivialBaselines(subject, size, progress=progress)
    untrained = _untrained(avatar, device)
    scorer = FrameScorer(device)

    predictors = ("avatar", *BASELINES, "untrained")
    per_frame: dict[str, dict[str, list[float]]] = {p: {} for p in predictors}
    shown = np.linspace(0, len(test) - 1, min(8, len(test))).round().astype(int).tolist()
    reals, fakes, rows = [], [], []
    bar = tqdm(total=len(test), desc="evaluate", unit="frame", disable=not progress)
    for start in range(0, len(test), cfg.batch_size):
        ks = list(range(start, min(start + cfg.batch_size, len(test))))
        batch = torch.utils.data.default_collate([data[k] for k in ks])
        batch = {k: v.to(device) for k, v in batch.items()}
        real, matte = (batch["image"] + 1) / 2, batch["matte"]
        preds = {"avatar": (avatar.render(batch["render"], batch["uv"])["image"] + 1) / 2,
                 **{k: v.to(device) for k, v in baselines.predict([test[k] for k in ks]).items()},
                 "untrained": (untrained.render(batch["render"], batch["uv"])["image"] + 1) / 2}
        landmarks = _landmarks(subject, [test[k] for k in ks], size).to(device)
        for p, img in preds.items():
            for m, v in scorer(img.clamp(0, 1), real, matte, landmarks).items():
                per_frame[p].setdefault(m, []).extend(v.cpu().tolist())
        reals.append(real.cpu())
        fakes.append(preds["avatar"].clamp(0, 1).cpu())
        rows += [torch.cat([real[j], preds["avatar"][j].clamp(0, 1), *(preds[b][j] for b in BASELINES)], 2).cpu()
                 for j, k in enumerate(ks) if k in shown]
        bar.update(len(ks))
    bar.close()

    summary = {p: summarise_scores(v) for p, v in per_frame.items()}
    margin = margins(per_frame["avatar"], {b: per_frame[b] for b in BASELINES})
    means = {m: s["mean"] for m, s in summary["avatar"].items()}
    means["untrained_psnr"] = summary["untrained"]["psnr"]["mean"]
    means["frames"] = len(test)
    render, uv = data[0]["render"][None].to(device), data[0]["uv"][None].to(device)
    with torch.no_grad():
        fps = calls_per_second(lambda: avatar.render(render, uv), device=device)

    out = Path(cfg.out) if cfg.out else run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    real_all, fake_all = torch.cat(reals), torch.cat(fakes)
    write_image(out / "grid.png", _grid(real_all, fake_all))
    write_image(out / "baselines.png", _to_uint8(torch.cat(rows, 1)))
    with VideoWriter(out / "test.mp4", subject.meta.get("fps", 25)) as w:
        for r, f in zip(real_all, fake_all):
            w.write(_to_uint8(torch.cat([r, f], 2)))
    split = subject.split
    report = {
        "run": str(run.resolve()), "checkpoint": str(ckpt), "checkpoint_name": name,
        "checkpoint_selection": selection, "step": avatar.step, "frames": test,
        "split": {"train": len(split.train), "validation": split.validation, "test": split.test,
                  "validation_derived_at_read_time": split.derived},
        "metrics": list(scorer.metrics), "mean": means, "ci95": {m: s["ci95"] for m, s in summary["avatar"].items()},
        "per_frame": per_frame["avatar"],
        "baselines": {b: {"mean": {m: s["mean"] for m, s in summary[b].items()},
                          "ci95": {m: s["ci95"] for m, s in summary[b].items()}, "per_frame": per_frame[b]}
                      for b in (*BASELINES, "untrained")},
        "baseline_sources": baselines.sources(test), "summary": summary, "margin": margin,
        "notes": scorer.notes, "lpips": means.get("lpips"), "lpips_note": scorer.notes["lpips"],
        "generator_frames_per_second": fps, "device": str(device),
        "loss_weights": record.get("loss_weights"), "vgg_source": record.get("vgg_source"),
        "assets": assets_record(), "train_assets": record.get("assets"),  # at evaluation, and when training
        "train_config": record.get("train_config"), "model": record.get("model"),
        "evaluate_config": config_to_dict(cfg), "commit": _commit(),
    }
    write_json_atomic(out / "metrics.json", report)
    return EvaluateResult(out, means, fps, scorer.notes["lpips"], report)


def _untrained(avatar, device):
    """The same networks freshly initialised: a sanity line every trained run must clear (not the reference)."""
    from selfie_avatar.models import AvatarGenerator
    from selfie_avatar.training.checkpoint import LoadedAvatar

    torch.manual_seed(0)
    gen = AvatarGenerator(avatar.config).to(device).eval()
    cache = gen.compute_cache()
    return LoadedAvatar(avatar.config, gen.image_generator, cache["face_texture"], cache["bg_canvas"], 0, {}, None,
                        avatar.plate)  # the plate is an input, not something it learned


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
