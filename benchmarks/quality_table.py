"""The README's quality table, read from ``benchmarks/quality.py``'s JSON (nothing typed by hand).

    .venv/bin/python benchmarks/quality_table.py outputs/benchmarks/quality_*/quality.json
    .venv/bin/python benchmarks/quality_table.py --runs RUN_A/quality.json RUN_B/quality.json ...

One Markdown table per run: the avatar's last snapshot and every trivial baseline on the test frames (mean and
95 % interval), then the avatar's margin over the best baseline per metric (positive is better, in the metric's
own units; bold where the interval excludes zero).

``--runs``: several runs of one setting on one subject (other seeds, or reruns): one row per run (its seed, steps,
last-snapshot values and margin over the best baseline per metric), then their mean and range. A single run's
interval is over test frames only; this table shows what a rerun changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfie_avatar.evaluate.report import (  # noqa: E402
    DIGITS, LABELS, TITLES, format_margin, format_value, margin_verdict,
)

COLUMNS = ("psnr", "ssim", "lpips", "identity", "fg_psnr", "fg_lpips")


def table(report: dict) -> str:
    """One run's table, as Markdown."""
    last = report["points"][-1]
    cols = [m for m in COLUMNS if m in last["mean"]]
    head = (f"**{report['title']}**: {report['minutes']:g} min, {last['step']} steps "
            f"({report['steps_per_second']:.2f} steps/s), {len(report['test_frames'])} test frames")
    lines = [head, "", "| | " + " | ".join(TITLES[m] for m in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = {"avatar": last, **report["baselines"]}
    for name, row in rows.items():
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(
            format_value({"mean": row["mean"][m], "ci95": row["ci95"][m]}, m) for m in cols) + " |")
    cells = []
    for m in cols:
        g = last["margin"][m]
        text = format_margin(g, m)
        bold = text if margin_verdict(g) == "not distinguishable" else f"**{text}**"
        cells.append(f"{bold} vs {g['baseline'].split('_')[0]}")
    lines.append("| avatar − best baseline | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seed(report: dict, path: Path | None) -> str:
    if "seed" in report:
        return str(report["seed"])
    config = path.parent / "run" / "config.json" if path is not None else None  # reports from before "seed"
    if config is not None and config.is_file():
        return str(json.loads(config.read_text())["train_config"]["seed"])
    return "?"


def runs_table(reports: list[dict], paths: list[Path | None] | None = None) -> str:
    """Several runs of one setting on one subject: a row per run, then the mean and range, as Markdown.

    Raises:
        ValueError: fewer than two runs, or runs scored on different test frames.
    """
    if len(reports) < 2:
        raise ValueError("--runs compares at least two runs")
    if any(r["test_frames"] != reports[0]["test_frames"] for r in reports):
        raise ValueError("these runs were scored on different test frames; compare runs of one subject")
    paths = paths or [None] * len(reports)
    lasts = [r["points"][-1] for r in reports]
    cols = [m for m in COLUMNS if all(m in last["mean"] for last in lasts)]
    d = {m: DIGITS.get(m, 3) for m in cols}
    lines = [f"**{reports[0]['title']}**: {len(reports)} runs of {reports[0]['minutes']:g} min, "
             f"{len(reports[0]['test_frames'])} test frames; each cell: the last snapshot (its margin over the best "
             f"baseline, positive = better)", "",
             "| run | seed | steps | " + " | ".join(TITLES[m] for m in cols) + " |", "|---" * (len(cols) + 3) + "|"]
    for k, (rep, last, path) in enumerate(zip(reports, lasts, paths)):
        lines.append(f"| {k + 1} | {_seed(rep, path)} | {last['step']} | " + " | ".join(
            f"{last['mean'][m]:.{d[m]}f} ({last['margin'][m]['improvement']:+.{d[m]}f})" for m in cols) + " |")
    cells = []
    for m in cols:
        vals = [last["mean"][m] for last in lasts]
        gains = [last["margin"][m]["improvement"] for last in lasts]
        cells.append(f"{sum(vals) / len(vals):.{d[m]}f} ({sum(gains) / len(gains):+.{d[m]}f}), "
                     f"range {min(vals):.{d[m]}f}-{max(vals):.{d[m]}f}")
    steps = [last["step"] for last in lasts]
    lines.append(f"| mean | | {sum(steps) / len(steps):.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if not args or args == ["--runs"]:
        raise SystemExit(__doc__)
    if args[0] == "--runs":
        paths = [Path(p) for p in args[1:]]
        print(runs_table([json.loads(p.read_text()) for p in paths], paths))
        return
    print("\n\n".join(table(json.loads(Path(p).read_text())) for p in args))


if __name__ == "__main__":
    main()
