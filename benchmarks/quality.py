"""Quality against minutes: how long must I train? Test-frame metrics of one run at regular wall-clock intervals,
beside what the trivial baselines score on the same frames.

    .venv/bin/python benchmarks/quality.py SUBJECT --preset cpu --minutes 10 [--every 1] [--out DIR]
    .venv/bin/python benchmarks/quality.py --video ../shared/data/selfie_d6.mp4 --size 128 --preset cpu --minutes 10

Trains ``SUBJECT`` (or prepares ``--video`` first) with ``selfie-avatar train``'s own code, saving a snapshot of the
weights every ``--every`` minutes of training (saving is not counted as training time). Each snapshot is then scored
on the test frames, which chose nothing (``evaluate/test_set.py``: L1, PSNR, SSIM, LPIPS, identity, with 95 %
intervals); the baselines (nearest-codes, mean and last training frame) are scored once. Writes ``quality.json``
(every point, the baselines, the machine, the steps per second) and ``quality.png`` (one panel per metric, the
baselines as horizontal lines) into ``--out``, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_name  # noqa: E402  benchmarks/machine.py

PANELS = ("psnr", "ssim", "lpips", "identity")


class Snapshots:
    """A Lightning callback that saves the weights every ``every_s`` seconds of training (its own time excluded)."""

    def __init__(self, folder: Path, every_s: float) -> None:
        from lightning.pytorch.callbacks import Callback

        self.folder, self.every_s = folder, every_s
        self.points: list[dict] = []
        outer = self

        class _CB(Callback):
            def on_train_start(self, trainer, module) -> None:
                outer.t0, outer.paused = time.perf_counter(), 0.0
                outer._save(trainer, module, 0.0)

            def on_train_batch_end(self, trainer, module, *args) -> None:
                elapsed = time.perf_counter() - outer.t0 - outer.paused
                if elapsed >= outer.every_s * len(outer.points):
                    t = time.perf_counter()
                    outer._save(trainer, module, elapsed)
                    outer.paused += time.perf_counter() - t

            def on_train_end(self, trainer, module) -> None:
                outer._save(trainer, module, time.perf_counter() - outer.t0 - outer.paused)

        self.callback = _CB()

    def _save(self, trainer, module, elapsed: float) -> None:
        step = int(module.step)
        if self.points and self.points[-1]["step"] == step:
            return
        path = self.folder / f"step_{step:07d}.ckpt"
        trainer.save_checkpoint(path, weights_only=True)
        self.points.append({"minutes": elapsed / 60, "step": step, "checkpoint": str(path)})


def _clip_name(subject: Path) -> str:
    """The source video's name (a subject folder is often just called ``subject``)."""
    try:
        return Path(json.loads((subject / "meta.json").read_text())["source"]["path"]).stem
    except (OSError, KeyError, TypeError, ValueError):
        return subject.name


def _prepare(video: str, size: int, out: Path) -> Path:
    from selfie_avatar.config import PrepareConfig
    from selfie_avatar.prepare.pipeline import prepare

    subject = out / "subject"
    if not (subject / "meta.json").is_file():
        prepare(PrepareConfig(video=video, out=str(subject), size=size))
    return subject


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfie_avatar.evaluate.report import LABELS, TITLES

    panels = [m for m in PANELS if m in report["metrics"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    minutes = [p["minutes"] for p in report["points"]]
    for ax, m in zip(axes[0], panels):
        mean = [p["mean"][m] for p in report["points"]]
        lo = [p["ci95"][m][0] for p in report["points"]]
        hi = [p["ci95"][m][1] for p in report["points"]]
        ax.fill_between(minutes, lo, hi, alpha=0.25, color="C0")
        ax.plot(minutes, mean, "o-", color="C0", label="avatar (95 % interval)")
        for k, (name, b) in enumerate(report["baselines"].items()):
            ax.axhline(b["mean"][m], color=f"C{k + 1}", ls="--", lw=1.2, label=LABELS[name])
        ax.set_xlabel("training minutes")
        ax.set_title(TITLES.get(m, m) + (" (lower is better)" if m in ("lpips", "l1") else ""))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(report["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subject", nargs="?", help="a prepared subject folder (or give --video)")
    ap.add_argument("--video", help="prepare this video first (into OUT/subject)")
    ap.add_argument("--size", type=int, default=128, help="prepare size with --video")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--minutes", type=float, default=10.0, help="training time")
    ap.add_argument("--every", type=float, default=1.0, help="minutes between snapshots")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="output folder (default: outputs/benchmarks/quality_<preset>_<name>)")
    ap.add_argument("--loss", action="append", default=[], metavar="NAME=WEIGHT",
                    help="a loss weight, as for `train --loss` (repeatable)")
    ap.add_argument("--option", action="append", default=[], metavar="FIELD=VALUE",
                    help="a further TrainConfig field, e.g. --option background_plate=false (repeatable)")
    args = ap.parse_args()
    if not args.subject and not args.video:
        ap.error("give a subject folder or --video")

    from selfie_avatar.config import TrainConfig
    from selfie_avatar.evaluate.report import format_report, margins, summarise_scores
    from selfie_avatar.evaluate.test_set import TestSet
    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.training.checkpoint import load_avatar
    from selfie_avatar.training.run import train
    from selfie_avatar.utils.atomic import write_json_atomic
    from selfie_avatar.utils.device import resolve_device

    name = Path(args.video).stem if args.video else _clip_name(Path(args.subject))
    out = Path(args.out or REPO / "outputs" / "benchmarks" / f"quality_{args.preset}_{name}")
    out.mkdir(parents=True, exist_ok=True)
    subject_dir = _prepare(args.video, args.size, out) if args.video else Path(args.subject)
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
        for cast in (int, float):
            if isinstance(options[key], str):
                try:
                    options[key] = cast(value)
                except ValueError:
                    pass
    snaps = Snapshots(out / "snapshots", args.every * 60)
    run = out / "run"
    t0 = time.perf_counter()
    result = train(TrainConfig(subject=str(subject_dir), out=str(run), preset=args.preset, max_minutes=args.minutes,
                               seed=args.seed, device=args.device, overwrite=True, run_name=f"quality-{name}",
                               loss=args.loss, **options), callbacks=[snaps.callback])
    train_wall = time.perf_counter() - t0

    device = resolve_device(args.device)
    subject = Subject(subject_dir)
    first = load_avatar(snaps.points[0]["checkpoint"], device)
    tests = TestSet(subject, first.config.size, device)
    baselines = {b: summarise_scores(v) for b, v in tests.baseline_scores.items()}
    points = []
    for p in snaps.points:
        avatar = load_avatar(p["checkpoint"], device)
        scores, _ = tests.score(lambda r, uv: avatar.render(r, uv)["image"], desc=f"step {p['step']}")
        s = summarise_scores(scores)
        points.append({**p, "mean": {m: v["mean"] for m, v in s.items()}, "ci95": {m: v["ci95"] for m, v in s.items()},
                       "margin": margins(scores, tests.baseline_scores)})
        final = (s, scores)
    report = {
        "title": f"{args.preset} preset, {name} at {first.config.size} px, {cpu_name()}",
        "subject": str(subject_dir.resolve()), "preset": args.preset, "minutes": args.minutes, "options": options,
        "loss": args.loss, "seed": args.seed,
        "test_frames": tests.frames, "metrics": list(tests.scorer.metrics), "notes": tests.scorer.notes,
        "steps": result.steps, "train_seconds": result.seconds, "train_wall_seconds": train_wall,
        "steps_per_second": result.steps / max(result.seconds, 1e-9), "vgg_source": result.vgg_source,
        "baselines": {b: {"mean": {m: v["mean"] for m, v in s.items()}, "ci95": {m: v["ci95"] for m, v in s.items()}}
                      for b, s in baselines.items()},
        "points": points,
        "machine": {"cpu": cpu_name(), "platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }
    write_json_atomic(out / "quality.json", report)
    plot(report, out / "quality.png")
    print(format_report({"avatar": final[0], **baselines}, margins(final[1], tests.baseline_scores),
                        tuple(report["metrics"])))
    print(f"{result.steps} steps in {result.seconds / 60:.1f} min ({report['steps_per_second']:.3f} steps/s); "
          f"written to {out}/quality.json and quality.png")
    print(json.dumps([{k: p[k] for k in ("minutes", "step")} | {m: round(p["mean"][m], 4) for m in p["mean"]}
                      for p in points], indent=1))


if __name__ == "__main__":
    main()
