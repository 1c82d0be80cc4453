"""Confidence intervals for means over video frames and over training seeds.

Frames of one video are not independent: neighbouring frames look alike, so an ordinary bootstrap over frames
would give intervals that are too narrow. :func:`frame_interval` therefore resamples *blocks* of consecutive frames
(non-overlapping blocks of about the square root of the frame count, ten for a hundred frames): the block means are
nearly independent, and ``scipy.stats.bootstrap`` resamples them (percentile method). What stays hand-written here is
only the cutting into blocks. Across seeds (:func:`seed_interval`), runs are independent: a Student-t interval over
the per-seed values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["LEVEL", "block_means", "frame_interval", "seed_interval", "summarise"]

#: Confidence level of every interval the toolkit reports.
LEVEL = 0.95
RESAMPLES = 2000


def block_means(values: Sequence[float], block: int | None = None) -> np.ndarray:
    """Means of consecutive, non-overlapping blocks of ``values`` (the remainder joins the last block).

    Args:
        values: per-frame values in frame order.
        block: frames per block (default: ``ceil(sqrt(n))``).

    Returns:
        :math:`(\\lceil n / block \\rceil,)` block means (one per value when ``block`` is 1).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {v.shape}")
    block = block or max(1, math.ceil(math.sqrt(v.size)))
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    count = max(1, v.size // block)
    edges = [k * block for k in range(count)] + [v.size]
    return np.array([v[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


def frame_interval(values: Sequence[float], block: int | None = None, seed: int = 0,
                   level: float = LEVEL) -> tuple[float, float]:
    """95 % interval of the mean of per-frame values by a block bootstrap (see the module docstring).

    Args:
        values: per-frame values in frame order (NaNs are dropped first).
        block: frames per block (default ``ceil(sqrt(n))``).
        seed: seed of the resampling, so a report is reproducible.
        level: confidence level.

    Returns:
        ``(low, high)``; both equal the mean when there are fewer than two blocks (no spread to resample), and NaN
        when no finite value is left.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    means = block_means(v, block)
    if means.size < 2 or np.ptp(means) == 0:
        m = float(v.mean())
        return (m, m)
    res = bootstrap((means,), np.mean, confidence_level=level, n_resamples=RESAMPLES, method="percentile",
                    random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def seed_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of independent values (one per training seed).

    Returns:
        ``(low, high)``; NaN for fewer than two values (one seed says nothing about seed noise).
    """
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (math.nan, math.nan)
    half = t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return (float(v.mean() - half), float(v.mean() + half))


def summarise(values: Sequence[float], block: int | None = None, seed: int = 0) -> dict[str, float | list[float]]:
    """``{"mean": m, "ci95": [low, high]}`` of per-frame values (JSON-ready)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    low, high = frame_interval(finite, block, seed)
    return {"mean": float(finite.mean()) if finite.size else math.nan, "ci95": [low, high]}
