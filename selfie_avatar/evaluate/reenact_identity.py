"""Who does a reenacted avatar look like: the subject it was trained on, or the person driving it?

Cross-identity reenactment can leak the driver's identity into the avatar (a wider jaw, the driver's brows). For a
sample of reenacted frames, :func:`reenactment_identity` compares dlib face descriptors
(:class:`~selfie_avatar.evaluate.identity.IdentityMetric`) of

- the avatar frame and the subject (the mean descriptor of up to ``count`` training frames), ``to_subject``;
- the avatar frame and the driving frame it came from, ``to_driver``;
- the driving frame and the subject, ``driver_to_subject``: how alike the two people are anyway, the reference
  that ``to_driver`` should not rise above.

Landmarks of the avatar and driver frames come from MediaPipe's FaceLandmarker on the frames themselves (IMAGE
mode); a frame where it finds no face is left out and counted.
"""

from __future__ import annotations

import numpy as np
import torch

from selfie_avatar.utils.log import get_logger

log = get_logger("evaluate.reenact_identity")

__all__ = ["reenactment_identity", "sample_positions"]


def sample_positions(n: int, count: int) -> list[int]:
    """Up to ``count`` frame positions spread evenly over ``n`` frames."""
    if n <= 0 or count <= 0:
        return []
    return sorted(set(np.linspace(0, n - 1, min(n, count)).round().astype(int).tolist()))


def _points(landmarker, frames: list[np.ndarray]) -> list[np.ndarray | None]:
    return [landmarker.detect(f).points for f in frames]


def _to_tensor(frames: list[np.ndarray], device) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).to(device)


def _mean_ci(values: np.ndarray) -> dict:
    from selfie_avatar.evaluate.stats import summarise

    return summarise(values) | {"frames": int(np.isfinite(values).sum())}


@torch.no_grad()
def reenactment_identity(avatar_frames: list[np.ndarray], driver_frames: list[np.ndarray], subject,
                         count: int = 32, landmarker_path: str | None = None,
                         device: torch.device | str = "cpu") -> dict:
    """Identity similarities of reenacted frames (see the module docstring).

    Args:
        avatar_frames: avatar crops, (S, S, 3) uint8 RGB each.
        driver_frames: the driving frames they were made from, (H, W, 3) uint8 RGB each, same order.
        subject: the :class:`~selfie_avatar.tracking.subject.Subject` the avatar was trained on.
        count: training frames averaged into the subject's descriptor.
        landmarker_path: ``face_landmarker.task`` (default: resolved from the weights folders).
        device: where the descriptor network runs.

    Returns:
        JSON-ready ``{"to_subject", "to_driver", "driver_to_subject": {"mean", "ci95", "frames"},
        "frames_without_face": {"avatar": n, "driver": n}, "leakage": to_driver - driver_to_subject (mean),
        "note"}``.
    """
    from selfie_avatar.evaluate.identity import IdentityMetric
    from selfie_avatar.prepare.landmarks import MediaPipeLandmarker

    if len(avatar_frames) != len(driver_frames):
        raise ValueError(f"{len(avatar_frames)} avatar frames but {len(driver_frames)} driver frames")
    metric = IdentityMetric().to(device).eval()
    train = subject.train_indices
    picks = [train[k] for k in sample_positions(len(train), count)]
    lm = np.asarray(subject.tracking["landmarks"], np.float32)[picks, :, :2]
    subj = metric.embed(_to_tensor([subject.frame(i) for i in picks], device), torch.from_numpy(lm).to(device))
    subj_mean = torch.nn.functional.normalize(subj.mean(0, keepdim=True), dim=1)

    with MediaPipeLandmarker(landmarker_path, video=False, search_rois=True) as landmarker:
        pa, pd = _points(landmarker, avatar_frames), _points(landmarker, driver_frames)

    def embed(frames, points) -> torch.Tensor:
        out = torch.full((len(frames), subj_mean.shape[1]), float("nan"), device=device)
        keep = [k for k, p in enumerate(points) if p is not None]
        if keep:  # frames of one video share one size, so they embed as one batch
            lm = torch.from_numpy(np.stack([points[k][:, :2] for k in keep])).float().to(device)
            out[keep] = metric.embed(_to_tensor([frames[k] for k in keep], device), lm)
        return out

    ea, ed = embed(avatar_frames, pa), embed(driver_frames, pd)
    cos = lambda a, b: (a * b).sum(1).cpu().numpy()  # noqa: E731  both are unit vectors (NaN where no face)
    to_subject, to_driver = cos(ea, subj_mean.expand_as(ea)), cos(ea, ed)
    driver_to_subject = cos(ed, subj_mean.expand_as(ed))
    report = {
        "to_subject": _mean_ci(to_subject), "to_driver": _mean_ci(to_driver),
        "driver_to_subject": _mean_ci(driver_to_subject),
        "frames_without_face": {"avatar": sum(p is None for p in pa), "driver": sum(p is None for p in pd)},
        "note": "cosine similarity of dlib face descriptors; the subject is the mean of "
                f"{len(picks)} training frames; landmarks by MediaPipe on each frame",
    }
    report["leakage"] = float(np.nanmean(to_driver) - np.nanmean(driver_to_subject)) \
        if np.isfinite(to_driver).any() and np.isfinite(driver_to_subject).any() else None
    return report
