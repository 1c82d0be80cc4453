"""Real-time generator speed per inference path and resolution, and the live loop end to end.

Generator: :class:`~selfie_avatar.reenact.inference.BakedAvatar` (image generator with cached face and background
inputs) at batch 1, freshly initialised (speed does not depend on the weights), for each path of
:data:`~selfie_avatar.reenact.inference.PATHS` the device supports, at 256, 512 and 1024 px. Each path is first
checked against eager fp32 (mean |diff| within its tolerance; a path that fails is reported, not timed).

    CPU : the lite preset (ModelConfig.preset("lite")) at 256, 512 and 1024 -- the CPU real-time target is 256 px
    CUDA: the full preset's channel layout (ModelConfig.preset("full")) at 256, 512 and 1024

End to end (``--run RUN_DIR --source VIDEO``): ``selfie-avatar live`` without a display on that run.

    .venv/bin/python benchmarks/inference.py [--out outputs/benchmarks/inference.json] [--sizes 256 512 1024]
                                             [--paths eager bf16 ...] [--run RUN_DIR --source VIDEO]

Targets (issue 4): >= 15 frames/s at 256 on 2 CPU cores (lite); >= 200 frames/s at 512 on one H100.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)
from models import fill_synthetic_bank, synthetic_batch  # benchmarks/models.py
from selfie_avatar.models import AvatarGenerator, ModelConfig
from selfie_avatar.models.reference import ReferenceBank
from selfie_avatar.reenact.inference import PATHS, BakedAvatar, check_path, make_path, path_supported, time_path
from selfie_avatar.training.checkpoint import LoadedAvatar


def baked_avatar(cfg: ModelConfig, device: torch.device) -> BakedAvatar:
    torch.manual_seed(0)
    gen = AvatarGenerator(cfg).to(device).eval()
    cache = gen.compute_cache()
    plate = torch.rand(1, 3, cfg.size, cfg.size, device=device) * 2 - 1 if cfg.use_background_plate else None
    reference = fill_synthetic_bank(ReferenceBank(), cfg).to(device) if cfg.reference_frames else None
    avatar = LoadedAvatar(cfg, gen.image_generator, cache["face_texture"], cache["bg_canvas"], 0, {}, None, plate,
                          reference)
    return BakedAvatar(avatar).to(device)


def bench_device(device: torch.device, sizes: list[int], paths: list[str], repeats: int) -> dict:
    preset = "lite" if device.type == "cpu" else "full"
    out: dict = {"preset": preset}
    for size in sizes:
        cfg = ModelConfig.preset(preset, size=size, texture_size=min(size, 512 if preset == "full" else 256))
        baked = baked_avatar(cfg, device)
        data = synthetic_batch(cfg, 1, device)
        res = out[str(size)] = {}
        for path in paths:
            ok, why = path_supported(path, device)
            if not ok:
                res[path] = {"skipped": why}
                print(f"[{device.type}] {size:5d}px {path:14s} skipped: {why}")
                continue
            t = time.perf_counter()
            check = check_path(baked, path, data["render"], data["uv"], device)
            fn = make_path(baked, path, device)
            n = repeats if size <= 256 or device.type == "cuda" else max(3, repeats // 4)
            fps = time_path(fn, data["render"], data["uv"], repeats=n) if check.ok else None
            res[path] = {"frames_per_second": fps, "mean_abs_diff": check.mean_abs_diff,
                         "max_abs_diff": check.max_abs_diff, "tolerance": check.tolerance, "within": check.ok,
                         "setup_s": round(time.perf_counter() - t, 1)}
            shown = f"{fps:8.1f} frames/s" if fps else "   (outside tolerance, not timed)"
            print(f"[{device.type}] {size:5d}px {path:14s}{shown}   mean|diff| {check.mean_abs_diff:.2e} "
                  f"(tol {check.tolerance:g})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/inference.json"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--run", type=Path, help="a trained run folder for the end-to-end live figure")
    parser.add_argument("--source", type=Path, help="driving video for the end-to-end live figure")
    parser.add_argument("--live-frames", type=int, default=150)
    args = parser.parse_args()

    report = {"benchmark": "real-time generator per inference path; live loop end to end",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name(), "generator": {}}
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
        report["gpu"] = torch.cuda.get_device_name(0)
    for device in devices:
        report["generator"][device.type] = bench_device(device, args.sizes, args.paths, args.repeats)
    if args.run and args.source:
        from selfie_avatar.config import LiveConfig
        from selfie_avatar.reenact.live import live

        report["live"] = {}
        for device in devices:
            r = live(LiveConfig(run_dir=str(args.run), source=str(args.source), display="no",
                                out=str(args.out.with_name(f"live_{device.type}.mp4")), max_frames=args.live_frames,
                                device=str(device), progress=False))
            report["live"][device.type] = {"frames_per_second": r.frames_per_second, "stage_ms": r.stage_ms,
                                           "codes": r.codes, "frames": r.frames}
            print(f"[{device.type}] live end to end: {r.frames_per_second:.1f} frames/s ({r.codes} codes)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
