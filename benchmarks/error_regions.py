"""Where a run's test-frame error lies: per image region, for the avatar and the trivial baselines, and what the
avatar would score with one kind of error taken away.

    .venv/bin/python benchmarks/error_regions.py RUN_OR_CHECKPOINT [--subject DIR] [--out FILE]

Regions (from the subject's matte and face mask): background (matte < 0.1), edge (0.1-0.9), foreground outside the
face, face. For each: its share of the pixels, the mean squared error and its share of the total, and the share of
LPIPS (AlexNet, spatial map). Then two counterfactuals that say what limits the score:

    real foreground + plate    the subject's real pixels where the matte says person, the background plate elsewhere:
                               the floor the plate allows
    outline restored           the avatar with the background pixels it paints as person (predicted mask >= 0.05 where
                               the matte says background) set to the real frame: the cost of a wrong head outline

Writes a JSON (default ``RUN/eval/error_regions.json``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a run folder (its best.ckpt) or a checkpoint file")
    ap.add_argument("--subject", help="the subject folder (default: the run's)")
    ap.add_argument("--out", help="JSON to write (default: RUN/eval/error_regions.json)")
    args = ap.parse_args()

    from selfie_avatar.evaluate.baselines import TrivialBaselines
    from selfie_avatar.evaluate.metrics import LPIPSMetric
    from selfie_avatar.training.checkpoint import load_avatar
    from selfie_avatar.training.data import SubjectFrames
    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.utils.atomic import write_json_atomic

    path = Path(args.checkpoint)
    ckpt = path / "checkpoints" / "best.ckpt" if path.is_dir() else path
    run = ckpt.parent.parent
    subject_dir = args.subject or json.loads((run / "config.json").read_text())["train_config"]["subject"]
    avatar, subject = load_avatar(ckpt), Subject(subject_dir)
    frames = subject.test_indices
    data = SubjectFrames(subject, frames, size=avatar.config.size, cache=False)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(frames))])
    with torch.no_grad():
        out = avatar.render(batch["render"], batch["uv"])
    real = (batch["image"] + 1) / 2
    fake = ((out["image"] + 1) / 2).clamp(0, 1)
    matte, face, pred = batch["matte"], batch["face_mask"], out["mask"]
    plate = ((avatar.plate + 1) / 2).clamp(0, 1) if avatar.plate is not None else None
    base = TrivialBaselines(subject, avatar.config.size).predict(frames)
    regions = {"background": matte < 0.1, "edge": (matte >= 0.1) & (matte <= 0.9),
               "foreground, not face": (matte > 0.9) & (face < 0.5), "face": face > 0.5}
    lpips = LPIPSMetric().net
    lpips.spatial = True

    def describe(x: torch.Tensor) -> dict:
        se = ((x - real) ** 2).mean(1, keepdim=True)
        with torch.no_grad():
            lp = lpips(x * 2 - 1, real * 2 - 1)
        rows = {}
        for name, r in regions.items():
            r = r.float()
            rows[name] = {"pixels": r.mean().item(), "mse": ((se * r).sum() / r.sum().clamp_min(1)).item(),
                          "se_share": ((se * r).sum() / se.sum()).item(),
                          "lpips_share": ((lp * r).sum() / lp.sum()).item()}
        return {"mse": se.mean().item(), "lpips": lp.mean().item(), "regions": rows}

    predictors = {"avatar": fake, **base}
    report = {"checkpoint": str(ckpt), "subject": str(subject_dir), "test_frames": len(frames),
              "predictors": {k: describe(v) for k, v in predictors.items()}}
    wrong_outline = ((matte < 0.1) & (pred >= 0.05)).float()
    counterfactuals = {"outline restored": fake * (1 - wrong_outline) + real * wrong_outline}
    if plate is not None:
        counterfactuals["real foreground + plate"] = real * matte + plate * (1 - matte)
    report["counterfactuals"] = {k: describe(v) for k, v in counterfactuals.items()}
    report["wrong_outline_fraction_of_background"] = (wrong_outline.sum() / (matte < 0.1).sum()).item()

    dest = Path(args.out) if args.out else run / "eval" / "error_regions.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest, report)
    print(f"{len(frames)} test frames of {subject_dir}; {ckpt}")
    print(f"{'':28s} {'MSE':>8s} {'LPIPS':>7s}   " + "   ".join(f"{n} (MSE, SE %, LPIPS %)" for n in regions))
    for group in ("predictors", "counterfactuals"):
        for name, d in report[group].items():
            cells = "   ".join(f"{r['mse']:.4f} {100 * r['se_share']:4.0f} {100 * r['lpips_share']:4.0f}"
                               for r in d["regions"].values())
            print(f"{name:28s} {d['mse']:8.5f} {d['lpips']:7.4f}   {cells}")
    print(f"background pixels painted as person: {100 * report['wrong_outline_fraction_of_background']:.1f} %; "
          f"written to {dest}")


if __name__ == "__main__":
    main()
