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


def _bars(ax):
    """(low, high) of every error bar on an axis, left to right."""
    return [y for c in ax.containers for seg in c.lines[2][0].get_segments() for y in seg[:, 1]]


def test_ablation_figure_shows_seed_error_bars_and_the_baseline_line(tmp_path):
    from selfie_avatar.evaluate.ablation_table import ablation_table
    from selfie_avatar.viz.compare import ablation_figure
    from tests.evaluate.test_ablation import fake_grid

    full = {"psnr": [20.0, 21.0, 22.0], "l1": [0.05, 0.06, 0.04]}
    worse = {"psnr": [19.5, 20.52, 21.49], "l1": [0.05, 0.061, 0.04]}
    table = ablation_table(fake_grid(tmp_path, {"full": full, "no_id_mrf": worse}))
    fig = ablation_figure(table, metrics=("psnr", "l1", "lpips"))
    psnr, l1, lpips = fig.axes
    assert "higher is better" in psnr.get_title() and "lower is better" in l1.get_title()
    assert _bars(psnr) == pytest.approx([20.0, 22.0, 20.503 - 0.995, 20.503 + 0.995], abs=1e-3)  # ± 1 std
    assert "std over 3 seeds" in psnr.get_xlabel()
    (line,) = [ln for ln in psnr.lines if "baseline" in str(ln.get_label())]
    assert list(line.get_ydata()) == [17.5, 17.5] and "mean_frame" in line.get_label()
    assert [t.get_text() for t in psnr.get_xticklabels()] == ["full", "no_id_mrf *"]  # beyond seed noise
    assert [t.get_text() for t in l1.get_xticklabels()] == ["full", "no_id_mrf"]  # within it
    assert "no trunk here" in " ".join(t.get_text() for t in lpips.texts)
    with pytest.raises(ValueError, match="no configurations"):
        ablation_figure({"configs": {}, "metrics": []})


def test_ablation_figure_with_one_seed_shows_the_frame_interval(tmp_path):
    from selfie_avatar.evaluate.ablation_table import ablation_table
    from selfie_avatar.viz.compare import ablation_figure
    from tests.evaluate.test_ablation import FRAMES, fake_run

    rng = np.random.default_rng(1)
    per_frame = {n: 20 - k + rng.normal(0, 1, len(FRAMES)) for k, n in enumerate(("full", "no_cosine"))}
    table = ablation_table({n: {0: fake_run(tmp_path, n, 0, {"psnr": float(v.mean())}, {"psnr": v.tolist()})}
                            for n, v in per_frame.items()})
    (ax,) = ablation_figure(table).axes
    ci = [y for n in per_frame for y in table["configs"][n]["metrics"]["psnr"]["ci95"]]
    assert ci[1] - ci[0] > 0.1 and _bars(ax) == pytest.approx(ci)
    assert "over test frames (one seed)" in ax.get_xlabel()
