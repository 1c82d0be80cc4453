"""Figures that put runs side by side: held-out metrics as bars, and held-out crops in columns."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from selfie_avatar.evaluate.compare import HIGHER_IS_BETTER
from selfie_avatar.viz.plots import to_uint8

__all__ = ["metric_comparison_figure", "sample_crops_figure"]


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
    ncols = min(len(metrics), 4)
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(max(3.0, 0.55 * len(rows) + 1.2) * ncols, 2.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_axis_off()
    colours = [f"C{k % 10}" for k in range(len(rows))]
    for ax, metric in zip(axes.flat, metrics):
        values = [r.get(metric) for r in rows]
        better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(metric), "")
        ax.set_title(f"{metric} ({better})" if better else metric, fontsize=9)
        if all(v is None for v in values):
            base = metric.removeprefix("fg_")  # fg_lpips shares lpips_note
            note = next((r.get(f"{base}_note") for r in rows if r.get(f"{base}_note")), None)
            text = f"{metric} unavailable" + (":\n" + textwrap.fill(str(note), 32) if note else "")
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
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
            ax.imshow(to_uint8(im), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
    return fig
