"""What a trivial method scores: the references every avatar number stands beside.

Each baseline predicts a test frame from the *training* frames alone, with no network and no choice made on test or
validation frames:

- ``nearest_codes``: the training frame whose tracked codes (expression and head pose) are nearest to the test
  frame's. Codes are standardised per column over the training frames; the expression block and the pose block
  (yaw, pitch, roll, x, y, scale) then each count as much as the other whatever their column counts.
- ``mean_frame``: the per-pixel mean of every training frame.
- ``last_frame``: the last training frame (the frame just before the held-out tail, for a steady clip often the
  strongest of the three).

They are scored on exactly the crops, mattes and metrics the avatar is (``evaluate/run.py``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["BASELINES", "TrivialBaselines", "code_features", "nearest_training_frames"]

#: The trivial baselines, in report order.
BASELINES = ("nearest_codes", "mean_frame", "last_frame")


def code_features(tracking: dict[str, np.ndarray], indices: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (expression, pose) code blocks of frames, as float64 arrays.

    Returns:
        ``(expression (N, E), pose (N, 6))`` with pose = yaw, pitch, roll (degrees), x, y (crop pixels), scale.
    """
    idx = np.asarray(indices, dtype=int)
    expression = np.asarray(tracking["expression"], np.float64)[idx]
    pose = np.concatenate([np.asarray(tracking["euler_deg"], np.float64)[idx],
                           np.asarray(tracking["translation"], np.float64)[idx, :2],
                           np.asarray(tracking["scale"], np.float64)[idx, None]], axis=1)
    return expression, pose


def nearest_training_frames(tracking: dict[str, np.ndarray], train: list[int], query: list[int]) -> list[int]:
    """For each query frame, the training frame with the nearest standardised codes (see the module docstring).

    Raises:
        ValueError: no training frames.
    """
    if not train:
        raise ValueError("nearest_training_frames needs at least one training frame")
    blocks_t, blocks_q = code_features(tracking, train), code_features(tracking, query)
    dist = np.zeros((len(query), len(train)))
    for bt, bq in zip(blocks_t, blocks_q):
        mu, sd = bt.mean(0), bt.std(0)
        sd[sd < 1e-8] = 1.0  # a constant column carries no information; leave it unscaled (it is 0 after centring)
        zt, zq = (bt - mu) / sd, (bq - mu) / sd
        dist += ((zq[:, None, :] - zt[None, :, :]) ** 2).sum(-1) / bt.shape[1]
    return [train[int(k)] for k in dist.argmin(1)]


class TrivialBaselines:
    """Predictions of the trivial baselines for test frames, at the evaluation size.

    Args:
        subject: the :class:`~selfie_avatar.tracking.subject.Subject`.
        size: evaluation side (the avatar's output size; frames are resized as for training).
        train: training frame indices (default: the subject's).
        progress: a progress bar while the training frames are averaged.

    Shape:
        - :meth:`predict` output: :math:`(B, 3, S, S)` RGB in [0, 1] for each baseline name.
    """

    def __init__(self, subject, size: int, train: list[int] | None = None, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        from selfie_avatar.training.data import SubjectFrames

        self.train = list(subject.train_indices if train is None else train)
        if not self.train:
            raise ValueError(f"{subject.root}: no training frames, so no baseline can be formed")
        self.subject, self.size = subject, size
        frames = SubjectFrames(subject, self.train, size, cache=False)
        total = np.zeros((size, size, 3), np.float64)
        for k in tqdm(range(len(frames)), desc="mean training frame", unit="frame", disable=not progress):
            total += frames._load(self.train[k])[0]
        self.mean_frame = torch.from_numpy(total / len(self.train) / 255.0).float().permute(2, 0, 1)
        self.last_index = self.train[-1]
        self._frames = SubjectFrames(subject, self.train, size, cache=True)  # caches only what predict reads

    def _frame(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self._frames._load(i)[0]).permute(2, 0, 1).float() / 255.0

    def sources(self, test: list[int]) -> dict[str, list[int] | None]:
        """Which training frame each frame-copying baseline shows for each test frame (None: a mean image)."""
        return {"nearest_codes": nearest_training_frames(self.subject.tracking, self.train, list(test)),
                "mean_frame": None, "last_frame": [self.last_index] * len(test)}

    def predict(self, test: list[int]) -> dict[str, torch.Tensor]:
        """``{baseline name: (B, 3, S, S)}`` for the test frames ``test``."""
        out = {}
        for name, src in self.sources(test).items():
            out[name] = (self.mean_frame.expand(len(test), -1, -1, -1).clone() if src is None
                         else torch.stack([self._frame(i) for i in src]))
        return out
