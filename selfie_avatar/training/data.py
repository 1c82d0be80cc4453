"""Training data from a subject folder: the training frames, and the validation frames (never the test frames).

One sample (all tensors float32, (C, H, W)):

    image       (3, S, S)  real frame in [-1, 1]
    render      (3, S, S)  I_R in [-1, 1]
    uv          (3, S, S)  I_UV: u, v, coverage mask in [0, 1]
    matte       (1, S, S)  foreground matte in [0, 1]
    face_mask   (1, S, S)  face coverage (= uv[2])
    frame_index ()         long, the frame's index in the subject (for the per-frame style code)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from selfie_avatar.models.avatar import AvatarGenerator
from selfie_avatar.models.photo_texture import accumulate_photo_texture, finish_photo_texture
from selfie_avatar.models.reference import ReferenceBank, head_plane
from selfie_avatar.tracking.subject import Subject


class SubjectFrames(Dataset):
    """Frames of a subject folder, resized to ``size`` when the folder was prepared at another size.

    Args:
        subject: the subject folder (or a :class:`Subject`).
        indices: frame indices to serve.
        size: output side; None keeps the subject's.
        cache: keep decoded frames in memory (uint8), which makes every epoch after the first free of PNG decoding.
    """

    def __init__(self, subject: str | Path | Subject, indices: list[int], size: int | None = None,
                 cache: bool = True) -> None:
        self.subject = subject if isinstance(subject, Subject) else Subject(subject)
        if not indices:
            raise ValueError(f"{self.subject.root}: no frames to serve (empty split)")
        self.indices = list(indices)
        self.size = size or self.subject.size
        self.cache = cache
        self._cache: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, i: int):
        if i in self._cache:
            return self._cache[i]
        s = self.subject
        arrays = (s.frame(i), s.render(i), s.uv(i), s.matte(i))
        if self.size != s.size:
            interp = cv2.INTER_AREA if self.size < s.size else cv2.INTER_LINEAR
            arrays = tuple(cv2.resize(a, (self.size, self.size), interpolation=interp) for a in arrays)
        if self.cache:
            self._cache[i] = arrays
        return arrays

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i = self.indices[k]
        frame, render, uv, matte = self._load(i)
        uv = _chw(uv, np.float32)
        return {
            "image": torch.from_numpy(frame).permute(2, 0, 1).float() / 127.5 - 1,
            "render": torch.from_numpy(render).permute(2, 0, 1).float() / 127.5 - 1,
            "uv": uv,
            "matte": torch.from_numpy(np.ascontiguousarray(matte, dtype=np.float32))[None],
            "face_mask": (uv[2:3] > 0.5).float(),
            "frame_index": torch.tensor(i, dtype=torch.long),
        }


def _chw(array: np.ndarray, dtype=None) -> torch.Tensor:
    """A loaded (S, S, C) array as a (C, S, S) tensor (``dtype``: convert first; None keeps the array's)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype)).permute(2, 0, 1)


def background_plate(subject: Subject, size: int | None = None) -> torch.Tensor:
    """The subject's background plate as the generator takes it: (3, S, S) in [-1, 1], resized like the frames."""
    plate = subject.background
    size = size or subject.size
    if size != plate.shape[0]:
        interp = cv2.INTER_AREA if size < plate.shape[0] else cv2.INTER_LINEAR
        plate = cv2.resize(plate, (size, size), interpolation=interp)
    return torch.from_numpy(np.ascontiguousarray(plate)).permute(2, 0, 1).float() / 127.5 - 1


def fill_reference_bank(bank: ReferenceBank, frames: SubjectFrames, size: int, chunk: int = 64) -> None:
    """Fill a :class:`~selfie_avatar.models.reference.ReferenceBank` with ``size`` of ``frames`` (the training
    frames), spread over their head poses. The head planes are fitted a chunk of float32 ``I_UV`` tensors at a time
    and only the kept frames' pictures are stacked; the decoded frames go into ``frames``' own cache, which training
    reads next."""
    planes, ok = [], []
    for start in range(0, len(frames), chunk):
        uv = torch.stack([_chw(frames._load(i)[2], np.float32) for i in frames.indices[start:start + chunk]])
        p, o = head_plane(uv)
        planes.append(p)
        ok.append(o)
    planes, ok = torch.cat(planes), torch.cat(ok)
    keep = ReferenceBank.choose(planes, ok, size).tolist()
    images = torch.stack([_chw(frames._load(frames.indices[k])[0]) for k in keep])
    bank.fill(planes[keep], images, torch.tensor([frames.indices[k] for k in keep]))


def fill_photo_texture(generator: AvatarGenerator, frames: SubjectFrames, chunk: int = 64) -> None:
    """Unwrap every training frame into UV space and set the generator's photo texture to the mean
    (``models/photo_texture.py``). Frames are read in chunks of ``chunk`` (the float32 ``I_UV`` tensors are what
    would not fit at once)."""
    if not generator.cfg.photo_texture:
        raise ValueError("this generator was built without photo_texture")
    totals = None
    for start in range(0, len(frames), chunk):
        loaded = [frames._load(i) for i in frames.indices[start:start + chunk]]
        images = torch.stack([_chw(x[0]) for x in loaded])
        uv = torch.stack([_chw(x[2], np.float32) for x in loaded])
        totals = accumulate_photo_texture(images, uv, generator.cfg.texture_size, totals)
    if totals is None:
        raise ValueError("no training frames to unwrap")
    generator.photo_texture.copy_(finish_photo_texture(*totals))


class SubjectDataModule(LightningDataModule):
    """Train on the subject's training frames; validate on its validation frames, the only ones that choose a
    checkpoint (the test frames are never read here). Seeded and deterministic on CPU.

    Args:
        subject_dir: the subject folder.
        size: training resolution (frames are resized when the folder differs).
        batch_size: training batch size.
        num_workers: DataLoader workers (0 keeps everything in one process, the default on CPU).
        seed: shuffling seed.
        max_val_frames: validate on at most this many validation frames (evenly spaced), to keep validation cheap.
    """

    def __init__(self, subject_dir: str | Path, size: int | None = None, batch_size: int = 4, num_workers: int = 0,
                 seed: int = 0, max_val_frames: int = 16) -> None:
        super().__init__()
        self.subject = Subject(subject_dir)
        self.size = size or self.subject.size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.max_val_frames = max_val_frames
        val = self.subject.validation_indices
        if len(val) > max_val_frames:
            val = [val[int(k)] for k in np.linspace(0, len(val) - 1, max_val_frames).round()]
        # A subject too short for a validation slice validates on its last training frame: still never a test frame.
        self.val_indices = val or self.subject.train_indices[-1:]
        self.train_set = SubjectFrames(self.subject, self.subject.train_indices, self.size)
        self.val_set = SubjectFrames(self.subject, self.val_indices, self.size)

    @property
    def num_frames(self) -> int:
        return len(self.subject)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=min(self.batch_size, len(self.train_set)), shuffle=True,
                          drop_last=True, generator=g, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=min(self.batch_size, len(self.val_set)), shuffle=False,
                          num_workers=self.num_workers)
