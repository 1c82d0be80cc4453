"""The README's quality table, read from ``benchmarks/quality.py``'s JSON (nothing typed by hand).

    .venv/bin/python benchmarks/quality_table.py outputs/benchmarks/quality_*/quality.json

One Markdown table per run: the avatar's last snapshot and every trivial baseline on the test frames (mean and
95 % interval), then the avatar's margin over the best baseline per metric (positive is better, in the metric's
own units; bold where the interval excludes zero).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfie_avatar.evaluate.report import LABELS, TITLES, format_margin, format_value, margin_verdict  # noqa: E402

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


def main() -> None:
    paths = sys.argv[1:]
    if not paths:
        raise SystemExit(__doc__)
    print("\n\n".join(table(json.loads(Path(p).read_text())) for p in paths))


if __name__ == "__main__":
    main()
