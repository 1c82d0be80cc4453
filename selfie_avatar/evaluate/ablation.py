"""The loss ablation grid: the same training with one loss switched off at a time, equal budgets, the same seeds.

    OUT/
      ablation.json          the grid: names, loss overrides, budget, seeds, W&B group, run folders
      ablation_table.json    every configuration over its seeds, paired differences to full (``ablation_table.py``)
      full/seed_0/           a run folder (``training/run.py``) with every loss, seed 0
      full/seed_1/ ...       the same with seed 1 (``--seeds 2``)
      no_id_mrf/seed_0/ ...  one run folder per ablation and seed, each evaluated into RUN/eval/ (``evaluate/run.py``)

Every run gets the same preset, step budget and time limit, and configuration k's seed-s run the same seed as every
other configuration's, so runs of one seed differ only in their loss set (same data order and initialisation) and
the table can pair them. All runs log into one W&B group, named ``<ablation>-s<seed>`` with the seed in their W&B
config (offline unless logged in, as ``train`` decides). Runs are evaluated on the *last* checkpoint: ``best.ckpt`` is
chosen on validation frames at some step, which would compare runs at different steps.

Grids written before seeds (``OUT/<ablation>/`` itself the run folder) still read back (:func:`grid_runs`, as one
seed); training into one stops with a message saying how to move its runs, and nothing is moved silently.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from selfie_avatar.config import AblationConfig, EvaluateConfig, TrainConfig
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.ablation_table import LAYOUT, ablation_table, format_ablation_table, grid_runs
from selfie_avatar.losses.registry import parse_loss_overrides
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.log import get_logger

log = get_logger("ablation")

__all__ = ["ABLATIONS", "ABLATION_OPTIONS", "AblationResult", "grid_runs", "run_ablation_grid", "run_folder"]

#: Ablation name -> loss overrides (``TrainConfig.loss`` items). Weight 0 switches a loss off (not computed);
#: ``no_background_plate``, ``no_face_foreground``, ``no_reference`` and ``no_photo_texture`` keep every loss and
#: switch the plate input, the face region's place as sure foreground in the plate composite, the reference bank or
#: the photo texture off instead
#: (:data:`ABLATION_OPTIONS`; where the preset already has one off, ``no_face_foreground`` on ``cpu`` and ``full``,
#: ``no_reference`` and ``no_photo_texture`` on ``full``, the grid leaves it out, with a warning).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no_id_mrf": ("id_mrf=0",),
    "no_cosine": ("cosine=0",),
    "no_reconstruction": ("reconstruction=0",),
    "no_adversarial": ("adversarial=0",),
    "no_background_plate": (),
    "no_face_foreground": (),
    "no_reference": (),
    "no_photo_texture": (),
}
#: Ablation name -> further ``TrainConfig`` fields it changes (an ablation of the architecture, not of a loss).
ABLATION_OPTIONS: dict[str, dict] = {"no_background_plate": {"background_plate": False},
                                     "no_face_foreground": {"face_foreground": False},
                                     "no_reference": {"reference": False},
                                     "no_photo_texture": {"photo_texture": False}}
#: ``ablation.json``'s ``layout``: run folders OUT/<ablation>/seed_<k>/ (grids without it: OUT/<ablation>/).

_GRID_OWNED = {"subject", "out", "preset", "loss", "max_steps", "max_minutes", "seed", "device",
               "overwrite", "resume", "wandb_project", "wandb_group", "run_name", "progress"}
# Settings a kept run (skip_existing) must share with the runs trained now, or the grid would compare unequal runs.
_SAME_BUDGET = ("subject", "preset", "max_steps", "max_minutes", "train_options")


def run_folder(out: str | Path, name: str, seed: int) -> Path:
    """The run folder of one configuration and seed: ``OUT/<name>/seed_<seed>``."""
    return Path(out) / name / f"seed_{seed}"


@dataclass
class AblationResult:
    """What :func:`run_ablation_grid` made.

    Attributes:
        out: the grid folder.
        runs: ``{configuration: {seed: run folder}}``.
        group: the W&B group of every run.
        table: :func:`~selfie_avatar.evaluate.ablation_table.ablation_table` of the runs (None when not evaluated).
    """

    out: Path
    runs: dict[str, dict[int, Path]]
    group: str
    table: dict | None

    @property
    def folders(self) -> list[Path]:
        """Every run folder, configuration by configuration, seeds in order."""
        return [run for seeds in self.runs.values() for run in seeds.values()]

    def summary(self) -> str:
        lines = [format_ablation_table(self.table)] if self.table is not None else []
        seeds = sorted({s for per in self.runs.values() for s in per})
        lines.append(f"{len(self.folders)} runs ({len(self.runs)} configurations x seeds {seeds}) in W&B group "
                     f"{self.group}; ablation grid written to {self.out}"
                     + (f" (table: {self.out / 'ablation_table.json'})" if self.table is not None else ""))
        return "\n".join(lines)


def _check_names(names: Sequence[str] | None) -> list[str]:
    names = list(ABLATIONS) if not names else list(names)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"ablation names repeat: {names}")
    return names


def _finished(run: Path, evaluate: bool) -> bool:
    return (run / "eval" / "metrics.json").is_file() if evaluate else (run / "checkpoints" / "last.ckpt").is_file()


def _drop_no_ops(names: list[str], preset: str, train_options: dict | None = None) -> list[str]:
    """Leave out ablations that change nothing for ``preset`` and ``train_options``: ``no_adversarial`` where the
    preset already trains without the adversarial term, ``no_face_foreground`` where the face is not sure
    foreground anyway (``cpu``, ``full``). They would train a copy of ``full``. Settings are compared as ``train``
    resolves them (``training.run.resolve_settings``)."""
    from selfie_avatar.losses.registry import resolve_loss_weights
    from selfie_avatar.training.run import resolve_settings

    given = dict(train_options or {})

    def resolved(name: str):
        options = {**given, **ABLATION_OPTIONS.get(name, {})}
        s = resolve_settings(TrainConfig(preset=preset, **options))
        return resolve_loss_weights(dict(s.loss_weights), overrides=ABLATIONS[name]), s

    full = resolved("full")
    kept = []
    for name in names:
        if name != "full" and resolved(name) == full:
            what = ", ".join(ABLATIONS[name]) or ", ".join(f"{k}={v}" for k, v in ABLATION_OPTIONS[name].items())
            log.warning("ablation %s is the same as full with preset %s (%s already there); left out", name,
                        preset, what)
            continue
        kept.append(name)
    return kept


def _check_config(cfg: AblationConfig, train_options: dict | None) -> tuple[list[str], list[int], dict]:
    names = _check_names(cfg.ablation)
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {cfg.seeds}")
    if cfg.overwrite and cfg.skip_existing:
        raise ValueError("choose overwrite or skip_existing, not both")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {cfg.max_steps}")
    if cfg.max_minutes is not None and cfg.max_minutes <= 0:
        raise ValueError(f"max_minutes must be > 0, got {cfg.max_minutes}")
    options = dict(train_options or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(options) - (fields - _GRID_OWNED))
    if bad:
        raise ValueError(f"train_options {bad} are not TrainConfig fields the grid lets you set "
                         f"(the grid sets {sorted(_GRID_OWNED & fields)} itself)")
    names = _drop_no_ops(names, cfg.preset, options)  # after the check: it builds a TrainConfig from them
    for name in names:
        parse_loss_overrides(ABLATIONS[name])  # a broken table fails here, not after hours of training
    if not (Path(cfg.subject) / "meta.json").is_file():
        raise FileNotFoundError(f"{cfg.subject} is not a subject folder (no meta.json); run `selfie-avatar prepare`")
    return names, [cfg.seed + k for k in range(cfg.seeds)], options


def _check_folders(out: Path, runs: dict[str, dict[int, Path]], cfg: AblationConfig) -> None:
    """Refuse, before any training, what would overwrite a run or mix two layouts (raises FileExistsError)."""
    for name in runs:
        if (out / name / "config.json").is_file():
            raise FileExistsError(
                f"{out / name} is a run folder of a grid from before seeds (one run per ablation in OUT/<ablation>/); "
                f"the grid now keeps OUT/<ablation>/seed_<k>/. Move the old runs (e.g. `mv {out / name} "
                f"{out / name}.old && mkdir {out / name} && mv {out / name}.old {run_folder(out, name, 0)}` for "
                "seed 0) and rewrite or delete ablation.json, or choose another --out; nothing was changed")
    for seeds in runs.values():
        for run in seeds.values():
            if not run.exists() or not any(run.iterdir()):
                continue
            if cfg.skip_existing and _finished(run, cfg.evaluate):
                continue
            if cfg.overwrite:
                if not (run / "config.json").is_file():
                    raise FileExistsError(f"{run} exists and is not a run folder; the grid will not delete it")
                continue
            raise FileExistsError(f"{run} already holds a run; pass overwrite=True (--overwrite) to redo it or "
                                  f"skip_existing=True (--skip-existing) to keep finished runs")


def _previous_grid(out: Path, record: dict, skip_existing: bool) -> dict:
    """The grid this call continues (skip_existing), after checking its kept runs trained like the new ones."""
    path = out / "ablation.json"
    if not skip_existing or not path.is_file():
        return {}
    old = json.loads(path.read_text())
    changed = [k for k in _SAME_BUDGET if k in old and old[k] != record[k]]
    if changed:
        diff = "; ".join(f"{k} {old[k]!r}, now {record[k]!r}" for k in changed)
        raise SelfieAvatarError(f"{path} was run with other settings ({diff}); kept runs would not compare equally "
                                "with new ones: use the same settings, --overwrite, or another --out")
    return old


def run_ablation_grid(cfg: AblationConfig, train_options: dict | None = None) -> AblationResult:
    """Train (and evaluate) every configuration of the grid with every seed, one run after another.

    Seed by seed (all configurations of seed 0, then of seed 1, ...), so an interrupted grid holds whole seeds.

    Args:
        cfg: the grid's settings (``selfie-avatar ablate --help``): ``ablation`` (default: all of
            :data:`ABLATIONS`), ``seeds`` (seeds ``seed`` ... ``seed + seeds - 1`` per configuration), the budget
            (``max_steps`` given without ``max_minutes`` lifts the preset's time limit, so every run trains
            exactly that many steps), ``group`` (default: the grid folder's name and the start time; a grid
            continued with ``skip_existing`` keeps its group), ``evaluate``, ``overwrite``, ``skip_existing``.
        train_options: further ``TrainConfig`` fields applied to every run (e.g. ``{"batch_size": 2}``); the grid's
            own fields (loss, budget, seed, group, ...) cannot be set here.

    Returns:
        The runs, their W&B group and (when evaluated) the table, which is also written to
        ``OUT/ablation_table.json``.

    Raises:
        ValueError: unknown ablation names or options, fewer than one seed, or no budget that could be equal.
        SelfieAvatarError: ``skip_existing`` would keep runs trained with another subject, preset or budget.
        FileExistsError: a run folder exists and neither ``overwrite`` nor ``skip_existing`` is set, or the grid
            folder holds a grid from before seeds (checked for every run before any training starts).
    """
    from selfie_avatar.evaluate.run import evaluate as evaluate_run
    from selfie_avatar.training.run import train

    names, seeds, options = _check_config(cfg, train_options)
    out = Path(cfg.out)
    runs = {name: {seed: run_folder(out, name, seed) for seed in seeds} for name in names}
    _check_folders(out, runs, cfg)
    record = {
        "type": "AblationGrid", "layout": LAYOUT, "subject": str(Path(cfg.subject).resolve()), "preset": cfg.preset,
        "seed": cfg.seed, "seeds": seeds, "max_steps": cfg.max_steps, "max_minutes": cfg.max_minutes,
        "wandb_project": cfg.wandb_project, "ablations": {name: list(ABLATIONS[name]) for name in names},
        "ablation_options": {name: ABLATION_OPTIONS[name] for name in names if name in ABLATION_OPTIONS},
        "runs": {n: {str(s): str(r.relative_to(out)) for s, r in per.items()} for n, per in runs.items()},
        "train_options": options, "evaluated_checkpoint": "last" if cfg.evaluate else None,
    }
    previous = _previous_grid(out, record, cfg.skip_existing)
    group = cfg.group or previous.get("wandb_group") or \
        f"{out.resolve().name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    minutes = cfg.max_minutes if cfg.max_minutes is not None else (0 if cfg.max_steps is not None else None)  # 0: none
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "ablation.json", {**record, "wandb_group": group})
    total, k = len(names) * len(seeds), 0
    for seed in seeds:
        for name in names:
            run, k = runs[name][seed], k + 1
            if cfg.skip_existing and _finished(run, cfg.evaluate):
                log.info("ablation run %d/%d: %s seed %d already finished in %s; kept", k, total, name, seed, run)
                continue
            if cfg.overwrite and run.exists():
                shutil.rmtree(run)  # a fresh folder: train --overwrite would keep the old logs beside the new ones
            log.info("ablation run %d/%d: %s seed %d (loss %s)", k, total, name, seed,
                     list(ABLATIONS[name]) or "all on")
            # The seed reaches the W&B config through the run record (train_config.seed), the name shows it too.
            train(TrainConfig(subject=str(cfg.subject), out=str(run), preset=cfg.preset, loss=list(ABLATIONS[name]),
                              max_steps=cfg.max_steps, max_minutes=minutes, seed=seed, device=cfg.device,
                              wandb_project=cfg.wandb_project, wandb_group=group, run_name=f"{name}-s{seed}",
                              progress=cfg.progress, **{**options, **ABLATION_OPTIONS.get(name, {})}))
            if cfg.evaluate:
                evaluate_run(EvaluateConfig(run_dir=str(run), checkpoint="last", device=cfg.device),
                             progress=cfg.progress)
    table = None
    if cfg.evaluate:
        table = ablation_table(runs)
        write_json_atomic(out / "ablation_table.json", table)
    return AblationResult(out, runs, group, table)
