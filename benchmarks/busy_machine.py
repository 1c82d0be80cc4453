"""Speed on a quiet machine and on one where another process keeps a core busy, before and after a change.

    .venv/bin/python benchmarks/busy_machine.py [--against HEAD] [--rounds 2] [--steps 30]

For each side (this working tree, and ``--against`` checked out into a git worktree) and each load (quiet; one
``while True: pass`` process competing), over ``--rounds`` rounds with the sides' order swapped every round, it runs in a fresh process
with that side's package first on ``sys.path``:

- ``train``: ``selfie-avatar train``'s own code (the thread adaptation the command line does first, where that
  side has it) with the ``cpu`` preset on ``selfie_d6`` at 128 px for ``--steps`` steps; steps per second over the
  steps after the fifth.
- ``prepare``: 60 frames of ``selfie_d6`` at 128 px; frames per second of the whole of prepare.
- ``sample``: the built-in sample clip, 4 s at 512 px; seconds.

Writes ``outputs/benchmarks/busy_machine.json``. The machine is shared: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_speed import worktree  # benchmarks/train_speed.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "benchmarks"
SHARED = Path(os.environ.get("SELFIE_AVATAR_SHARED_DATA", REPO.parent / "shared" / "data"))

CHILD = r'''
import json, statistics, sys, time, tempfile
from pathlib import Path
task, subject, steps, video = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:  # what `selfie-avatar` does before every command, on the sides that have it
    from selfie_avatar.utils.threads import adapt_threads
    adapt_threads()
except ImportError:
    pass
import torch
out = {"threads_at_start": torch.get_num_threads()}
tmp = Path(tempfile.mkdtemp())
if task == "train":
    from lightning.pytorch.callbacks import Callback
    from selfie_avatar.config import TrainConfig
    from selfie_avatar.training.run import train
    stamps = []
    class Stamp(Callback):
        def on_train_batch_end(self, *a):
            stamps.append(time.perf_counter())
    train(TrainConfig(subject=subject, out=str(tmp / "run"), preset="cpu", max_steps=steps, progress=False,
                      device="cpu"), callbacks=[Stamp()])
    d = [b - a for a, b in zip(stamps[4:], stamps[5:])]
    out.update(steps_per_second=1 / statistics.mean(d), threads_at_end=torch.get_num_threads())
elif task == "prepare":
    from selfie_avatar.config import PrepareConfig
    from selfie_avatar.prepare.pipeline import prepare
    t = time.perf_counter()
    prepare(PrepareConfig(video=video, out=str(tmp / "s"), size=128, max_frames=60, device="cpu",
                          write_video=False), progress=False)
    out.update(frames_per_second=60 / (time.perf_counter() - t))
else:
    from selfie_avatar.config import SampleConfig
    from selfie_avatar.sample.clip import build_sample_clip
    t = time.perf_counter()
    build_sample_clip(SampleConfig(out=str(tmp / "sample.mp4"), seconds=4.0))
    out.update(seconds=time.perf_counter() - t)
print("RESULT " + json.dumps(out))
'''

METRIC = {"train": "steps_per_second", "prepare": "frames_per_second", "sample": "seconds"}


def subject_128() -> Path:
    path = OUT / "busy_machine_subject"
    if not (path / "meta.json").is_file():
        from selfie_avatar.config import PrepareConfig
        from selfie_avatar.prepare.pipeline import prepare

        prepare(PrepareConfig(video=str(SHARED / "selfie_d6.mp4"), out=str(path), size=128, device="cpu",
                              write_video=False, overwrite=True), progress=False)
    return path


def run_child(tree: Path, task: str, subject: Path, steps: int, busy: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "disabled"}
    for k in ("OMP_NUM_THREADS", "SELFIE_AVATAR_THREADS"):
        env.pop(k, None)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if hog:
            time.sleep(1.0)  # let it take its core
        with tempfile.TemporaryDirectory() as cwd:
            proc = subprocess.run([sys.executable, "-c", CHILD, task, str(subject), str(steps),
                                   str(SHARED / "selfie_d6.mp4")], cwd=cwd, env=env, capture_output=True, text=True)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{task} on {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="HEAD", help="the commit to compare with (default: the last commit)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tasks", nargs="+", default=["train", "prepare", "sample"], choices=list(METRIC))
    ap.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    ap.add_argument("--out", default=str(OUT / "busy_machine.json"))
    args = ap.parse_args()
    sides = {"after": REPO, "before": worktree(args.against)}
    subject = subject_128()
    runs: dict = {t: {s: {ld: [] for ld in args.loads} for s in sides} for t in args.tasks}
    for k in range(args.rounds):
        for task in args.tasks:
            # Alternate which side goes first: a run right after another one can be slower or faster.
            for side, tree in (list(sides.items()) if k % 2 == 0 else list(sides.items())[::-1]):
                for load in args.loads:
                    r = run_child(tree, task, subject, args.steps, load == "busy")
                    runs[task][side][load].append(r)
                    print(f"round {k + 1}/{args.rounds} {task} {side} {load}: {r}", flush=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"after": f"working tree on {commit}", "before": args.against, "rounds": args.rounds, "tasks": {}}
    for task in args.tasks:
        m = METRIC[task]
        med = {s: {ld: statistics.median(r[m] for r in runs[task][s][ld]) for ld in args.loads} for s in sides}
        entry = {"metric": m, "median": med, "runs": runs[task]}
        if len(args.loads) == 2:
            higher_better = m != "seconds"
            entry["busy_slowdown"] = {s: (med[s]["quiet"] / med[s]["busy"]) if higher_better
                                      else (med[s]["busy"] / med[s]["quiet"]) for s in sides}
        report["tasks"][task] = entry
        print(f"{task} ({m}): " + "; ".join(f"{s} " + " ".join(f"{ld} {med[s][ld]:.3f}" for ld in args.loads)
                                            + (f" (x{entry['busy_slowdown'][s]:.2f} slower when busy)"
                                               if "busy_slowdown" in entry else "") for s in sides))
    from selfie_avatar.utils.atomic import write_json_atomic

    write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
