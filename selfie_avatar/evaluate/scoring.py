"""Scoring predictions of test frames: every metric, per frame, for the avatar and for every reference alike.

:class:`FrameScorer` is the one place the metrics are computed, so the avatar, the trivial baselines and the untrained
network are measured on exactly the same crops, mattes and metrics:

========  =============================================================================================
metric    source
========  =============================================================================================
l1        mean absolute error in [0, 1] (torch)
psnr      ``kornia.metrics.psnr`` per frame
ssim      ``kornia.metrics.ssim`` (11 x 11 Gaussian window), mean of the map
lpips     ``lpips`` 0.1.4's v0.1 heads on the ImageNet AlexNet trunk (``evaluate/metrics.py``)
identity  cosine similarity of dlib's 128-d face descriptors of the predicted and the real frame, both aligned
          with the real frame's tracked landmarks (``evaluate/identity.py``)
fg_*      the same, restricted to the foreground: L1, PSNR and SSIM weighted by the real frame's matte, LPIPS of
          both images multiplied by the matte
========  =============================================================================================

A metric whose model file is missing is left out, and :attr:`FrameScorer.notes` says why; it is never computed
from random weights.
"""

from __future__ import annotations

import torch

from selfie_avatar.evaluate.metrics import frame_metrics, lpips_status
from selfie_avatar.utils.log import get_logger

log = get_logger("evaluate")

__all__ = ["HIGHER_IS_BETTER", "METRIC_ORDER", "FrameScorer", "identity_status"]

#: Direction of every metric (True: higher is better).
HIGHER_IS_BETTER = {"l1": False, "psnr": True, "ssim": True, "lpips": False, "identity": True,
                    "fg_l1": False, "fg_psnr": True, "fg_ssim": True, "fg_lpips": False, "untrained_psnr": True}
#: Report order.
METRIC_ORDER = ("l1", "psnr", "ssim", "lpips", "identity", "fg_l1", "fg_psnr", "fg_ssim", "fg_lpips")


def identity_status() -> tuple[bool, str]:
    """Whether the identity metric can be computed here, and why not (its two model files)."""
    from selfie_avatar.assets.registry import ASSETS, asset_status

    for name in ("face_recognition", "face_recognition_manifest"):
        if name not in ASSETS:
            return False, f"this version has no {name} model file registered"
        if not asset_status(name).found:
            return False, (f"the face descriptor file {ASSETS[name].filename} is not installed; "
                           "`selfie-avatar weights --fetch` installs it (npm @vladmandic/face-api)")
    return True, "dlib face descriptor (ResNet-29, via @vladmandic/face-api)"


class FrameScorer:
    """Per-frame metrics of predicted test frames against the real ones.

    Args:
        device: where the LPIPS and face-descriptor networks run.
        lpips: compute LPIPS when its trunk is installed.
        identity: compute the identity similarity when the face descriptor is installed.

    Attributes:
        notes: ``{"lpips": ..., "identity": ...}``: the source of each network metric, or why it is missing.
        metrics: the metric names this scorer returns, in report order.

    Shape:
        - pred, real: :math:`(B, 3, S, S)` RGB in [0, 1]; matte: :math:`(B, 1, S, S)`; landmarks: :math:`(B, L, 2)`
          pixel coordinates of the real frames at size S (only used by the identity metric).
        - Output: ``{metric: (B,)}``.
    """

    def __init__(self, device: torch.device | str = "cpu", lpips: bool = True, identity: bool = True) -> None:
        self.notes: dict[str, str] = {}
        self.lpips = self.identity = None
        ok, note = lpips_status() if lpips else (False, "not requested")
        if ok:
            from selfie_avatar.evaluate.metrics import LPIPSMetric

            self.lpips = LPIPSMetric().to(device)
            note = f"lpips v0.1 heads, AlexNet trunk from {self.lpips.path}"
        self.notes["lpips"] = note
        ok, note = identity_status() if identity else (False, "not requested")
        if ok:
            from selfie_avatar.evaluate.identity import IdentityMetric

            self.identity = IdentityMetric().to(device)
        self.notes["identity"] = note
        for name, metric in (("lpips", self.lpips), ("identity", self.identity)):
            if metric is None:
                log.warning("%s not computed: %s", name, self.notes[name])
        available = {"l1", "psnr", "ssim", "fg_l1", "fg_psnr", "fg_ssim"}
        available |= {"lpips", "fg_lpips"} if self.lpips is not None else set()
        available |= {"identity"} if self.identity is not None else set()
        self.metrics = tuple(m for m in METRIC_ORDER if m in available)

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, real: torch.Tensor, matte: torch.Tensor,
                 landmarks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = frame_metrics(pred, real, matte)
        if self.lpips is not None:
            out["lpips"] = self.lpips(pred, real)
            out["fg_lpips"] = self.lpips(pred * matte, real * matte)
        if self.identity is not None:
            if landmarks is None:
                raise ValueError("the identity metric needs the real frames' landmarks")
            out["identity"] = self.identity(pred.clamp(0, 1), real, landmarks)
        return {k: out[k] for k in self.metrics}
