"""The real-time generator and its inference paths.

:class:`BakedAvatar` is the image generator with the cached face texture, the background window and the reference bank
(when the avatar has one) baked in as
buffers: two images in, one image out, no Python-side state, which is what ``torch.compile`` and ONNX want.

    render (B, 3, S, S) in [-1, 1], uv (B, 3, S, S)  ->  image (B, 3, S, S) in [-1, 1]

Inference paths (:func:`make_path`), each checked against eager float32 by :func:`check_path` within
:data:`TOLERANCES` (mean absolute difference, image in [-1, 1]):

    eager          float32, the reference
    channels_last  float32, NHWC memory layout (faster convolutions on CUDA and oneDNN)
    compile        float32, ``torch.compile`` (inductor; needs a C++ compiler on the CPU)
    bf16 / fp16    half precision weights and activations (fp16 only on CUDA)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from selfie_avatar.models import warp_texture
from selfie_avatar.models.background_generator import crop_windows
from selfie_avatar.utils.timing import calls_per_second

PATHS = ("eager", "channels_last", "compile", "bf16", "fp16")
# Mean |difference| to eager fp32 allowed per path: float32 paths only reorder sums; half precision keeps about
# three significant digits through some forty convolutions.
TOLERANCES = {"eager": 0.0, "channels_last": 1e-4, "compile": 1e-3, "bf16": 3e-2, "fp16": 1e-2}


class BakedAvatar(nn.Module):
    """The trained image generator with its cached inputs baked in (see the module docstring).

    Args:
        avatar: a :class:`~selfie_avatar.training.checkpoint.LoadedAvatar`.
    """

    def __init__(self, avatar) -> None:
        super().__init__()
        self.generator = copy.deepcopy(avatar.image_generator).eval()
        self.size = int(avatar.config.size)
        self.register_buffer("face_texture", avatar.face_texture.detach().clone())              # (1, C_f, T, T)
        self.register_buffer("bg_window", crop_windows(avatar.bg_canvas, self.size, batch=1).detach().clone())
        self.has_plate = avatar.plate is not None
        if self.has_plate:
            self.register_buffer("plate", avatar.plate.detach().clone())                     # (1, 3, S, S)
        # The reference bank (models/reference.py), its frames and head planes as buffers; None without one.
        self.reference = copy.deepcopy(avatar.reference)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, render: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        b = render.shape[0]
        face = warp_texture(self.face_texture, uv)                                            # (B, C_f, S, S)
        bg = self.bg_window.expand(b, -1, -1, -1)                                             # (B, C_b, S, S)
        mask = uv[:, 2:3].to(render.dtype)
        plate = self.plate.to(render.dtype) if self.has_plate else None
        reference = self.reference(uv).to(render.dtype) if self.reference is not None else None  # (B, 6, S, S)
        return self.generator(render, face, mask, bg.to(render.dtype), noise="const",
                              plate=plate, reference=reference)["image"]                       # (B, 3, S, S)


def path_supported(path: str, device: torch.device) -> tuple[bool, str]:
    """Whether ``path`` can run on ``device`` here, and why not."""
    if path not in PATHS:
        raise ValueError(f"unknown inference path {path!r}; choose from {PATHS}")
    if path == "fp16" and device.type != "cuda":
        return False, "fp16 convolutions are a CUDA path (CPU kernels for them are slow or missing)"
    if path == "compile":
        import shutil

        if device.type == "cpu" and not (shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")):
            return False, "torch.compile on the CPU needs a C++ compiler (none found on PATH)"
    return True, ""


def make_path(baked: BakedAvatar, path: str, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function ``(render, uv) -> image`` (float32 in and out) running ``baked`` the way ``path`` says.

    Raises:
        ValueError: unknown path, or one this device cannot run (see :func:`path_supported`).
    """
    ok, why = path_supported(path, device)
    if not ok:
        raise ValueError(f"inference path {path!r} is not available on {device}: {why}")
    model = copy.deepcopy(baked).to(device).eval()
    if path == "eager":
        return torch.no_grad()(model)
    if path == "channels_last":
        # Module.to(memory_format=...) refuses the generator's non-4D parameters; convert the 4D ones only.
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)

        @torch.no_grad()
        def run_cl(render, uv):
            return model(render.contiguous(memory_format=torch.channels_last),
                         uv.contiguous(memory_format=torch.channels_last)).contiguous()
        return run_cl
    if path == "compile":
        compiled = torch.compile(model, dynamic=False)

        @torch.no_grad()
        def run_compiled(render, uv):
            return compiled(render, uv)
        return run_compiled
    dtype = torch.bfloat16 if path == "bf16" else torch.float16
    model = model.to(dtype)
    if baked.reference is not None:
        # The bank's head planes address pixels: they stay float32, as the texture coordinates do.
        model.reference = copy.deepcopy(baked.reference).to(device)

    @torch.no_grad()
    def run_half(render, uv):
        return model(render.to(dtype), uv).float()  # uv stays float32: it addresses texels (see warp_texture)
    return run_half


@dataclass
class PathCheck:
    path: str
    mean_abs_diff: float
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.mean_abs_diff <= self.tolerance


def check_path(baked: BakedAvatar, path: str, render: torch.Tensor, uv: torch.Tensor,
               device: torch.device) -> PathCheck:
    """Compare one path's output with eager float32 on the same inputs."""
    ref = make_path(baked, "eager", device)(render.to(device), uv.to(device))
    out = make_path(baked, path, device)(render.to(device), uv.to(device))
    d = (out.float() - ref).abs()
    return PathCheck(path, float(d.mean()), float(d.max()), TOLERANCES[path])


def time_path(fn: Callable, render: torch.Tensor, uv: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Frames per second of ``fn`` at the batch of ``render`` (median of ``repeats`` timed calls)."""
    return render.shape[0] * calls_per_second(lambda: fn(render, uv), repeats, warmup, render.device)
