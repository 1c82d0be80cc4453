"""Figures that put runs side by side: test-frame metrics as bars, an ablation grid's configurations with their seed
error bars, and held-out crops in columns."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from selfie_avatar.evaluate.compare import HIGHER_IS_BETTER
from selfie_avatar.viz.plots import as_rgb

__all__ = ["ablation_figure", "metric_comparison_figure", "sample_crops_figure"]


def _metric_axes(metrics: Sequence[str], count: int, width: float, height: float):
    """A figure with one titled axis per metric (four per row), sized for ``count`` entries per axis."""
    ncols = min(len(metrics), 4)
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(max(3.0, 0.55 * count + width) * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_axis_off()
    for ax, metric in zip(axes.flat, metrics):
        better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(metric), "")
        ax.set_title(f"{metric} ({better})" if better else metric, fontsize=9)
    return fig, list(zip(axes.flat, metrics))


def _missing(ax, text: str, note: str | None) -> None:
    """An axis that says why a metric has no values (its model file is missing, say)."""
    ax.text(0.5, 0.5, text + (":\n" + textwrap.fill(str(note), 32) if note else ""), ha="center", va="center",
            fontsize=8, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def metric_comparison_figure(rows: Sequence[Mapping], metrics: Sequence[str] = ("l1", "psnr", "ssim", "lpips"),
                             label: str = "name") -> Figure:
    """One bar chart per metric, one bar per run; a metric no run has (LPIPS without its weights) shows why.

    Args:
        rows: ``evaluate.compare.compare_runs(run_dirs)``.
        metrics: which row keys to chart.
        label: the row key that names each bar.
    """
    if not rows:
        raise ValueError("no runs to compare")
    if not metrics:
        raise ValueError("name at least one metric")
    names = [str(r.get(label)) for r in rows]
    fig, panels = _metric_axes(metrics, len(rows), 1.2, 2.9)
    colours = [f"C{k % 10}" for k in range(len(rows))]
    for ax, metric in panels:
        values = [r.get(metric) for r in rows]
        if all(v is None for v in values):
            base = metric.removeprefix("fg_")  # fg_lpips shares lpips_note
            _missing(ax, f"{metric} unavailable",
                     next((r.get(f"{base}_note") for r in rows if r.get(f"{base}_note")), None))
            continue
        heights = [np.nan if v is None else float(v) for v in values]
        ax.bar(range(len(rows)), heights, color=colours)
        ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        finite = [h for h in heights if np.isfinite(h)]
        if finite:  # zoom on the differences: bars from 0 would hide them for PSNR (all near 20-30 dB)
            lo, hi = min(finite), max(finite)
            pad = 0.15 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-3
            ax.set_ylim(lo - pad if metric.endswith("psnr") else min(0, lo - pad), hi + pad)
    return fig


def ablation_figure(table: Mapping, metrics: Sequence[str] | None = None) -> Figure:
    """Per metric, one dot per configuration with its error bar, the seeds as small points, and the best trivial
    baseline as a horizontal line.

    The error bar is the table's: ± 1 std over seeds, or with one seed the 95 % block-bootstrap interval over test
    frames (the axis says which). A ``*`` after an ablation's name: its paired difference to the reference lies
    beyond the noise (its 95 % interval excludes 0).

    Args:
        table: ``evaluate.ablation_table.ablation_table(...)`` (or ``OUT/ablation_table.json`` read back).
        metrics: which metrics (default: every metric of the table); one the runs lack shows why.
    """
    configs = table.get("configs") or {}
    if not configs:
        raise ValueError("the table has no configurations")
    metrics = list(table["metrics"] if metrics is None else metrics)
    if not metrics:
        raise ValueError("name at least one metric")
    names = list(configs)
    fig, panels = _metric_axes(metrics, len(names), 1.4, 3.1)
    for ax, metric in panels:
        if metric not in table["metrics"]:
            # fg_lpips shares lpips' note
            _missing(ax, f"{metric} not computed", (table.get("notes") or {}).get(metric.removeprefix("fg_")))
            continue
        kind = ""
        for x, name in enumerate(names):
            s = configs[name]["metrics"][metric]
            lo, hi = (np.nan if v is None else v for v in s["error_bar"])
            ax.errorbar([x], [s["mean"]], yerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="o", color=f"C{x % 10}",
                        capsize=4, markersize=6)
            ax.scatter([x] * len(s["per_seed"]), s["per_seed"], s=10, color=f"C{x % 10}", alpha=0.45, zorder=3)
            kind = s["error_bar_kind"]
        base = (table.get("baseline") or {}).get(metric)
        if base and base.get("mean") is not None:
            ax.axhline(base["mean"], color="0.35", linestyle="--", linewidth=1,
                       label=f"best trivial baseline ({base['name']})")
            ax.legend(fontsize=7, loc="best")
        paired = table.get("paired") or {}
        labels = [n + (" *" if paired.get(n, {}).get(metric, {}).get("beyond_noise") else "") for n in names]
        ax.set_xticks(range(len(names)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xlabel(f"error bars: {kind}", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    if table.get("paired"):
        fig.suptitle(f"* paired difference to {table.get('reference', 'full')} beyond the noise (its 95 % interval "
                     "excludes 0); small points: single seeds", fontsize=8)
    return fig


def sample_crops_figure(samples: Mapping[str, Mapping[str, Sequence]], size: float = 1.8) -> Figure:
    """Held-out frames in rows; the real frame first, then each run's generated frame.

    Args:
        samples: ``{run name: evaluate.compare.eval_samples(run_dir)}`` for runs evaluated on the same frames (the
            real column is taken from the first run).
        size: inches per panel.
    """
    if not samples:
        raise ValueError("no runs to show")
    runs = list(samples)
    first = samples[runs[0]]
    count = min(len(s["generated"]) for s in samples.values())
    if count == 0:
        raise ValueError("the runs have no samples")
    cols = ["real"] + runs
    fig = Figure(figsize=(size * len(cols), size * count + 0.3), layout="constrained")
    axes = fig.subplots(count, len(cols), squeeze=False)
    for i in range(count):
        images = [first["real"][i]] + [samples[r]["generated"][i] for r in runs]
        for j, (ax, im) in enumerate(zip(axes[i], images)):
            ax.imshow(as_rgb(im), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
    return fig
