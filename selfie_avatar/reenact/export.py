"""``selfie-avatar export RUN_DIR --onnx OUT.onnx``: the real-time generator as an ONNX graph.

The exported graph is :class:`~selfie_avatar.reenact.inference.BakedAvatar`: the image generator with the cached
face texture and background window baked in as constants, so a runtime needs only the per-frame ``I_R`` and
``I_UV``:

    inputs   render (B, 3, S, S) float32 in [-1, 1],  uv (B, 3, S, S) float32 (u, v, coverage)
    output   image  (B, 3, S, S) float32 in [-1, 1]                                              (B = 1)

The batch is fixed at 1, the real-time case: the modulated convolutions group by sample, so a dynamic batch
would make the group count dynamic, which ONNX convolutions do not allow.

After writing, the file is loaded with onnxruntime and run on real held-out inputs of the subject; the export
fails unless its output matches PyTorch's within :data:`ONNX_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfie_avatar.config import ExportConfig, config_to_dict
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.reenact.inference import BakedAvatar
from selfie_avatar.utils.atomic import atomic_path, write_json_atomic
from selfie_avatar.utils.log import get_logger
from selfie_avatar.utils.timing import calls_per_second

log = get_logger("export")

ONNX_TOLERANCE = 1e-3  # max |onnxruntime - PyTorch| on images in [-1, 1]; float32 kernels differ in sum order only
OPSET = 17  # GridSample (the texture warp) needs 16 or later


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    mean_abs_diff: float
    onnxruntime_fps: float
    torch_fps: float

    def summary(self) -> str:
        return (f"ONNX model: {self.path}\n"
                f"  onnxruntime vs PyTorch: max |diff| {self.max_abs_diff:.2e}, mean {self.mean_abs_diff:.2e} "
                f"(tolerance {ONNX_TOLERANCE:g})\n"
                f"  batch 1 on CPU: onnxruntime {self.onnxruntime_fps:.1f} frames/s, PyTorch {self.torch_fps:.1f}")


def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export the avatar's generator in ``cfg.run_dir`` to ``cfg.onnx`` and verify it with onnxruntime.

    Raises:
        SelfieAvatarError: bad run folder, onnx/onnxruntime missing, or the exported graph disagrees with PyTorch.
    """
    import importlib.util

    from selfie_avatar.training.checkpoint import open_run
    from selfie_avatar.training.data import SubjectFrames

    for pkg in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(pkg) is None:
            raise SelfieAvatarError(f"export needs the {pkg} package (pip install onnx onnxruntime)")
    if not cfg.onnx:
        raise ValueError("export needs an output path (--onnx OUT.onnx)")
    run = open_run(cfg.run_dir, cfg.checkpoint, "cpu")
    baked = BakedAvatar(run.avatar).eval()
    subject = run.subject
    frames = (subject.test_indices or subject.train_indices)[:4]
    data = SubjectFrames(subject, frames, size=baked.size, cache=False)
    render = torch.stack([data[k]["render"] for k in range(len(frames))])
    uv = torch.stack([data[k]["uv"] for k in range(len(frames))])
    out = Path(cfg.onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with torch.no_grad():
            torch.onnx.export(baked, (render[:1], uv[:1]), str(tmp), input_names=["render", "uv"],
                              output_names=["image"], opset_version=OPSET, dynamo=True, external_data=False)
        check = _verify(tmp, baked, render, uv)
    write_json_atomic(out.with_suffix(".json"), {
        "onnx": str(out), "run": str(run.root.resolve()), "checkpoint": str(run.checkpoint), "size": baked.size,
        "opset": OPSET, "inputs": {"render": "(1, 3, S, S) float32 in [-1, 1]", "uv": "(1, 3, S, S) float32"},
        "output": {"image": "(1, 3, S, S) float32 in [-1, 1]"}, "verified_frames": frames,
        "max_abs_diff": check.max_abs_diff, "mean_abs_diff": check.mean_abs_diff, "tolerance": ONNX_TOLERANCE,
        "onnxruntime_fps_batch1_cpu": check.onnxruntime_fps, "torch_fps_batch1_cpu": check.torch_fps,
        "config": config_to_dict(cfg),
    })
    check.path = out
    log.info("exported %s (max |diff| %.2e)", out, check.max_abs_diff)
    return check


def _verify(path: Path, baked: BakedAvatar, render: torch.Tensor, uv: torch.Tensor) -> ExportResult:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"render": render.numpy(), "uv": uv.numpy()}
    got = np.concatenate([sess.run(["image"], {"render": r[None], "uv": u[None]})[0]
                          for r, u in zip(feeds["render"], feeds["uv"])])
    with torch.no_grad():
        ref = baked(render, uv).numpy()
    diff = np.abs(got - ref)
    if diff.max() > ONNX_TOLERANCE or got.shape != ref.shape:
        raise SelfieAvatarError(f"the exported ONNX graph disagrees with PyTorch: max |diff| {diff.max():.3g} > "
                                f"{ONNX_TOLERANCE:g}; the file was not kept")
    one = {"render": feeds["render"][:1], "uv": feeds["uv"][:1]}
    ort_fps = calls_per_second(lambda: sess.run(["image"], one), repeats=10, warmup=1)
    with torch.no_grad():
        torch_fps = calls_per_second(lambda: baked(render[:1], uv[:1]), repeats=10, warmup=1)
    return ExportResult(path, float(diff.max()), float(diff.mean()), ort_fps, torch_fps)
