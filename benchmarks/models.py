"""Parameter counts and step times of the avatar networks per preset (ModelConfig.preset: tiny, cpu, lite, full).

Timed, at a given batch size on synthetic inputs (a face-shaped disc of UV coverage):

- ``train_step``: generator forward (G_fa + G_b at batch 1, StyleUNet at batch B), discriminator on real and fake
  with one backward, then the discriminator on the fake again with the generator's backward: the network part of a
  training step (no losses beyond the logistic ones, no optimiser update).
- ``inference``: the image generator alone on cached G_fa / G_b outputs, eval mode, no_grad (the real-time path).

CPU always (presets ``tiny`` and ``cpu`` unless ``--presets`` says otherwise); CUDA as well when available (all
three presets).

    .venv/bin/python benchmarks/models.py [--out outputs/benchmarks/models.json] [--batch 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from selfie_avatar.models import AvatarGenerator, Discriminator, ModelConfig
from selfie_avatar.models.reference import REFERENCE_CHANNELS, ReferenceBank, head_plane
from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)

PRESETS = ("tiny", "cpu", "full")


def synthetic_batch(cfg: ModelConfig, batch: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random render/real images in [-1, 1] and a UV image covering a centred disc (about a face's share)."""
    g = torch.Generator().manual_seed(seed)
    s = cfg.size
    ys, xs = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
    inside = (((xs - 0.5) ** 2 + (ys - 0.5) ** 2) < 0.3 ** 2).float()
    uv = torch.stack([xs, ys, inside])[None].repeat(batch, 1, 1, 1)
    return {
        "render": (torch.rand(batch, 3, s, s, generator=g) * 2 - 1).to(device),
        "image": (torch.rand(batch, 3, s, s, generator=g) * 2 - 1).to(device),
        "uv": uv.to(device),
        "frame_index": torch.zeros(batch, dtype=torch.long, device=device),
        "plate": (torch.rand(1, 3, s, s, generator=g) * 2 - 1).to(device) if cfg.use_background_plate else None,
        "reference": ((torch.rand(batch, REFERENCE_CHANNELS, s, s, generator=g) * 2 - 1).to(device)
                      if cfg.reference_frames else None),
    }


def fill_synthetic_bank(bank: ReferenceBank, cfg: ModelConfig, seed: int = 8) -> ReferenceBank:
    """Fill ``bank`` with ``cfg.reference_frames`` random frames on :func:`synthetic_batch`'s head plane, 100 frames
    apart: as large as the preset's bank, so its search and warp cost what a real one's do. Returns ``bank``."""
    n, s = cfg.reference_frames, cfg.size
    planes, _ = head_plane(synthetic_batch(cfg, 1, torch.device("cpu"))["uv"])
    images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    bank.fill(planes.expand(n, -1, -1).clone(), images, torch.arange(n) * 100)
    return bank


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _median_time(fn, repeats: int, sync) -> float:
    for _ in range(2):  # warm-up: allocator, kernel selection
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def time_preset(cfg: ModelConfig, batch: int, device: torch.device, repeats: int) -> dict:
    torch.manual_seed(0)
    G, D = AvatarGenerator(cfg).to(device), Discriminator(cfg).to(device)
    data = synthetic_batch(cfg, batch, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def train_step() -> None:
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        out = G(data["render"], data["uv"], frame_index=data["frame_index"], plate=data["plate"],
                reference=data["reference"])
        d_loss = F.softplus(-D(data["image"], data["render"])).mean() \
            + F.softplus(D(out["image"].detach(), data["render"])).mean()
        d_loss.backward()
        g_loss = F.softplus(-D(out["image"], data["render"])).mean() + (out["image"] - data["image"]).abs().mean()
        g_loss.backward()

    cache = G.compute_cache()
    image_generator = G.image_generator

    @torch.no_grad()
    def inference() -> None:
        image_generator.eval()
        G(data["render"], data["uv"], face_texture=cache["face_texture"], bg_canvas=cache["bg_canvas"],
          plate=data["plate"], reference=data["reference"])
        image_generator.train()

    step = _median_time(train_step, repeats, sync)
    infer = _median_time(inference, repeats, sync)
    return {"batch": batch, "train_step_s": round(step, 4), "inference_s": round(infer, 4),
            "inference_ms_per_frame": round(infer * 1e3 / batch, 3)}


def params(cfg: ModelConfig) -> dict:
    G, D = AvatarGenerator(cfg), Discriminator(cfg)
    return {"size": cfg.size, "texture_size": cfg.texture_size, "generator": count(G),
            "face_generator": count(G.face_generator), "background_generator": count(G.background_generator),
            "image_generator": count(G.image_generator), "discriminator": count(D)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/models.json"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=None,
                        help="presets to time (default: tiny cpu on CPU, all on CUDA); parameters are always counted")
    args = parser.parse_args()

    report = {"benchmark": "avatar networks: parameters, train step (G + D forward/backward), inference",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name(),
              "params": {}, "timings": {}}
    for name in PRESETS:
        p = report["params"][name] = params(getattr(ModelConfig, name)())
        print(f"{name:5s} {p['size']:4d}px  G {p['generator'] / 1e6:7.3f} M (face {p['face_generator'] / 1e6:.3f}, "
              f"bg {p['background_generator'] / 1e6:.3f}, image {p['image_generator'] / 1e6:.3f})  "
              f"D {p['discriminator'] / 1e6:7.3f} M")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        label = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)
        presets = args.presets or (("tiny", "cpu") if device.type == "cpu" else PRESETS)
        report["timings"][label] = {}
        for name in presets:
            r = time_preset(getattr(ModelConfig, name)(), args.batch, device, args.repeats)
            report["timings"][label][name] = r
            print(f"[{label}] {name:5s} batch {r['batch']}: train step {r['train_step_s'] * 1e3:8.1f} ms, "
                  f"inference {r['inference_s'] * 1e3:7.1f} ms ({r['inference_ms_per_frame']:.2f} ms/frame)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
