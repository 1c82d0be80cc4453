"""The ablation grid's table: every configuration over its seeds, and each ablation's paired difference to the full
model, marked where it is larger than the noise.

Runs of the grid that share a seed share data order and initialisation, so the difference for seed k,
``metric(ablation, seed k) - metric(full, seed k)``, cancels much of what the seed alone changes. Its mean gets a
Student-t interval over the seeds (``stats.seed_interval``); a difference is *larger than seed noise* when that
interval excludes 0. With one seed nothing is known about seed noise: the interval is then a block bootstrap of the
per-frame paired differences over the test frames (``stats.frame_interval``), which shows frame-to-frame noise only,
and the table's note says so.

Everything is read from the runs' files (``config.json``, ``eval/metrics.json``), so a grid trained elsewhere reads
back the same way.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.compare import load_run, switched_off
from selfie_avatar.evaluate.report import DIGITS
from selfie_avatar.evaluate.scoring import HIGHER_IS_BETTER, METRIC_ORDER
from selfie_avatar.evaluate.stats import frame_interval, seed_interval
from selfie_avatar.utils.table import format_table

__all__ = ["DIFFERENCE_COLUMNS", "ablation_table", "format_ablation_table", "value_columns"]

#: Columns of the paired-difference rows (``table["difference_rows"]``).
DIFFERENCE_COLUMNS = ("ablation", "metric", "difference", "95 % interval", "seed noise", "over", "verdict")
BASELINE_ROW = "best trivial baseline"


def value_columns(metrics) -> list[str]:
    """Columns of the value rows (``table["rows"]``) for these metrics."""
    return ["configuration", "losses off", "seeds", "step", *metrics]


def _num(x) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _fmt(x: float | None, metric: str, sign: bool = False) -> str:
    return "-" if x is None else f"{x:{'+' if sign else ''}.{DIGITS.get(metric, 3)}f}"


def _direction(metric: str) -> str:
    better = HIGHER_IS_BETTER.get(metric)
    return metric if better is None else f"{metric} ({'higher' if better else 'lower'} is better)"


def _verdict(metric: str, mean: float | None, ci: list, over: str) -> tuple[bool, str]:
    """Whether the interval excludes 0, and the direction-aware words for it."""
    lo, hi = ci
    if lo is None or hi is None or mean is None:
        return False, "no interval"
    noise = "seed noise" if over == "seeds" else "frame noise"
    if lo <= 0 <= hi:
        return False, f"within {noise}"
    higher = HIGHER_IS_BETTER.get(metric)
    word = "differs" if higher is None else ("better" if (mean > 0) == higher else "worse")
    return True, f"{word}, beyond {noise}" if over == "seeds" else f"{word} on these frames (one seed)"


def _read(runs: Mapping[str, Mapping[int, str | Path]], eval_dir: str) -> dict[str, dict[int, tuple[dict, dict]]]:
    read: dict[str, dict[int, tuple[dict, dict]]] = {}
    frames = subject = None
    for name, seeds in runs.items():
        if not isinstance(seeds, Mapping):
            raise TypeError(f"runs[{name!r}] must map seed -> run folder, got {type(seeds).__name__}")
        if not seeds:
            raise ValueError(f"configuration {name!r} has no runs")
        read[name] = {}
        for seed, run in sorted((int(k), v) for k, v in seeds.items()):  # JSON keys are strings
            config, metrics = load_run(run, eval_dir)
            trained = (config.get("train_config") or {}).get("seed")
            if trained is not None and int(trained) != int(seed):
                raise SelfieAvatarError(f"{run} was trained with seed {trained} but is listed as seed {seed}; "
                                        "paired differences need the seeds right")
            # A paired difference only means something on the same subject's same test frames.
            if frames is None:
                frames, subject = metrics.get("frames"), config.get("subject")
            elif metrics.get("frames") != frames or config.get("subject") != subject:
                raise SelfieAvatarError(f"{run} was evaluated on other test frames (or another subject) than the "
                                        "grid's first run; its runs cannot be compared pairwise")
            read[name][seed] = (config, metrics)
    return read


def _metric_names(read) -> list[str]:
    """Metrics with a number in every run, in the evaluation's order."""
    sets = []
    for seeds in read.values():
        for _, metrics in seeds.values():
            mean = metrics.get("mean", {})
            listed = metrics.get("metrics") or METRIC_ORDER  # metrics.json from before the list was recorded
            sets.append([m for m in listed if _num(mean.get(m)) is not None])
    return [m for m in sets[0] if all(m in s for s in sets)]


def _summary(seeds: dict[int, tuple[dict, dict]], metric: str) -> dict:
    values = [float(m["mean"][metric]) for _, m in seeds.values()]
    mean = float(np.mean(values))
    if len(values) > 1:
        std = float(np.std(values, ddof=1))
        ci, bar, kind = seed_interval(values), [mean - std, mean + std], f"± 1 std over {len(values)} seeds"
    else:
        _, m = next(iter(seeds.values()))
        stored = (m.get("ci95") or {}).get(metric)
        ci = stored if stored is not None else frame_interval((m.get("per_frame") or {}).get(metric, [math.nan]))
        std, bar, kind = None, ci, "95 % block-bootstrap interval over test frames (one seed)"
    return {"per_seed": values, "mean": mean, "std": std, "ci95": [_num(c) for c in ci],
            "error_bar": [_num(c) for c in bar], "error_bar_kind": kind}


def _paired(ablation: dict[int, tuple[dict, dict]], full: dict[int, tuple[dict, dict]], metric: str,
            name: str, reference: str) -> dict:
    common = sorted(set(ablation) & set(full))
    if not common:
        raise SelfieAvatarError(f"{name} and {reference} share no seed ({sorted(ablation)} vs {sorted(full)}); a "
                                "paired difference needs runs with the same seed")
    if len(common) > 1:
        diffs = [float(ablation[s][1]["mean"][metric]) - float(full[s][1]["mean"][metric]) for s in common]
        mean, ci, over, n = float(np.mean(diffs)), seed_interval(diffs), "seeds", len(common)
    else:
        s = common[0]
        a = np.asarray((ablation[s][1].get("per_frame") or {}).get(metric, []), np.float64)
        b = np.asarray((full[s][1].get("per_frame") or {}).get(metric, []), np.float64)
        if a.size == 0 or a.shape != b.shape:
            diffs, mean, ci = None, None, (math.nan, math.nan)  # metrics.json from before per-frame scores
        else:
            d = a - b
            diffs, mean, ci = None, _num(float(np.nanmean(d))) if np.isfinite(d).any() else None, frame_interval(d)
        over, n = "frames", int(a.size)
    ci = [_num(c) for c in ci]
    beyond, verdict = _verdict(metric, mean, ci, over)
    return {"mean": mean, "ci95": ci, "per_seed": diffs, "seeds": common, "over": over, "n": n,
            "beyond_noise": beyond, "verdict": verdict}


def _baseline(metrics: dict, metric: str) -> dict | None:
    """The best trivial baseline of a metric, as the evaluation chose it (``margin``), else from its means."""
    margin = (metrics.get("margin") or {}).get(metric)
    if margin:
        return {"name": margin["baseline"], "mean": _num(margin["baseline_mean"])}
    means = {n: _num((b.get("mean") or {}).get(metric)) for n, b in (metrics.get("baselines") or {}).items()
             if n != "untrained"}
    means = {n: v for n, v in means.items() if v is not None}
    if not means or metric not in HIGHER_IS_BETTER:
        return None
    best = (max if HIGHER_IS_BETTER[metric] else min)(means, key=means.get)
    return {"name": best, "mean": means[best]}


def _note(paired: dict, seeds: int, missing: str | None) -> str:
    kinds = {d["over"] for per in paired.values() for d in per.values()}
    lines = [f"values: mean ± std over {seeds} seeds (std with ddof=1)" if seeds > 1 else
             "values: one seed, so no std ('-') and nothing is known about seed noise"]
    lines += [missing] if missing else []
    if "seeds" in kinds:
        lines.append("difference: ablation - full at the same seed (same data order and initialisation), mean and "
                     "95 % Student-t interval over the seeds; 'beyond seed noise': the interval excludes 0; seed "
                     "noise: the full model's own std over its seeds")
    if "frames" in kinds:
        lines.append("difference over frames: with one seed, the per-frame paired difference (ablation - full) on "
                     "the test frames, mean and 95 % block-bootstrap interval (stats.frame_interval); it shows "
                     "frame-to-frame noise only, not seed noise: train with --seeds 3 or more to tell an effect "
                     "from seed noise")
    return "\n".join(lines)


#: How ``selfie-avatar ablate`` lays out a grid folder: ``OUT/<ablation>/seed_<k>/`` (``ablation.json`` says so).
LAYOUT = "ablation/seed_k"


def grid_runs(out: str | Path) -> dict[str, dict[int, Path]]:
    """The run folders of a grid, from its ``ablation.json``: ``{configuration: {seed: run folder}}``.

    A grid written before seeds (``OUT/<name>/`` the run folder, one ``seed``) reads as that one seed. Folders are
    taken relative to ``out``, so a grid that was moved still reads.

    Raises:
        SelfieAvatarError: ``out`` holds no ``ablation.json``.
    """
    path = Path(out) / "ablation.json"
    if not path.is_file():
        raise SelfieAvatarError(f"{path} is missing; {out} is not an ablation grid (`selfie-avatar ablate` writes it)")
    grid = json.loads(path.read_text())
    if grid.get("layout") == LAYOUT:
        return {name: {int(seed): Path(out) / rel for seed, rel in seeds.items()}
                for name, seeds in grid["runs"].items()}
    return {name: {int(grid.get("seed", 0)): Path(out) / name} for name in grid.get("runs", {})}


def ablation_table(runs: Mapping[str, Mapping[int, str | Path]] | str | Path, reference: str = "full",
                   eval_dir: str = "eval") -> dict:
    """Per configuration, every metric over its seeds; per ablation, the paired difference to ``reference``.

    Args:
        runs: ``{configuration: {seed: evaluated run folder}}`` (``run_ablation_grid(...).runs``), or a grid folder
            (read with :func:`grid_runs`; grids from before ``--seeds`` read as one seed).
        reference: the configuration every other one is compared with.
        eval_dir: the evaluation folder inside each run.

    Returns:
        A JSON-ready dict: ``metrics`` (those every run has, e.g. l1, psnr, ssim, lpips, identity, fg_*),
        ``configs`` ``{name: {"seeds", "steps", "losses_off", "metrics": {metric: {"per_seed", "mean", "std",
        "ci95", "error_bar", "error_bar_kind"}}}}``, ``paired`` ``{ablation: {metric: {"mean", "ci95",
        "per_seed", "seeds", "over" ("seeds" or "frames"), "n", "beyond_noise", "verdict"}}}``, ``seed_noise``
        ``{metric: the reference's std over seeds, or None}``, ``baseline`` ``{metric: {"name", "mean"}}`` (the
        best trivial baseline), ``notes`` (why a metric is missing), ``note`` (how to read the table), and the
        display rows ``rows`` (columns :func:`value_columns`) and ``difference_rows`` (columns
        :data:`DIFFERENCE_COLUMNS`). Show it with :func:`format_ablation_table` or ``utils.table.Table``.

    Raises:
        ValueError: no runs (without ``reference`` among them the table has values but no differences).
        SelfieAvatarError: a run is not evaluated, is listed under another seed than it was trained with, or was
            evaluated on other test frames; an ablation shares no seed with the reference.
    """
    if isinstance(runs, (str, Path)):
        runs = grid_runs(runs)
    if not runs:
        raise ValueError("no runs to tabulate")
    read = _read(runs, eval_dir)
    metrics = _metric_names(read)
    full = read.get(reference)
    configs, paired = {}, {}
    for name, seeds in read.items():
        config = next(iter(seeds.values()))[0]
        configs[name] = {"seeds": list(seeds), "steps": [m.get("step") for _, m in seeds.values()],
                         "losses_off": switched_off(config),
                         "runs": [str(p) for _, p in sorted((int(k), v) for k, v in runs[name].items())],
                         "metrics": {m: _summary(seeds, m) for m in metrics}}
        if full is not None and name != reference:
            paired[name] = {m: _paired(seeds, full, m, name, reference) for m in metrics}
    first = next(iter((full or next(iter(read.values()))).values()))[1]
    baseline = {m: b for m in metrics if (b := _baseline(first, m)) is not None}
    seed_noise = {m: configs[reference]["metrics"][m]["std"] if full else None for m in metrics}

    rows = []
    for name, c in configs.items():
        steps = sorted(set(c["steps"]), key=str)
        rows.append({"configuration": name, "losses off": c["losses_off"], "seeds": len(c["seeds"]),
                     "step": steps[0] if len(steps) == 1 else ", ".join(map(str, steps)),
                     **{m: f"{_fmt(s['mean'], m)} ± {_fmt(s['std'], m)}" for m, s in c["metrics"].items()}})
    if baseline:
        rows.append({"configuration": BASELINE_ROW, "losses off": "(reference line)",
                     **{m: f"{_fmt(b['mean'], m)} ({b['name']})" for m, b in baseline.items()}})
    difference_rows = [
        {"ablation": name, "metric": _direction(m), "difference": _fmt(d["mean"], m, sign=True),
         "95 % interval": f"[{_fmt(d['ci95'][0], m, True)}, {_fmt(d['ci95'][1], m, True)}]",
         "seed noise": _fmt(seed_noise[m], m) if d["over"] == "seeds" else "-",
         "over": f"{d['n']} seeds" if d["over"] == "seeds" else f"{d['n']} test frames", "verdict": d["verdict"]}
        for name, per in paired.items() for m, d in per.items()]
    n_seeds = max(len(c["seeds"]) for c in configs.values())
    return {"type": "AblationTable", "reference": reference, "metrics": metrics, "configs": configs,
            "paired": paired, "seed_noise": seed_noise, "baseline": baseline,
            "notes": dict(first.get("notes") or {"lpips": first.get("lpips_note")}),
            "note": _note(paired, n_seeds, None if full else f"no {reference!r} runs, so no paired differences"),
            "rows": rows, "difference_rows": difference_rows}


def format_ablation_table(table: dict) -> str:
    """The table as text: values (full frame, then foreground: one table would be too wide), differences, note.

    Args:
        table: the output of :func:`ablation_table` (or ``OUT/ablation_table.json`` read back).
    """
    metrics = table["metrics"]
    lines = []
    for group in ([m for m in metrics if not m.startswith("fg_")], [m for m in metrics if m.startswith("fg_")]):
        if group:
            lines.append(format_table(table["rows"], value_columns(group)))
    if table["difference_rows"]:
        lines.append(f"paired difference to {table['reference']} (ablation - {table['reference']}):")
        lines.append(format_table(table["difference_rows"], DIFFERENCE_COLUMNS))
    missing = [f"  {k}: {v}" for k, v in table.get("notes", {}).items() if v and k not in metrics]
    lines += (["not computed:"] + missing if missing else [])
    lines += [textwrap.fill(line, 116, subsequent_indent="  ") for line in table["note"].splitlines()]
    return "\n".join(lines)
