"""The loss ablation grid: the same training with one loss switched off at a time, equal budgets and seeds.

    OUT/
      ablation.json          the grid: names, loss overrides, budget, seed, W&B group, run folders
      full/                  a run folder (``training/run.py``) with every loss
      no_id_mrf/ ...         one run folder per ablation, each evaluated into RUN/eval/ (``evaluate/run.py``)

Every run gets the same preset, step budget, time limit, seed and W&B group, so the runs differ only in their loss
set; W&B shows them together under the group (offline unless logged in, as ``train`` decides). Runs are evaluated
on the *last* checkpoint: ``best.ckpt`` is chosen by held-out PSNR, which would let the held-out frames pick the
checkpoint the comparison is then scored on, and would compare runs at different steps.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from selfie_avatar.config import EvaluateConfig, TrainConfig
from selfie_avatar.losses.registry import parse_loss_overrides
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.log import get_logger

log = get_logger("ablation")

#: Ablation name -> loss overrides (``TrainConfig.loss`` items). Weight 0 switches a loss off (not computed).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no_id_mrf": ("id_mrf=0",),
    "no_cosine": ("cosine=0",),
    "no_reconstruction": ("reconstruction=0",),
    "no_adversarial": ("adversarial=0",),
}

_GRID_OWNED = {"subject", "out", "preset", "loss", "max_steps", "max_minutes", "seed", "device",
               "overwrite", "resume", "wandb_project", "wandb_group", "run_name", "progress"}


def _check_names(names: Sequence[str] | None) -> list[str]:
    names = list(ABLATIONS) if names is None else list(names)
    if not names:
        raise ValueError("the ablation grid needs at least one ablation")
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"ablation names repeat: {names}")
    return names


def _finished(run: Path, evaluate: bool) -> bool:
    return (run / "eval" / "metrics.json").is_file() if evaluate else (run / "checkpoints" / "last.ckpt").is_file()


def run_ablation_grid(subject: str | Path, out: str | Path, preset: str = "cpu", names: Sequence[str] | None = None,
                      max_steps: int | None = None, max_minutes: float | None = None, seed: int = 0,
                      group: str | None = None, device: str = "auto", evaluate: bool = True,
                      overwrite: bool = False, skip_existing: bool = False, wandb_project: str = "selfie-avatar",
                      progress: bool = True, train_options: dict | None = None) -> list[Path]:
    """Train (and evaluate) one run per ablation, one after another.

    Args:
        subject: a prepared subject folder.
        out: the grid folder (one run folder per ablation inside it).
        preset: training preset of every run (``tiny``, ``cpu``, ``full``).
        names: which ablations of :data:`ABLATIONS`, in order (default: all).
        max_steps: steps per run. Given without ``max_minutes``, the preset's time limit is lifted so every run
            trains exactly this many steps (runs without VGG losses are faster and would otherwise take more).
        max_minutes: time limit per run (equal time is not equal steps: the table shows each run's step).
        seed: the seed of every run.
        group: the W&B group (default: the grid folder's name and the start time).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        evaluate: evaluate each run's last checkpoint on the held-out frames (``RUN/eval/metrics.json``).
        overwrite: delete and redo run folders that exist.
        skip_existing: keep run folders that already finished (evaluated, or trained when ``evaluate`` is off).
        wandb_project: the W&B project.
        progress: progress bars.
        train_options: further ``TrainConfig`` fields applied to every run (e.g. ``{"batch_size": 2}``); the grid's
            own fields (loss, budget, seed, group, ...) cannot be set here.

    Returns:
        The run folders, in the order of ``names``.

    Raises:
        ValueError: unknown ablation names or options, or no budget that could be equal.
        FileExistsError: a run folder exists and neither ``overwrite`` nor ``skip_existing`` is set (checked for
            every run before any training starts).
    """
    from selfie_avatar.evaluate.run import evaluate as evaluate_run
    from selfie_avatar.training.run import train

    names = _check_names(names)
    if overwrite and skip_existing:
        raise ValueError("choose overwrite or skip_existing, not both")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if max_minutes is not None and max_minutes <= 0:
        raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
    options = dict(train_options or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(options) - (fields - _GRID_OWNED))
    if bad:
        raise ValueError(f"train_options {bad} are not TrainConfig fields the grid lets you set "
                         f"(the grid sets {sorted(_GRID_OWNED & fields)} itself)")
    for name in names:
        parse_loss_overrides(ABLATIONS[name])  # a broken table fails here, not after hours of training
    if not (Path(subject) / "meta.json").is_file():
        raise FileNotFoundError(f"{subject} is not a subject folder (no meta.json); run `selfie-avatar prepare`")

    out = Path(out)
    runs = {name: out / name for name in names}
    for name, run in runs.items():
        if not run.exists() or not any(run.iterdir()):
            continue
        if skip_existing and _finished(run, evaluate):
            continue
        if overwrite:
            if not (run / "config.json").is_file():
                raise FileExistsError(f"{run} exists and is not a run folder; the grid will not delete it")
            continue
        raise FileExistsError(f"{run} already holds a run; pass overwrite=True (--overwrite) to redo it or "
                              f"skip_existing=True (--skip-existing) to keep finished runs")

    group = group or f"{out.resolve().name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    minutes = max_minutes if max_minutes is not None else (0 if max_steps is not None else None)  # 0: no limit
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "ablation.json", {
        "type": "AblationGrid", "subject": str(Path(subject).resolve()), "preset": preset, "seed": seed,
        "max_steps": max_steps, "max_minutes": max_minutes, "wandb_group": group, "wandb_project": wandb_project,
        "ablations": {name: list(ABLATIONS[name]) for name in names}, "runs": {n: str(r) for n, r in runs.items()},
        "train_options": options, "evaluated_checkpoint": "last" if evaluate else None,
    })
    for k, (name, run) in enumerate(runs.items()):
        if skip_existing and _finished(run, evaluate):
            log.info("ablation %s: %s already finished; kept", name, run)
            continue
        if overwrite and run.exists():
            shutil.rmtree(run)  # a fresh folder: train --overwrite would keep the old logs beside the new ones
        log.info("ablation %d/%d: %s (loss %s)", k + 1, len(runs), name, list(ABLATIONS[name]) or "all on")
        cfg = TrainConfig(subject=str(subject), out=str(run), preset=preset, loss=list(ABLATIONS[name]),
                          max_steps=max_steps, max_minutes=minutes, seed=seed, device=device,
                          wandb_project=wandb_project, wandb_group=group, run_name=name, progress=progress,
                          **options)
        train(cfg)
        if evaluate:
            evaluate_run(EvaluateConfig(run_dir=str(run), checkpoint="last", device=device))
    return list(runs.values())
