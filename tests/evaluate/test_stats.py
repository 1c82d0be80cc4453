import math

import numpy as np
import pytest

from selfie_avatar.evaluate.report import margins
from selfie_avatar.evaluate.stats import block_means, frame_interval, seed_interval, summarise


def test_block_means_cut_in_order_with_the_remainder_in_the_last_block():
    assert block_means([1, 1, 3, 3, 5, 5, 5], block=2).tolist() == [1, 3, 5]
    assert len(block_means(np.arange(100.0))) == 10  # ceil(sqrt(100)) frames per block


def test_frame_interval_covers_the_mean_and_widens_for_correlated_frames():
    rng = np.random.default_rng(0)
    iid = rng.normal(0, 1, 400)
    lo, hi = frame_interval(iid)
    assert lo < iid.mean() < hi and hi - lo < 0.5
    # A slow drift: neighbouring frames alike. Per-frame resampling would call this precise; blocks must not.
    drift = np.repeat(rng.normal(0, 1, 20), 20)
    lo_b, hi_b = frame_interval(drift)
    lo_1, hi_1 = frame_interval(drift, block=1)
    assert (hi_b - lo_b) > 2 * (hi_1 - lo_1)


def test_constant_values_have_a_zero_width_interval_and_nans_are_dropped():
    assert frame_interval([2.0] * 9) == (2.0, 2.0)
    s = summarise([1.0, float("nan"), 3.0, 1.0, 3.0])
    assert s["mean"] == 2.0 and s["ci95"][0] <= 2.0 <= s["ci95"][1]


def test_seed_interval_is_a_t_interval():
    lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert hi - 2.0 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert all(math.isnan(v) for v in seed_interval([1.0]))


def test_margin_picks_the_best_baseline_per_metric_and_signs_the_improvement():
    avatar = {"psnr": [30.0] * 16, "lpips": [0.10] * 16}
    base = {"mean_frame": {"psnr": [25.0] * 16, "lpips": [0.30] * 16},
            "last_frame": {"psnr": [27.0] * 16, "lpips": [0.05] * 16}}
    m = margins(avatar, base)
    assert m["psnr"]["baseline"] == "last_frame" and m["psnr"]["improvement"] == pytest.approx(3.0)
    assert m["psnr"]["better"]
    assert m["lpips"]["baseline"] == "last_frame" and m["lpips"]["improvement"] == pytest.approx(-0.05)
    assert not m["lpips"]["better"]
