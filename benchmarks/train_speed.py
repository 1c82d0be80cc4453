"""Training steps per second of this checkout against another commit, measured side by side on one machine.

    .venv/bin/python benchmarks/train_speed.py [--against 36e04c4] [--presets cpu lite] [--rounds 3] [--steps 8]

Checks the other commit out into a git worktree (``outputs/benchmarks/worktree_<commit>``), then runs
``benchmarks/train_step.py`` of each checkout in turn, alternating ``--rounds`` times (so a machine that gets busier or
quieter affects both alike), each in its own process with the checkout first on ``sys.path`` and this environment's
packages. Reports per preset the median steps per second of each side and their ratio, and writes
``outputs/benchmarks/train_speed.json``. Shared machines are noisy: read the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "benchmarks"


def worktree(commit: str) -> Path:
    path = OUT / f"worktree_{commit[:12]}"
    if not (path / "selfie_avatar").is_dir():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path), commit], check=True,
                       capture_output=True)
    return path


def run_side(tree: Path, presets: list[str], steps: int, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "disabled"}
    subprocess.run([sys.executable, str(tree / "benchmarks" / "train_step.py"), "--presets", *presets,
                    "--steps", str(steps), "--out", str(out)], check=True, cwd=tree, env=env,
                   stdout=subprocess.DEVNULL)
    return {r["preset"]: r for r in json.loads(out.read_text())["results"] if r["device"] == "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="36e04c4", help="the other commit (default: main before issue 11)")
    ap.add_argument("--presets", nargs="+", default=["cpu", "lite"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    sides = {"this": REPO, "other": worktree(args.against)}
    runs: dict[str, dict[str, list[float]]] = {s: {p: [] for p in args.presets} for s in sides}
    for k in range(args.rounds):
        for side, tree in sides.items():
            res = run_side(tree, args.presets, args.steps, OUT / f"train_step_{side}.json")
            for p in args.presets:
                runs[side][p].append(res[p]["steps_per_second"])
            print(f"round {k + 1}/{args.rounds} {side}: " + ", ".join(
                f"{p} {res[p]['steps_per_second']:.3f} steps/s" for p in args.presets), flush=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"this": commit, "other": args.against, "rounds": args.rounds, "steps_timed": args.steps, "presets": {}}
    for p in args.presets:
        this, other = statistics.median(runs["this"][p]), statistics.median(runs["other"][p])
        report["presets"][p] = {"this_steps_per_second": this, "other_steps_per_second": other,
                                "speedup": this / other, "this_runs": runs["this"][p], "other_runs": runs["other"][p]}
        print(f"{p}: {this:.3f} vs {other:.3f} steps/s -> {this / other:.2f}x")
    from selfie_avatar.utils.atomic import write_json_atomic

    write_json_atomic(OUT / "train_speed.json", report)


if __name__ == "__main__":
    main()
