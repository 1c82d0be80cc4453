"""A subject's test frames, ready to score any predictor on: the real crops, mattes and landmarks at one size, one
:class:`~selfie_avatar.evaluate.scoring.FrameScorer`, and the trivial baselines scored once.

``evaluate`` scores one checkpoint with it; ``benchmarks/quality.py`` scores a series of snapshots of one run
without recomputing the baselines each time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.baselines import BASELINES, TrivialBaselines
from selfie_avatar.evaluate.scoring import FrameScorer

__all__ = ["TestSet"]

#: ``(render (B, 3, S, S), uv (B, 3, S, S)) -> image (B, 3, S, S) in [-1, 1]``: what a predictor looks like.
RenderFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TestSet:
    """The test frames of ``subject`` at ``size``.

    Args:
        subject: the :class:`~selfie_avatar.tracking.subject.Subject`.
        size: evaluation side (the avatar's output size).
        device: where predictors and metrics run.
        batch_size: frames per batch.
        scorer: the metrics (default: a new :class:`FrameScorer` on ``device``).
        progress: progress bars.

    Attributes:
        frames: the test frame indices (the subject's last frames; they chose nothing).
        baselines: :class:`~selfie_avatar.evaluate.baselines.TrivialBaselines` from the training frames.
        baseline_scores: ``{baseline: {metric: per-frame values}}``, computed once here.

    Raises:
        SelfieAvatarError: the subject has no test frames.
    """

    def __init__(self, subject, size: int, device: torch.device | str = "cpu", batch_size: int = 8,
                 scorer: FrameScorer | None = None, progress: bool = True) -> None:
        from selfie_avatar.training.data import SubjectFrames

        self.frames = subject.test_indices
        if not self.frames:
            raise SelfieAvatarError(f"{subject.root} has no test frames (too few frames with a face); prepare a "
                                    "longer clip to evaluate on")
        self.subject, self.size, self.device, self.batch_size = subject, size, torch.device(device), batch_size
        self.progress = progress
        self.data = SubjectFrames(subject, self.frames, size=size, cache=True)
        self.scorer = scorer or FrameScorer(device)
        self.baselines = TrivialBaselines(subject, size, progress=progress)
        self.baseline_scores: dict[str, dict[str, list[float]]] = {b: {} for b in BASELINES}
        for ks, batch in self.batches(desc="baselines"):
            preds = self.baselines.predict([self.frames[k] for k in ks])
            for b in BASELINES:
                self._add(self.baseline_scores[b], preds[b].to(self.device), batch)

    def landmarks(self, frames: list[int]) -> torch.Tensor:
        """The real frames' tracked landmarks (B, L, 2) in pixels at the evaluation size."""
        lm = np.asarray(self.subject.tracking["landmarks"], np.float32)[frames, :, :2]
        return torch.from_numpy(lm * (self.size / self.subject.size))

    def batches(self, desc: str = "evaluate"):
        """Yield ``(positions, batch)`` over the test frames; batch holds ``image``, ``render``, ``uv``, ``matte``
        on the device and ``landmarks``."""
        from tqdm.auto import tqdm

        n = len(self.frames)
        bar = tqdm(total=n, desc=desc, unit="frame", disable=not self.progress)
        for start in range(0, n, self.batch_size):
            ks = list(range(start, min(start + self.batch_size, n)))
            batch = torch.utils.data.default_collate([self.data[k] for k in ks])
            batch = {k: v.to(self.device) for k, v in batch.items()}
            batch["landmarks"] = self.landmarks([self.frames[k] for k in ks]).to(self.device)
            yield ks, batch
            bar.update(len(ks))
        bar.close()

    def _add(self, into: dict[str, list[float]], pred: torch.Tensor, batch: dict) -> None:
        real = (batch["image"] + 1) / 2
        for m, v in self.scorer(pred.clamp(0, 1), real, batch["matte"], batch["landmarks"]).items():
            into.setdefault(m, []).extend(v.cpu().tolist())

    @torch.no_grad()
    def score(self, render: RenderFn, desc: str = "evaluate",
              keep: bool = False) -> tuple[dict[str, list[float]], list[torch.Tensor]]:
        """Per-frame scores of a predictor on every test frame.

        Args:
            render: the predictor (see :data:`RenderFn`).
            desc: progress-bar label.
            keep: also return the predictions, (3, S, S) in [0, 1] on the CPU, one per test frame.

        Returns:
            ``({metric: per-frame values}, predictions or [])``.
        """
        scores: dict[str, list[float]] = {}
        kept: list[torch.Tensor] = []
        for _, batch in self.batches(desc):
            pred = (render(batch["render"], batch["uv"]) + 1) / 2
            self._add(scores, pred, batch)
            if keep:
                kept += list(pred.clamp(0, 1).cpu())
        return scores, kept

    def real(self, k: int) -> torch.Tensor:
        """The real test frame at position ``k``, (3, S, S) in [0, 1]."""
        return (self.data[k]["image"] + 1) / 2
