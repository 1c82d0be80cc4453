"""Data for the 3DMM encoder: a subject's crops with their tracked codes, and on-device augmentation.

Targets are expressed relative to the crop side (pixels / S), so they do not change when the crops are resized
and the encoder can be trained at any size. One sample:

    image        (3, S, S)    uint8 RGB crop (augmentation turns the batch into float in [-1, 1] on the device)
    rotation     (3, 3)       head rotation, model -> camera
    scale        ()           crop pixels per model unit / S
    translation  (2,)         screen position of the model origin / S
    expression   (52,)        MediaPipe blendshape scores (the subject's PCA codes are left out)
    landmarks    (L, 2)       tracked 2D landmarks / S (the first L = mesh vertices)
    frame_index  ()           long

:func:`augment_batch` applies a random similarity warp (scale, shift, in-plane rotation) to the crops and the
*same* transform to the targets (``R' = Rz(d) R``, ``s' = k s``, ``t' = c + k Rz(d) (t - c) + shift``), then
photometric changes (brightness, contrast, saturation, hue, gamma, blur, noise) that leave the targets alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from selfie_avatar.face_model.names import NUM_BLENDSHAPES
from selfie_avatar.geometry.similarity import similarity_matrix, warp_images, warp_points
from selfie_avatar.tracking.status import MISSING
from selfie_avatar.tracking.subject import Subject

__all__ = ["load_codes", "EncoderFrames", "EncoderDataModule", "AugmentSettings", "augment_batch"]

CODE_KEYS = ("rotation", "scale", "translation", "expression", "landmarks")


def load_codes(subject: Subject, indices: list[int], size: int | None = None, num_landmarks: int = 468,
               progress: bool = False) -> dict[str, Tensor]:
    """Crops and tracked codes of the given frames, MISSING frames dropped, targets relative to the crop side.

    Reads only ``frames/`` (not the render, UV and matte images :class:`~selfie_avatar.training.data.SubjectFrames`
    decodes for the avatar), once, into one uint8 tensor: the encoder's epochs are short and many.

    Args:
        subject: the subject folder.
        indices: frame indices wanted.
        size: crop side to resize to (None: the subject's).
        num_landmarks: tracked landmarks kept (the first 468 of MediaPipe's 478 are the mesh vertices).
        progress: show a progress bar while decoding.

    Returns:
        The sample fields of the module docstring, stacked: ``image`` (N, 3, S, S) uint8 and the codes.

    Raises:
        ValueError: no frame of ``indices`` has a face.
    """
    tr = subject.tracking
    idx = np.asarray([i for i in indices if tr["status"][i] != MISSING], dtype=np.int64)
    if len(idx) == 0:
        raise ValueError(f"{subject.root}: none of the {len(indices)} frames asked for has a tracked face")
    src, size = subject.size, size or subject.size
    images = np.empty((len(idx), size, size, 3), np.uint8)
    interp = cv2.INTER_AREA if size < src else cv2.INTER_LINEAR
    for k, i in enumerate(tqdm(idx, desc="encoder frames", unit="frame", disable=not progress, leave=False)):
        frame = subject.frame(int(i))
        images[k] = frame if size == src else cv2.resize(frame, (size, size), interpolation=interp)
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        "rotation": f32(tr["rotation"][idx]),
        "scale": f32(tr["scale"][idx] / src),
        "translation": f32(tr["translation"][idx, :2] / src),
        "expression": f32(tr["expression"][idx, :NUM_BLENDSHAPES]),
        "landmarks": f32(tr["landmarks"][idx, :num_landmarks, :2] / src),
        "frame_index": torch.from_numpy(idx),
    }


class EncoderFrames(Dataset):
    """Samples of a :func:`load_codes` dict (already in memory)."""

    def __init__(self, data: dict[str, Tensor]) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data["image"])

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        return {key: v[k] for key, v in self.data.items()}


class EncoderDataModule(LightningDataModule):
    """A subject's training frames (shuffled, seeded) with their codes, at the encoder's input size.

    Args:
        subject_dir: the subject folder (or a :class:`Subject`).
        size: encoder input side (frames are resized when the folder differs).
        batch_size: crops per step (capped at the number of training frames).
        num_workers: DataLoader workers.
        seed: shuffling seed.
        progress: progress bar while the frames are decoded.
        num_landmarks: landmarks the reprojection term compares (the face model's landmark count).
    """

    def __init__(self, subject_dir: str | Path | Subject, size: int = 128, batch_size: int = 32,
                 num_workers: int = 0, seed: int = 0, progress: bool = False, num_landmarks: int = 468) -> None:
        super().__init__()
        self.subject = subject_dir if isinstance(subject_dir, Subject) else Subject(subject_dir)
        if not self.subject.train_indices:
            raise ValueError(f"{self.subject.root}: the subject has no training frames")
        self.size, self.batch_size, self.num_workers, self.seed = size, batch_size, num_workers, seed
        self.train_data = load_codes(self.subject, self.subject.train_indices, size, num_landmarks, progress)
        self.train_set = EncoderFrames(self.train_data)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=min(self.batch_size, len(self.train_set)), shuffle=True,
                          drop_last=True, generator=g, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)


@dataclass
class AugmentSettings:
    """Ranges of the random augmentation (each drawn uniformly per sample; 0 switches a change off).

    Args:
        scale: zoom factor k in [1 / (1 + scale), 1 + scale] (log-uniform).
        shift: translation up to this fraction of the crop side, per axis.
        rotate_deg: in-plane rotation up to this many degrees either way.
        brightness: added to [0, 1] intensities, up to this either way.
        contrast: intensities scaled about the image mean by a factor in [1 - contrast, 1 + contrast].
        saturation: blend with grey by a factor in [1 - saturation, 1 + saturation].
        hue_deg: colours rotated about the grey axis of RGB space up to this many degrees.
        gamma: exponent exp(u), u in [-gamma, gamma].
        blur_sigma: Gaussian blur sigma up to this many pixels of a 128 px crop (scaled with the crop side).
        noise: Gaussian noise of standard deviation up to this.
    """

    scale: float = 0.15
    shift: float = 0.06
    rotate_deg: float = 15.0
    brightness: float = 0.15
    contrast: float = 0.3
    saturation: float = 0.4
    hue_deg: float = 15.0
    gamma: float = 0.3
    blur_sigma: float = 1.2
    noise: float = 0.03


def _rz3(angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, o], -1), torch.stack([s, c, o], -1), torch.stack([o, o, one], -1)], -2)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _hue_matrix(angle: Tensor) -> Tensor:
    """(B, 3, 3) rotations of RGB space about the grey axis (1, 1, 1): a hue shift that keeps grey grey."""
    # Rodrigues' formula about the unit axis (1, 1, 1) / sqrt(3); K is that axis's cross-product matrix.
    K = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=angle.device, dtype=angle.dtype) / math.sqrt(3.0)
    eye = torch.eye(3, device=angle.device, dtype=angle.dtype)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    return eye + s * K + (1 - c) * (K @ K)


def _blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Separable Gaussian blur with one sigma per sample (grouped convolution, one pass per axis)."""
    b, ch, h, w = x.shape
    r = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (r[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    k = (k / k.sum(-1, keepdim=True)).repeat_interleave(ch, 0)  # (B * C, 2r + 1)
    y = F.pad(x.reshape(1, b * ch, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * ch)
    y = F.conv2d(y, k[:, None, :, None], groups=b * ch)
    return y.reshape(b, ch, h, w)


def augment_batch(batch: dict[str, Tensor], gen: torch.Generator, settings: AugmentSettings | None = None,
                  geometric: bool = True, photometric: bool = True) -> dict[str, Tensor]:
    """Random warp + photometric change of a batch, with the pose and landmark targets moved consistently.

    Args:
        batch: the fields of the module docstring, on one device.
        gen: random generator on the batch's device (seeds the whole augmentation).
        settings: ranges (defaults: :class:`AugmentSettings`).
        geometric, photometric: switch either part off.

    Returns:
        A new dict: ``image`` float in [-1, 1]; ``rotation``, ``scale``, ``translation``, ``landmarks`` transformed
        (``expression`` and ``frame_index`` unchanged).

    Shape:
        - image: :math:`(B, 3, S, S)` uint8 (0..255) or float in [0, 1]
    """
    st = settings or AugmentSettings()
    img = batch["image"]
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, S, S), got {tuple(img.shape)}")
    x = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    b, dev, size = x.shape[0], x.device, x.shape[-1]
    out = dict(batch)
    if geometric:
        k = torch.exp(_uniform(b, -math.log1p(st.scale), math.log1p(st.scale), gen, dev))
        angle = _uniform(b, -math.radians(st.rotate_deg), math.radians(st.rotate_deg), gen, dev)
        shift = torch.stack([_uniform(b, -st.shift, st.shift, gen, dev) for _ in range(2)], -1)
        A, shift = similarity_matrix(k, angle, shift)
        x = warp_images(x, A, shift)
        out["rotation"] = _rz3(angle) @ batch["rotation"]
        out["scale"] = batch["scale"] * k
        out["translation"] = warp_points(batch["translation"][:, None], A, shift)[:, 0]
        out["landmarks"] = warp_points(batch["landmarks"], A, shift)
    if photometric:
        u = lambda r: _uniform(b, -r, r, gen, dev)[:, None, None, None]  # noqa: E731
        x = x + u(st.brightness)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + u(st.contrast)) + mean
        grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev)[None, :, None, None]).sum(1, keepdim=True)
        x = (x - grey) * (1 + u(st.saturation)) + grey
        hue = _hue_matrix(_uniform(b, -math.radians(st.hue_deg), math.radians(st.hue_deg), gen, dev))
        x = torch.einsum("bij,bjhw->bihw", hue, x)
        x = x.clamp(0, 1) ** torch.exp(u(st.gamma))
        if st.blur_sigma > 0:
            sigma = torch.rand(b, generator=gen, device=dev) * st.blur_sigma * size / 128
            x = _blur(x, sigma, radius=max(1, math.ceil(2.5 * st.blur_sigma * size / 128)))
        x = x + torch.randn(x.shape, generator=gen, device=dev) * (u(st.noise).abs())
    out["image"] = x.clamp(0, 1) * 2 - 1
    return out
