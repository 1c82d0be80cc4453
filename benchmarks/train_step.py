"""Training steps per second and peak memory per preset, on the CPU here and on CUDA when available.

    .venv/bin/python benchmarks/train_step.py [--presets tiny cpu] [--steps 20] [--out FILE]

Runs the real ``AvatarModule.training_step`` under a Lightning Trainer on synthetic batches (random frames,
renders, UV images and mattes of the preset's size), with the default loss set, and times the steps after a warm-up.
The face and background generators stay unfrozen (the slower half of a run). It runs unchanged against older
checkouts of the project too, which is how ``benchmarks/train_speed.py`` compares two commits side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]


class Synthetic(Dataset):
    def __init__(self, size: int, n: int = 64) -> None:
        self.size, self.n = size, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        s = self.size
        uv = torch.rand(3, s, s, generator=g)
        uv[2] = (uv[2] > 0.5).float()
        return {"image": torch.rand(3, s, s, generator=g) * 2 - 1, "render": torch.rand(3, s, s, generator=g) * 2 - 1,
                "uv": uv, "matte": torch.rand(1, s, s, generator=g), "face_mask": uv[2:3],
                "frame_index": torch.tensor(i % 8)}


def bench(preset: str, steps: int, accelerator: str, all_losses: bool = False) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from selfie_avatar.losses import resolve_loss_weights
    from selfie_avatar.training.module import AvatarModule
    from selfie_avatar.training.presets import get_preset

    p = get_preset(preset)
    model = dataclasses.replace(p.model, num_frames=8, use_time_code=True)
    # The preset's own loss set (older checkouts have none: every loss on), or every loss with --all-losses.
    weights = resolve_loss_weights() if all_losses else resolve_loss_weights(dict(getattr(p, "loss_weights", ())))
    module = AvatarModule(model=dataclasses.asdict(model), loss_weights=weights, lr_g=p.lr_g,
                          lr_d=p.lr_d, freeze_after=10**9, r1_interval=p.r1_interval,
                          **({"feature_window": p.feature_window} if hasattr(p, "feature_window") else {}))
    if getattr(model, "use_background_plate", False):
        module.set_background_plate(torch.rand(3, model.size, model.size, generator=torch.Generator().manual_seed(7))
                                    * 2 - 1)
    if getattr(model, "reference_frames", 0):  # older checkouts have no bank
        from models import fill_synthetic_bank  # benchmarks/models.py

        fill_synthetic_bank(module.reference, model)
    times: list[float] = []

    class Timer(Callback):
        def on_train_batch_start(self, *a) -> None:
            if accelerator == "gpu":
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a) -> None:
            if accelerator == "gpu":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(accelerator=accelerator, devices=1, max_steps=-1, max_epochs=1,
                        limit_train_batches=steps + 3, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Timer()])
    loader = DataLoader(Synthetic(model.size, n=(steps + 3) * p.batch_size), batch_size=p.batch_size)
    trainer.fit(module, train_dataloaders=loader)
    timed = times[3:]  # warm-up excluded
    per_step = sum(timed) / len(timed)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if accelerator == "gpu"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"preset": preset, "device": accelerator, "size": model.size, "batch_size": p.batch_size,
            "steps_timed": len(timed), "seconds_per_step": per_step, "steps_per_second": 1 / per_step,
            "images_per_second": p.batch_size / per_step,
            "peak_memory_mib": peak, "peak_memory_kind": "cuda_max_allocated" if accelerator == "gpu" else "process_max_rss",
            "vgg_source": module.vgg_source, "loss_weights": weights}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "train_step.json"))
    ap.add_argument("--all-losses", action="store_true", help="every loss on, whatever the preset switches off")
    args = ap.parse_args()
    results = [bench(p, args.steps, "cpu", args.all_losses) for p in args.presets]
    if torch.cuda.is_available():
        results += [bench(p, args.steps, "gpu", args.all_losses)
                    for p in args.presets + (["full"] if "full" not in args.presets else [])]
    report = {"machine": platform.machine(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
              "results": results}
    from selfie_avatar.utils.atomic import write_json_atomic

    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
