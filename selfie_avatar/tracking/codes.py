"""The head codes of frames: one typed form for every stage, with its torch view, in ``tracking.npz``'s
conventions (crop pixels of a ``size`` x ``size`` crop):

    rotation     (N, 3, 3)  head rotation, model -> camera
    scale        (N,)       crop pixels per model unit
    translation  (N, 2)     screen position of the model origin, crop pixels
    expression   (N, E)     the 52 MediaPipe blendshape scores, then the subject's own PCA codes (or FLAME's codes)

``tracking/pose.py`` turns them into posed vertices, landmarks, ``I_R`` and ``I_UV``. The tracker's fit
(``prepare``'s ``TrackingResult.codes``), the subject folder (:meth:`HeadCodes.from_tracking`), the 3DMM encoder's
predictions (:class:`TorchCodes`, pixels of its input or relative to the crop side) and reenactment all hand codes
on in these two classes. ``tracking.npz`` stores the translation as (N, 3) with z = 0: an orthographic camera
ignores a depth offset, so it is read as (N, 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FIELDS = ("rotation", "scale", "translation", "expression")


@dataclass
class HeadCodes:
    """Per-frame pose and expression (see the module docstring for the conventions)."""

    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    expression: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.rotation)
        self.rotation = np.asarray(self.rotation, np.float32).reshape(n, 3, 3)
        self.scale = np.asarray(self.scale, np.float32).reshape(n)
        self.translation = np.asarray(self.translation, np.float32)[:, :2].reshape(n, 2)
        self.expression = np.asarray(self.expression, np.float32).reshape(n, -1)

    def __len__(self) -> int:
        return len(self.rotation)

    def __getitem__(self, idx) -> "HeadCodes":
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return HeadCodes(self.rotation[idx], self.scale[idx], self.translation[idx], self.expression[idx])

    @classmethod
    def from_tracking(cls, tracking: dict, indices=None) -> "HeadCodes":
        """Codes of a ``tracking.npz`` dict (``Subject.tracking``), optionally a subset of frames."""
        idx = slice(None) if indices is None else np.asarray(indices)
        return cls(*(tracking[k][idx] for k in FIELDS))

    def torch(self, device: str | torch.device = "cpu") -> "TorchCodes":
        """The same codes as float32 tensors on ``device``."""
        return TorchCodes(*(torch.from_numpy(np.ascontiguousarray(getattr(self, k))).to(device)
                            for k in FIELDS))

    @classmethod
    def concat(cls, parts: list["HeadCodes"]) -> "HeadCodes":
        """The frames of several :class:`HeadCodes`, in order."""
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in FIELDS))

    def scaled(self, factor: float) -> "HeadCodes":
        """The same codes for a crop ``factor`` times larger (pixels scale, rotation and expression do not)."""
        return HeadCodes(self.rotation, self.scale * factor, self.translation * factor, self.expression)

    def translation_3d(self) -> np.ndarray:
        """(N, 3) translation with z = 0, the shape ``tracking.npz`` stores."""
        return np.concatenate([self.translation, np.zeros((len(self), 1), np.float32)], 1)


@dataclass
class TorchCodes:
    """:class:`HeadCodes` as tensors (``HeadCodes.torch``): rotation (B, 3, 3), scale (B,), translation (B, 2),
    expression (B, E). Differentiable where the tensors are.

    The encoder also uses this form for pose relative to the crop side (scale in crop sides per model unit,
    translation in crop sides, 0 and 1 the crop's edges); :meth:`scaled` turns it into pixels of a crop.
    """

    rotation: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor

    def __len__(self) -> int:
        return len(self.rotation)

    @classmethod
    def of(cls, fields: dict[str, torch.Tensor]) -> "TorchCodes":
        """The codes among a batch dict's fields (``rotation``, ``scale``, ``translation``, ``expression``)."""
        return cls(*(fields[k] for k in FIELDS))

    @classmethod
    def concat(cls, parts: list["TorchCodes"]) -> "TorchCodes":
        """The frames of several :class:`TorchCodes`, in order."""
        return cls(*(torch.cat([getattr(p, k) for p in parts]) for k in FIELDS))

    def scaled(self, factor: float) -> "TorchCodes":
        """The same codes for a crop ``factor`` times larger (pixels scale, rotation and expression do not)."""
        return TorchCodes(self.rotation, self.scale * factor, self.translation * factor, self.expression)

    def to(self, device: str | torch.device) -> "TorchCodes":
        return TorchCodes(*(getattr(self, k).to(device) for k in FIELDS))

    def numpy(self) -> HeadCodes:
        """The same codes as a :class:`HeadCodes` (float32 arrays, detached, on the CPU)."""
        return HeadCodes(*(getattr(self, k).detach().float().cpu().numpy() for k in FIELDS))
