"""Read evaluated runs back and put them side by side: one row per run with its loss set and held-out metrics.

Everything comes from files (``RUN/config.json`` and ``RUN/eval/metrics.json``), so runs trained elsewhere, on
another day or another machine, compare the same way as the ones just trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.scoring import HIGHER_IS_BETTER
from selfie_avatar.io.image import read_image
from selfie_avatar.utils.atomic import read_json

__all__ = ["HIGHER_IS_BETTER", "METRICS", "TABLE_COLUMNS", "compare_runs", "eval_samples", "load_run"]

#: Held-out metrics of a comparison row (means over the held-out frames; fg_: foreground only). LPIPS and identity
#: are None where they are unavailable (``lpips_note`` and ``identity_note`` say why).
METRICS = ("l1", "psnr", "ssim", "lpips", "identity", "fg_l1", "fg_psnr", "fg_ssim", "fg_lpips", "untrained_psnr")
#: The columns worth a first look, in order.
TABLE_COLUMNS = ("name", "losses_off", "seed", "step", "l1", "psnr", "ssim", "lpips", "fg_psnr", "untrained_psnr")


def load_run(run_dir: str | Path, eval_dir: str = "eval") -> tuple[dict, dict]:
    """A run's ``config.json`` and its evaluation's ``metrics.json``.

    Args:
        run_dir: a training run folder, evaluated (``selfie-avatar evaluate RUN`` writes ``RUN/eval``).
        eval_dir: the evaluation folder inside it.

    Returns:
        ``(config, metrics)`` as read.

    Raises:
        SelfieAvatarError: either file is missing or not JSON (the message names it and the command that writes it).
    """
    run = Path(run_dir)
    config = read_json(run / "config.json", "this is not a run folder written by `selfie-avatar train`")
    metrics = read_json(run / eval_dir / "metrics.json", f"run `selfie-avatar evaluate {run}` first")
    return config, metrics


def switched_off(config: dict) -> str:
    """What a run switched off, from its ``config.json``: losses of weight 0, the background plate, the face as sure
    foreground and the reference bank."""
    off = [name for name, w in (config.get("loss_weights") or {}).items() if float(w) == 0]
    if config.get("train_config", {}).get("background_plate") is False:
        off.append("background plate")
    if config.get("train_config", {}).get("face_foreground") is False:
        off.append("face as foreground")
    if config.get("train_config", {}).get("reference") is False:
        off.append("reference bank")
    return ", ".join(off) or "none"


def compare_runs(run_dirs: Sequence[str | Path], eval_dir: str = "eval") -> list[dict]:
    """One row per run, from its files.

    Args:
        run_dirs: training run folders, each evaluated (``selfie-avatar evaluate RUN`` writes ``RUN/eval``).
        eval_dir: the evaluation folder inside each run (``evaluate --out`` elsewhere: give its name here).

    Returns:
        Rows (plain dicts, in the order given) with ``name`` (the run's name in W&B: ``--run-name``, else the
        folder name; ``full-s0`` in an ablation grid), ``run`` (its path), ``group`` (the W&B group),
        ``losses_off`` (the switched-off losses, or ``"none"``), ``loss_weights``, ``step`` (of the evaluated
        checkpoint), ``seed``, ``frames`` (held-out frames), every entry of :data:`METRICS`, ``lpips_note``,
        ``identity_note``, ``vgg_source`` and ``subject``. Show them with ``utils.table.Table(rows, TABLE_COLUMNS)``.

    Raises:
        SelfieAvatarError: a folder is not a training run or has not been evaluated (the message names the file
            and the command that writes it).
    """
    if isinstance(run_dirs, (str, Path)):
        raise TypeError("compare_runs takes a list of run folders, not one folder")
    rows = []
    for run in map(Path, run_dirs):
        config, metrics = load_run(run, eval_dir)
        mean = metrics.get("mean", {})
        train_cfg = config.get("train_config", {})
        weights = config.get("loss_weights", {})
        row = {
            "name": train_cfg.get("run_name") or run.name, "run": str(run), "group": train_cfg.get("wandb_group"),
            "losses_off": switched_off(config), "loss_weights": weights,
            "step": metrics.get("step"), "seed": train_cfg.get("seed"), "frames": len(metrics.get("frames", [])),
        }
        for key in METRICS:
            value = mean.get(key)
            row[key] = float(value) if isinstance(value, (int, float)) else None
        row["lpips_note"] = metrics.get("lpips_note")
        row["identity_note"] = (metrics.get("notes") or {}).get("identity")
        row["vgg_source"] = metrics.get("vgg_source") or config.get("vgg_source")
        row["subject"] = config.get("subject")
        rows.append(row)
    return rows


def eval_samples(run_dir: str | Path, count: int = 3, eval_dir: str = "eval") -> dict[str, list[np.ndarray]]:
    """Held-out crops of an evaluated run, read from its ``grid.png`` (rows of real | generated | error map).

    Args:
        run_dir: an evaluated run folder.
        count: how many held-out frames (spread over the grid's rows; fewer when the grid has fewer).

    Returns:
        ``{"real": [...], "generated": [...], "error": [...]}``, each a list of ``(S, S, 3)`` uint8 images.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    path = Path(run_dir) / eval_dir / "grid.png"
    if not path.is_file():
        raise SelfieAvatarError(f"{path} is missing; run `selfie-avatar evaluate {run_dir}` first")
    grid = read_image(path)
    side = grid.shape[1] // 3
    if side == 0 or grid.shape[1] != 3 * side or grid.shape[0] % side:
        raise SelfieAvatarError(f"{path} is not an evaluation grid (rows of three square panels)")
    rows = grid.shape[0] // side
    picks = np.linspace(0, rows - 1, min(count, rows)).round().astype(int)
    out: dict[str, list[np.ndarray]] = {"real": [], "generated": [], "error": []}
    for r in picks:
        line = grid[r * side:(r + 1) * side]
        for k, key in enumerate(out):
            out[key].append(line[:, k * side:(k + 1) * side])
    return out
