"""Runs side by side: metric bars (LPIPS shown as unavailable with its reason) and crops in columns."""

import numpy as np
import pytest

from selfie_avatar.viz.compare import metric_comparison_figure, sample_crops_figure

ROWS = [
    {"name": "full", "l1": 0.1, "psnr": 20.0, "ssim": 0.7, "lpips": None, "lpips_note": "lpips is not installed"},
    {"name": "no_id_mrf", "l1": 0.2, "psnr": 18.0, "ssim": 0.6, "lpips": None, "lpips_note": "lpips is not installed"},
]


def test_metric_comparison_figure_draws_bars_and_explains_missing_lpips():
    fig = metric_comparison_figure(ROWS)
    l1, psnr, _, lpips = fig.axes
    assert len(l1.patches) == 2 and [t.get_text() for t in l1.get_xticklabels()] == ["full", "no_id_mrf"]
    assert "lower is better" in l1.get_title() and "higher is better" in psnr.get_title()
    assert psnr.get_ylim()[0] > 0  # zoomed on the differences
    assert not lpips.patches and "lpips is not installed" in " ".join(t.get_text() for t in lpips.texts)
    with pytest.raises(ValueError, match="no runs"):
        metric_comparison_figure([])


def test_sample_crops_figure_puts_real_first_then_each_run():
    crop = np.zeros((8, 8, 3), np.uint8)
    s = {"real": [crop] * 3, "generated": [crop] * 3, "error": [crop] * 3}
    fig = sample_crops_figure({"a": s, "b": {**s, "generated": [crop] * 2}})
    assert len(fig.axes) == 2 * 3  # the shortest run decides the rows
    assert [ax.get_title() for ax in fig.axes[:3]] == ["real", "a", "b"]
    with pytest.raises(ValueError, match="no runs"):
        sample_crops_figure({})
