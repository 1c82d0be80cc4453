"""Frames per second of each prepare stage and of the whole of prepare, written to JSON.

    .venv/bin/python benchmarks/prepare.py [--video PATH] [--size 256] [--max-frames 300] [--out FILE]

Default video: ../shared/data/selfie_d6.mp4 when present, else a freshly built sample clip. Target (issue 2): the
whole of prepare at 30 frames/s or more at 256 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from selfie_avatar.config import PrepareConfig, SampleConfig
from selfie_avatar.prepare.pipeline import prepare
from selfie_avatar.sample.clip import build_sample_clip
from selfie_avatar.utils.atomic import write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "prepare.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            shared = REPO.parent / "shared" / "data" / "selfie_d6.mp4"
            if shared.is_file():
                video = str(shared)
            else:
                video = str(Path(tmp) / "sample.mp4")
                build_sample_clip(SampleConfig(out=video, seconds=args.max_frames / 25, fps=25))
        res = prepare(PrepareConfig(video=video, out=str(Path(tmp) / "subject"), size=args.size,
                                    max_frames=args.max_frames, device=args.device), progress=False)
    n = res.num_frames
    stages = {k: v for k, v in res.seconds.items() if k != "total"}
    report = {
        "video": video, "size": args.size, "frames": n, "device": args.device,
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "total_seconds": res.total_seconds,
        "frames_per_second_total": n / res.total_seconds,
        "stage_seconds": stages,
        "stage_frames_per_second": {k: (n / v if v > 0 else None) for k, v in stages.items()},
        "landmark_error_px": res.landmark_error_px,
        "landmark_error_rel": res.landmark_error_rel,
        "target_frames_per_second": 30,
    }
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
