"""How long opening a subject folder takes, with the damage check (every frame file's PNG header and end marker,
meta.json, tracking.npz, the face model) against opening it without.

A 1000-frame folder is built from a short real prepared clip by repeating its frame files (the check reads only
each file's first 24 and last 12 bytes, so the content does not matter, only the count). The page cache is warm
after the first open; the first open is reported separately.

    .venv/bin/python benchmarks/subject_check.py [--frames 1000] [--out outputs/benchmarks/subject_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)
from selfie_avatar.config import PrepareConfig
from selfie_avatar.prepare.pipeline import prepare
from selfie_avatar.tracking.subject import FRAME_DIRS, Subject, frame_name
from selfie_avatar.utils.atomic import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SELFIE_AVATAR_SHARED_DATA", REPO.parent / "shared" / "data"))


def build(root: Path, frames: int, size: int) -> Path:
    small = root / "small"
    prepare(PrepareConfig(video=str(SHARED / "selfie_d6.mp4"), out=str(small), size=size, max_frames=12,
                          device="cpu", write_video=False), progress=False)
    big = root / "big"
    shutil.copytree(small, big)
    for d in FRAME_DIRS:
        for i in range(12, frames):
            shutil.copyfile(small / d / frame_name(i % 12), big / d / frame_name(i))
    with np.load(small / "tracking.npz") as z:
        arrays = {k: z[k] for k in z.files}
    n = 12
    tiled = {k: (np.concatenate([v] * (frames // n + 1))[:frames] if v.ndim and len(v) == n else v)
             for k, v in arrays.items()}
    np.savez(big / "tracking.npz", **tiled)
    meta = json.loads((big / "meta.json").read_text())
    meta["num_frames"] = frames
    ids = list(range(frames))
    meta["split"] = {"train": ids[: int(frames * 0.85)], "validation": ids[int(frames * 0.85): int(frames * 0.9)],
                     "test": ids[int(frames * 0.9):]}
    (big / "meta.json").write_text(json.dumps(meta))
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "subject_check.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp), args.frames, args.size)
        t = time.perf_counter()
        Subject(folder)
        first = time.perf_counter() - t
        timings = {}
        for check in (True, False):
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                Subject(folder, check=check)
                runs.append(time.perf_counter() - t)
            timings["checked" if check else "unchecked"] = runs
    report = {
        "frames": args.frames, "files_checked": args.frames * len(FRAME_DIRS) + 3, "size": args.size,
        "first_open_s": first, "checked_median_s": float(np.median(timings["checked"])),
        "unchecked_median_s": float(np.median(timings["unchecked"])), "runs_s": timings, "cpu": cpu_name(),
    }
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
