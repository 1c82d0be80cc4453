"""How good and how fast a trained encoder is, beside the references it must beat.

On the subject's held-out frames (and a sample of its training frames, which shows fit vs generalisation):

    encoder                its predictions from the un-augmented crops
    constant_mean          one prediction for every frame: the training frames' mean codes (rotation: the mean
                           matrix projected onto SO(3)); an encoder that does not beat it has learned nothing
    tracked_no_pca         the tracked codes themselves with the PCA codes zeroed: the floor of the landmark error
                           any 52-score prediction can reach with this face model
    tracker                the fitting tracker's own landmark error (``tracking.npz`` ``error_px``, detected frames)

Errors per frame: rotation (geodesic angle, degrees), scale (percent), translation (crop pixels), expression (mean
absolute error of the 52 scores), landmarks (mean 2D distance of the reprojected model landmarks to the tracked
ones, crop pixels). Pixels are those of the subject's crop, the tracker's unit, whatever size the encoder ran at.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import Tensor

from selfie_avatar.face_model import FaceModel, NUM_BLENDSHAPES
from selfie_avatar.models.encoder import CodeEncoder
from selfie_avatar.tracking.codes import TorchCodes
from selfie_avatar.tracking.pose import posed_landmarks
from selfie_avatar.geometry.rotation import matrix_to_axis_angle, orthonormalize
from selfie_avatar.utils.timing import calls_per_second

__all__ = ["predict_relative", "model_landmarks", "code_errors", "constant_mean", "encoder_fps", "tracker_speed",
           "heldout_report", "METRICS"]

METRICS = ("rotation_deg", "scale_pct", "translation_px", "expression_mae", "landmark_px")


@torch.no_grad()
def predict_relative(encoder: CodeEncoder, images: Tensor, device: torch.device, batch_size: int = 64
                     ) -> TorchCodes:
    """Relative codes (see :meth:`CodeEncoder.forward_relative`) of uint8 crops (N, 3, S, S), on the CPU."""
    encoder = encoder.eval()
    parts = [encoder.forward_relative(images[a:a + batch_size].to(device).float() / 127.5 - 1).to("cpu")
             for a in range(0, len(images), batch_size)]
    return TorchCodes.concat(parts)


def model_landmarks(face_model: FaceModel, codes: TorchCodes, num_landmarks: int) -> Tensor:
    """Projected model landmarks for codes holding 52 blendshape scores, every other code (the subject's PCA)
    zero.

    Args:
        face_model: the subject's face model.
        codes: pose in any consistent unit (relative pose gives relative points) and 52 blendshape scores.
        num_landmarks: leading landmarks kept (those the tracked landmarks hold for the mesh).

    Returns:
        2D landmark positions.

    Shape:
        - codes: rotation :math:`(B, 3, 3)`; scale :math:`(B,)`; translation :math:`(B, 2)`; expression :math:`(B, 52)`
        - output: :math:`(B, L, 2)`
    """
    scores = codes.expression
    if scores.dim() != 2 or scores.shape[1] != NUM_BLENDSHAPES:
        raise ValueError(f"scores must be (B, {NUM_BLENDSHAPES}), got {tuple(scores.shape)}")
    expression = scores.new_zeros(scores.shape[0], face_model.num_expression)
    expression[:, :NUM_BLENDSHAPES] = scores
    return posed_landmarks(face_model, TorchCodes(codes.rotation, codes.scale, codes.translation, expression),
                           num_landmarks)


@torch.no_grad()
def code_errors(pred: TorchCodes, target: dict[str, Tensor], face_model: FaceModel, crop_px: float
                ) -> dict[str, np.ndarray]:
    """Per-frame errors of relative codes ``pred`` against ``target`` (fields of :func:`load_codes`).

    Args:
        pred: relative pose and 52 scores, N frames.
        target: ``rotation``, ``scale``, ``translation``, ``expression`` (relative pose) and ``landmarks``
            (N, L, 2), relative.
        face_model: the subject's face model (on the CPU).
        crop_px: side of the crop the pixel errors are reported in.

    Returns:
        {metric: (N,) array} for :data:`METRICS`.
    """
    rel_rot = pred.rotation.transpose(-1, -2) @ target["rotation"]
    lm = model_landmarks(face_model, TorchCodes(pred.rotation, pred.scale, pred.translation,
                                                pred.expression[:, :NUM_BLENDSHAPES]), target["landmarks"].shape[1])
    return {
        "rotation_deg": torch.rad2deg(matrix_to_axis_angle(rel_rot).norm(dim=-1)).numpy(),
        "scale_pct": (100 * (pred.scale / target["scale"] - 1).abs()).numpy(),
        "translation_px": ((pred.translation - target["translation"]).norm(dim=-1) * crop_px).numpy(),
        "expression_mae": (pred.expression[:, :NUM_BLENDSHAPES] - target["expression"]).abs().mean(-1).numpy(),
        "landmark_px": ((lm - target["landmarks"]).norm(dim=-1).mean(-1) * crop_px).numpy(),
    }


def constant_mean(train: dict[str, Tensor], n: int) -> TorchCodes:
    """The same prediction for ``n`` frames: the mean of the training codes (rotation projected onto SO(3))."""
    rot = orthonormalize(train["rotation"].double().mean(0)).float()
    return TorchCodes(rot.expand(n, 3, 3).clone(), train["scale"].mean().expand(n).clone(),
                      train["translation"].mean(0).expand(n, 2).clone(),
                      train["expression"].mean(0).expand(n, -1).clone())


@torch.no_grad()
def encoder_fps(encoder: CodeEncoder, size: int, device: torch.device, repeats: int = 50, warmup: int = 5) -> float:
    """Frames per second of the network at batch 1 (one crop in, its codes out), synchronised on CUDA."""
    encoder = encoder.eval()
    x = torch.zeros(1, 3, size, size, device=device)
    return calls_per_second(lambda: encoder(x), repeats, warmup, device)


def tracker_speed(meta: dict) -> dict[str, float | str | None]:
    """The landmark-and-fit path's cost per frame, from the subject's ``meta.json`` (what ``prepare`` measured).

    Landmark detection runs per frame; the pose / rig fit runs once over the clip, so its share per frame is an
    amortised figure, not a streaming one. The whole of ``prepare`` (decoding, matting, rendering, writing) is
    given beside it.
    """
    t = meta.get("timings_s") or {}
    n = int(meta.get("num_frames") or 0)
    per = (t.get("landmarks", 0.0) + t.get("tracking", 0.0)) / n if n and ("landmarks" in t) else None
    return {"tracker_seconds_per_frame": per, "tracker_frames_per_second": 1.0 / per if per else None,
            "prepare_frames_per_second": meta.get("frames_per_second"),
            "tracker_note": "meta.json timings_s (landmarks + tracking) / num_frames, as measured by prepare on its "
                            "machine; tracking is a whole-clip fit, amortised per frame"}


def _means(errors: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in errors.items()}


def heldout_report(encoder: CodeEncoder, subject, train: dict[str, Tensor], face_model: FaceModel, size: int,
                   device: torch.device, max_train_frames: int = 256, progress: bool = False) -> dict:
    """The encoder's errors on the held-out frames and on a sample of training frames, beside the references of
    the module docstring, and its speed beside the tracker's.

    Args:
        encoder: the trained network (on ``device``).
        subject: the :class:`~selfie_avatar.tracking.subject.Subject` it was trained on.
        train: the training frames' :func:`~selfie_avatar.training.encoder_data.load_codes` dict.
        face_model: the subject's face model, on the CPU.
        size: the encoder's input side.
        device: where the encoder runs.
        max_train_frames: training frames evaluated (evenly spaced).
        progress: progress bar while held-out frames are decoded.

    Returns:
        A JSON-ready dict: ``heldout`` and ``train`` ({predictor: {metric: mean}}), ``per_frame`` (held-out encoder
        errors), ``frames``, ``speed``, ``size``, ``crop_px``.
    """
    from selfie_avatar.training.encoder_data import load_codes

    crop_px = float(subject.size)
    tr = subject.tracking
    pick = np.unique(np.linspace(0, len(train["image"]) - 1, min(max_train_frames, len(train["image"]))).round()
                     .astype(int))
    sample = {k: v[pick] for k, v in train.items()}
    report: dict = {"size": size, "crop_px": crop_px,
                    "frames": {"heldout": [], "train_sample": len(pick)}, "heldout": None, "per_frame": None}
    report["train"] = {
        "encoder": _means(code_errors(predict_relative(encoder, sample["image"], device), sample, face_model,
                                      crop_px)),
        "constant_mean": _means(code_errors(constant_mean(train, len(pick)), sample, face_model, crop_px)),
    }
    held = subject.test_indices  # the encoder chose nothing on them either
    if held:
        target = load_codes(subject, held, size, train["landmarks"].shape[1], progress)
        idx = target["frame_index"].numpy()
        enc = code_errors(predict_relative(encoder, target["image"], device), target, face_model, crop_px)
        floor = code_errors(TorchCodes.of(target), target, face_model, crop_px)["landmark_px"]
        err = tr["error_px"][idx]
        report["frames"]["heldout"] = idx.tolist()
        report["heldout"] = {
            "encoder": _means(enc),
            "constant_mean": _means(code_errors(constant_mean(train, len(idx)), target, face_model, crop_px)),
            "tracked_no_pca": {"landmark_px": float(np.mean(floor))},
            "tracker": {"landmark_px": float(np.nanmean(err)) if np.isfinite(err).any() else None,
                        "frames_detected": int(np.isfinite(err).sum())},
        }
        report["per_frame"] = {k: v.tolist() for k, v in enc.items()}
    report["speed"] = {"encoder_frames_per_second": encoder_fps(encoder, size, device), "batch": 1,
                       "device": str(device), "cpu_threads": torch.get_num_threads(), **tracker_speed(subject.meta)}
    return report
