"""From per-frame scores to the figures a report shows: means with 95 % intervals, and the avatar's margin over the
best trivial baseline for every metric (a paired difference over the same test frames, with its own interval).
"""

from __future__ import annotations

import math

import numpy as np

from selfie_avatar.evaluate.baselines import BASELINES
from selfie_avatar.evaluate.scoring import HIGHER_IS_BETTER
from selfie_avatar.evaluate.stats import frame_interval, summarise
from selfie_avatar.utils.table import format_table

__all__ = ["format_margin", "format_report", "format_value", "margin_verdict", "margins", "summarise_scores"]

#: Printed names of the predictors.
LABELS = {"avatar": "avatar", "nearest_codes": "nearest-codes training frame", "mean_frame": "mean training frame",
          "last_frame": "last training frame", "untrained": "untrained network (sanity line)"}


def summarise_scores(per_frame: dict[str, list[float]]) -> dict[str, dict]:
    """``{metric: {"mean": m, "ci95": [low, high]}}`` of one predictor's per-frame scores."""
    return {k: summarise(v) for k, v in per_frame.items()}


def margins(avatar: dict[str, list[float]], baselines: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    """The avatar's improvement over the best trivial baseline, per metric.

    The best baseline is chosen per metric by its mean (highest PSNR, lowest LPIPS, ...). ``improvement`` is signed
    so that positive always means the avatar is better (dB for PSNR, LPIPS units for LPIPS, ...); its interval is a
    block bootstrap of the per-frame paired differences, and ``better`` says whether the whole interval lies above 0.

    Args:
        avatar: the avatar's ``{metric: per-frame values}``.
        baselines: ``{baseline name: {metric: per-frame values}}`` on the same frames.

    Returns:
        ``{metric: {"baseline", "baseline_mean", "avatar_mean", "improvement", "ci95", "better"}}``.
    """
    out = {}
    for metric, values in avatar.items():
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        candidates = {n: np.asarray(b[metric], np.float64) for n, b in baselines.items() if metric in b}
        if not candidates:
            continue
        best = max(candidates, key=lambda n: sign * np.nanmean(candidates[n]))
        a = np.asarray(values, np.float64)
        diff = sign * (a - candidates[best])
        low, high = frame_interval(diff)
        out[metric] = {"baseline": best, "baseline_mean": float(np.nanmean(candidates[best])),
                       "avatar_mean": float(np.nanmean(a)), "improvement": float(np.nanmean(diff)),
                       "ci95": [low, high], "better": bool(low > 0)}
    return out


def format_value(s: dict | None, metric: str) -> str:
    """``mean [low, high]`` of one summary (``{"mean", "ci95"}``) at the metric's digits; ``-`` where missing."""
    if s is None or s["mean"] is None or math.isnan(s["mean"]):
        return "-"
    d = DIGITS.get(metric, 3)
    lo, hi = s["ci95"]
    return f"{s['mean']:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def margin_verdict(g: dict) -> str:
    """``better``, ``worse`` or ``not distinguishable``: where one margin's interval (:func:`margins`) lies."""
    return "better" if g["better"] else ("worse" if g["ci95"][1] < 0 else "not distinguishable")


def format_margin(g: dict, metric: str) -> str:
    """One margin (:func:`margins`) as ``+improvement [+low, +high]`` at the metric's digits."""
    d = DIGITS.get(metric, 3)
    lo, hi = g["ci95"]
    return f"{g['improvement']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


#: Column titles.
TITLES = {"l1": "L1", "psnr": "PSNR dB", "ssim": "SSIM", "lpips": "LPIPS", "identity": "identity",
          "fg_l1": "fg L1", "fg_psnr": "fg PSNR dB", "fg_ssim": "fg SSIM", "fg_lpips": "fg LPIPS"}
#: Digits shown per metric.
DIGITS = {"l1": 4, "psnr": 2, "ssim": 3, "lpips": 3, "identity": 3, "fg_l1": 4, "fg_psnr": 2, "fg_ssim": 3,
          "fg_lpips": 3}


def format_report(summary: dict[str, dict[str, dict]], margin: dict[str, dict], metrics: tuple[str, ...]) -> str:
    """A table of every predictor (rows) and metric (columns, mean [95 % interval]), then the margins.

    Args:
        summary: ``{predictor: {metric: {"mean", "ci95"}}}`` (``avatar``, the baselines, ``untrained``).
        margin: the output of :func:`margins`.
        metrics: which metrics, in order.
    """
    order = ["avatar", *BASELINES, "untrained"]
    lines = []
    # Full frame and foreground in two tables: one would be too wide for a terminal.
    for group in ([m for m in metrics if not m.startswith("fg_")], [m for m in metrics if m.startswith("fg_")]):
        if not group:
            continue
        rows = [{"": LABELS.get(p, p), **{TITLES.get(m, m): format_value(summary[p].get(m), m) for m in group}}
                for p in order if p in summary]
        lines.append(format_table(rows, ["", *(TITLES.get(m, m) for m in group)]))
    lines.append("margin over the best trivial baseline (positive: the avatar is better; 95 % interval):")
    for m in metrics:
        if m in margin:
            g = margin[m]
            lines.append(f"  {TITLES.get(m, m):<10} {format_margin(g, m)} vs {LABELS[g['baseline']]}: "
                         f"{margin_verdict(g)}")
    return "\n".join(lines)
