"""Training steps per second of this checkout against another commit, measured side by side on one machine.

    .venv/bin/python benchmarks/train_speed.py [--against 36e04c4] [--presets cpu lite] [--rounds 3] [--steps 8]

Checks the other commit out into a git worktree (``outputs/benchmarks/worktree_<commit>``), then runs
``benchmarks/train_step.py`` of each checkout in turn, alternating ``--rounds`` times (so a machine that gets busier or
quieter affects both alike), each in its own process with the checkout first on ``sys.path`` and this environment's
packages. This checkout runs twice: its presets as they are, and with every loss on (the work the other commit's
presets did, since the cpu and lite presets now leave the adversarial term out). Reports per preset the median steps
per second of each side and the ratios, and writes ``outputs/benchmarks/train_speed.json``. Shared machines are
noisy: read the ratios, not the absolute figures.
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
    """A git worktree of ``commit`` (a sha, or a name such as ``HEAD``, resolved first so that the folder names the
    commit it holds) under ``outputs/benchmarks``; reused when it is already there."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True,
                         check=True).stdout.strip()
    path = OUT / f"worktree_{sha[:12]}"
    if not (path / "selfie_avatar").is_dir():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path), sha], check=True,
                       capture_output=True)
    return path


def run_side(tree: Path, presets: list[str], steps: int, out: Path, all_losses: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "disabled"}
    subprocess.run([sys.executable, str(tree / "benchmarks" / "train_step.py"), "--presets", *presets,
                    "--steps", str(steps), "--out", str(out), *(["--all-losses"] if all_losses else [])],
                   check=True, cwd=tree, env=env, stdout=subprocess.DEVNULL)
    return {r["preset"]: r for r in json.loads(out.read_text())["results"] if r["device"] == "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="36e04c4", help="the other commit (default: main before issue 11)")
    ap.add_argument("--presets", nargs="+", default=["cpu", "lite"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    # "this": the presets as they are (the cpu and lite presets train without the adversarial term);
    # "this_all_losses": every loss on, the same work as the other commit's presets did.
    sides = {"this": (REPO, False), "this_all_losses": (REPO, True), "other": (worktree(args.against), False)}
    runs: dict[str, dict[str, list[float]]] = {s: {p: [] for p in args.presets} for s in sides}
    for k in range(args.rounds):
        for side, (tree, all_losses) in sides.items():
            res = run_side(tree, args.presets, args.steps, OUT / f"train_step_{side}.json", all_losses)
            for p in args.presets:
                runs[side][p].append(res[p]["steps_per_second"])
            print(f"round {k + 1}/{args.rounds} {side}: " + ", ".join(
                f"{p} {res[p]['steps_per_second']:.3f} steps/s" for p in args.presets), flush=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"this": commit, "other": args.against, "rounds": args.rounds, "steps_timed": args.steps, "presets": {}}
    for p in args.presets:
        med = {side: statistics.median(runs[side][p]) for side in sides}
        report["presets"][p] = {**{f"{side}_steps_per_second": v for side, v in med.items()},
                                "speedup": med["this"] / med["other"],
                                "speedup_all_losses": med["this_all_losses"] / med["other"],
                                **{f"{side}_runs": runs[side][p] for side in sides}}
        print(f"{p}: {med['this']:.3f} (all losses {med['this_all_losses']:.3f}) vs {med['other']:.3f} steps/s -> "
              f"{med['this'] / med['other']:.2f}x ({med['this_all_losses'] / med['other']:.2f}x with every loss on)")
    from selfie_avatar.utils.atomic import write_json_atomic

    write_json_atomic(OUT / "train_speed.json", report)


if __name__ == "__main__":
    main()
