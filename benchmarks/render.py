"""Time MeshRenderer (rasterise + Lambert shade + UV render) on a face-sized mesh.

The mesh is a regular grid of 18 x 26 = 468 vertices (850 triangles, like the MediaPipe face mesh) bent into a
dome, spanning about 120 x 140 px of a 256 x 256 image (and twice that at 512 x 512), with a small random
per-frame rotation so every batch item differs.

    .venv/bin/python benchmarks/render.py [--out outputs/benchmarks/render.json] [--device cpu] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from selfie_avatar.geometry import euler_to_matrix
from selfie_avatar.render import MeshRenderer
from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)


def grid_mesh(nx: int = 18, ny: int = 26) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model-space vertices (V, 3) in [-0.5, 0.5]^2 bent into a dome, faces (F, 3), uv (V, 2)."""
    u, v = torch.meshgrid(torch.linspace(0, 1, nx), torch.linspace(0, 1, ny), indexing="xy")
    x, y = u - 0.5, v - 0.5
    z = -0.35 * torch.sqrt((1.0 - (x * x + y * y) * 1.6).clamp_min(0.0))  # bulges toward the camera
    verts = torch.stack([x, y, z], -1).reshape(-1, 3)
    idx = torch.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    return verts, faces, torch.stack([u, v], -1).reshape(-1, 2)


def screen_verts(model: torch.Tensor, batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """(B, V, 3) screen-space vertices: the grid scaled to ~120 x 140 px per 256 px, slightly rotated."""
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(batch, 3, generator=g) - 0.5) * 0.3
    R = euler_to_matrix(angles)
    scale = size / 256.0 * torch.tensor([120.0, 140.0, 130.0])
    pts = (model @ R.transpose(-1, -2)) * scale + torch.tensor([size / 2, size / 2, 0.0])
    return pts


def time_renderer(size: int, batch: int, device: torch.device, repeats: int) -> dict:
    model, faces, uv = grid_mesh()
    renderer = MeshRenderer((size, size), faces, uv).to(device)
    verts = screen_verts(model, batch, size).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(2):  # warm-up: allocator, kernels
            out = renderer(verts)
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = renderer(verts)
            sync()
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    coverage = out["mask"].mean().item() * size * size
    # Training differentiates through the renderer: time forward + backward to the vertices as well.
    grad_times = []
    for _ in range(max(3, repeats // 2)):
        v = verts.clone().requires_grad_(True)
        t0 = time.perf_counter()
        o = renderer(v)
        (o["render"].mean() + o["uv"].mean() + o["depth"].mean()).backward()
        sync()
        grad_times.append(time.perf_counter() - t0)
    grad_times.sort()
    grad_median = grad_times[len(grad_times) // 2]
    return {
        "image_size": size,
        "batch": batch,
        "vertices": model.shape[0],
        "triangles": faces.shape[0],
        "covered_px_per_frame": round(coverage, 1),
        "ms_per_batch_median": round(median * 1e3, 3),
        "ms_per_batch_min": round(times[0] * 1e3, 3),
        "ms_per_frame_median": round(median * 1e3 / batch, 3),
        "ms_per_frame_forward_backward_median": round(grad_median * 1e3 / batch, 3),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/render.json"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    from selfie_avatar.utils.device import resolve_device

    device = resolve_device(args.device)
    results = []
    for size in args.sizes:
        r = time_renderer(size, args.batch, device, args.repeats)
        results.append(r)
        print(
            f"{size}x{size}  B={r['batch']}  {r['triangles']} tris  ~{r['covered_px_per_frame']:.0f} px covered: "
            f"{r['ms_per_frame_median']:.3f} ms/frame ({r['ms_per_batch_median']:.1f} ms/batch), "
            f"forward+backward {r['ms_per_frame_forward_backward_median']:.3f} ms/frame"
        )
    report = {
        "benchmark": "MeshRenderer forward (rasterize + shade + uv) under no_grad, and forward + backward",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
