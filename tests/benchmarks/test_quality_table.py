"""benchmarks/quality_table.py: the README's quality table comes from quality.json, intervals and verdicts included."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("quality_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stat(mean, lo, hi):
    return {"mean": {"psnr": mean}, "ci95": {"psnr": [lo, hi]}}


def test_table_shows_every_row_and_marks_only_a_margin_that_excludes_zero():
    table = _module().table
    point = {"step": 1025, **_stat(25.48, 24.28, 26.37),
             "margin": {"psnr": {"baseline": "mean_frame", "improvement": 1.25, "ci95": [0.80, 1.77], "better": True}}}
    report = {"title": "cpu preset, clip at 128 px", "minutes": 10.0, "steps_per_second": 1.7, "test_frames": [1, 2],
              "points": [point], "baselines": {"mean_frame": _stat(24.23, 23.08, 25.03)}}
    out = table(report)
    assert "1025 steps" in out and "2 test frames" in out
    assert "| avatar | 25.48 [24.28, 26.37] |" in out and "| mean training frame | 24.23 [23.08, 25.03] |" in out
    assert "**+1.25 [+0.80, +1.77]** vs mean" in out
    point["margin"]["psnr"].update(ci95=[-0.10, 1.77], better=False)
    assert "| +1.25 [-0.10, +1.77] vs mean |" in table(report)


def _run(seed, step, psnr, gain, frames=(1, 2)):
    point = {"step": step, **_stat(psnr, psnr - 1, psnr + 1),
             "margin": {"psnr": {"baseline": "mean_frame", "improvement": gain, "ci95": [gain - 1, gain + 1],
                                 "better": True}}}
    return {"title": "cpu preset, clip at 128 px", "minutes": 10.0, "test_frames": list(frames), "seed": seed,
            "points": [point], "baselines": {"mean_frame": _stat(psnr - gain, 0, 1)}}


def test_runs_table_gives_a_row_per_run_and_their_mean_and_range():
    import pytest

    runs_table = _module().runs_table
    out = runs_table([_run(0, 794, 23.84, 1.96), _run(1, 751, 23.36, 1.48)])
    assert "2 runs of 10 min" in out
    assert "| 1 | 0 | 794 | 23.84 (+1.96) |" in out and "| 2 | 1 | 751 | 23.36 (+1.48) |" in out
    assert "| mean | | 772 | 23.60 (+1.72), range 23.36-23.84 |" in out
    with pytest.raises(ValueError, match="different test frames"):
        runs_table([_run(0, 1, 20.0, 1.0), _run(1, 1, 20.0, 1.0, frames=(3, 4))])
    with pytest.raises(ValueError, match="at least two"):
        runs_table([_run(0, 1, 20.0, 1.0)])
