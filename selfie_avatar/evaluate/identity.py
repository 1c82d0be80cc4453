"""Identity metric: does the avatar still look like the person? dlib's face descriptor on aligned face chips.

Each frame's face is cut out as dlib frames it (:func:`~selfie_avatar.evaluate.face_align.align_faces`, from the
MediaPipe landmarks prepare already has) and embedded by dlib's ResNet
(:class:`~selfie_avatar.evaluate.face_recognition.FaceRecognitionNet`). Two numbers come out:

- cosine similarity of the L2-normalised descriptors (1 = same direction), the metric's main output;
- dlib's Euclidean distance of the raw descriptors, whose published rule reads directly: below 0.6, the same
  person (dlib reports 99.38% on LFW with it).

A generated frame is rendered at its real frame's tracked pose, so by default both are cropped with the real frame's
landmarks: the comparison is then between the two images alone, not between two landmark detections.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.evaluate.face_align import align_faces
from selfie_avatar.evaluate.face_recognition import DESCRIPTOR_DIM, load_face_recognition_net

# dlib's threshold on the Euclidean distance of two raw descriptors: below it, the same person.
DLIB_SAME_PERSON_DISTANCE = 0.6


def same_person(distance: torch.Tensor, threshold: float = DLIB_SAME_PERSON_DISTANCE) -> torch.Tensor:
    """dlib's decision from descriptor distances: ``distance < threshold`` (NaN, a frame without a face: False)."""
    return distance < threshold


def describe_distance(distance: float, threshold: float = DLIB_SAME_PERSON_DISTANCE) -> str:
    """One distance in words, for reports: ``'0.41 (same person by dlib's < 0.6 rule)'``."""
    if distance != distance:  # NaN
        return "n/a (no face)"
    verdict = "same person" if distance < threshold else "different people"
    return f"{distance:.2f} ({verdict} by dlib's < {threshold:g} rule)"


class IdentityMetric(nn.Module):
    """Identity similarity between generated and real frames (dlib's face descriptor; weights from face-api).

    Gradients flow to the images (the network's own parameters are frozen), so it can also serve as a loss; wrap
    calls in ``torch.no_grad()`` for evaluation. Frames whose landmarks hold NaN (no face) give NaN.

    Args:
        weights: ``face_recognition_model.bin`` (default: resolved like every model file).
        manifest: its ``face_recognition_model-weights_manifest.json`` (default: beside ``weights``, else
            resolved).

    Raises:
        AssetMissingError: a weights file is not found.
        WeightsFileError: a weights file is truncated, corrupt or another model's.

    Shape:
        - fake, real: :math:`(B, 3, H, W)` in [0, 1] (the two may differ in size when both landmark sets are
          given).
        - landmarks: :math:`(B, 478, 2)` or :math:`(B, 478, 3)` MediaPipe points in pixels of their images (or
          :math:`(B, 5, 2)` dlib points).
        - Output: :math:`(B,)`.

    Example:
        >>> metric = IdentityMetric()                                        # doctest: +SKIP
        >>> sim = metric(fake, real, landmarks)                              # doctest: +SKIP
        >>> dist = metric.distance(fake, real, landmarks)                    # doctest: +SKIP
    """

    def __init__(self, weights: str | os.PathLike | None = None, manifest: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.net = load_face_recognition_net(weights, manifest)

    def descriptors(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """dlib's raw descriptors (not normalised; their distances are the ones dlib's 0.6 rule is about).

        Args:
            images: frames in [0, 1].
            landmarks: their face landmarks, in pixels.

        Returns:
            One descriptor per frame; NaN rows where the landmarks are not finite.

        Shape:
            - images: :math:`(B, 3, H, W)`; landmarks: :math:`(B, 478, 2|3)` or :math:`(B, 5, 2|3)`.
            - Output: :math:`(B, 128)`.
        """
        _check_images(images, "images")
        if landmarks.ndim != 3 or landmarks.shape[0] != images.shape[0]:
            raise ValueError(f"landmarks must be (B, 478, 2|3) with B = {images.shape[0]} (one set per image), got "
                             f"{tuple(landmarks.shape)}")
        landmarks = landmarks.to(images.device)
        ok = torch.isfinite(landmarks[..., :2]).flatten(1).all(1)
        out = torch.full((images.shape[0], DESCRIPTOR_DIM), float("nan"), device=images.device)
        if ok.any():
            chips = align_faces(images[ok].float().clamp(0, 1), landmarks[ok].float())
            out[ok] = self.net(chips)
        return out

    def embed(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """L2-normalised descriptors (:meth:`descriptors` scaled to unit length).

        Shape:
            - images: :math:`(B, 3, H, W)` in [0, 1]; landmarks: :math:`(B, 478, 2|3)`.
            - Output: :math:`(B, 128)`, unit rows (NaN where there is no face).
        """
        return F.normalize(self.descriptors(images, landmarks), dim=1)

    def forward(self, fake: torch.Tensor, real: torch.Tensor, landmarks_fake: torch.Tensor,
                landmarks_real: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine similarity of the identity embeddings of generated and real frames.

        Args:
            fake: generated frames.
            real: the real frames they should match.
            landmarks_fake: landmarks to crop ``fake`` with; for a generated frame, its real frame's tracked
                landmarks (it was rendered at that pose).
            landmarks_real: landmarks to crop ``real`` with (default: ``landmarks_fake``).

        Returns:
            Per-frame similarity in [-1, 1]. dlib's descriptors all lie in one cone, so the range used is narrow:
            on the shared test clips, frames of one person gave 0.92-1.00 (median 0.97), frames of two people
            0.83-0.94 (median 0.86-0.90). :meth:`distance` is the easier number to read.

        Shape:
            - fake, real: :math:`(B, 3, H, W)`; landmarks: :math:`(B, 478, 2|3)`.
            - Output: :math:`(B,)`.
        """
        e_fake, e_real = self._pair(fake, real, landmarks_fake, landmarks_real, self.embed)
        return (e_fake * e_real).sum(1)

    def distance(self, fake: torch.Tensor, real: torch.Tensor, landmarks_fake: torch.Tensor,
                 landmarks_real: torch.Tensor | None = None) -> torch.Tensor:
        """dlib's Euclidean descriptor distance (same person below 0.6: :func:`same_person`).

        Args and shapes as :meth:`forward`.

        Returns:
            Per-frame distance (0 = identical descriptors).
        """
        d_fake, d_real = self._pair(fake, real, landmarks_fake, landmarks_real, self.descriptors)
        return (d_fake - d_real).norm(dim=1)

    def _pair(self, fake, real, landmarks_fake, landmarks_real, fn) -> tuple[torch.Tensor, torch.Tensor]:
        _check_images(fake, "fake")
        _check_images(real, "real")
        if landmarks_real is None:
            if fake.shape != real.shape:
                raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ in size; pass "
                                 f"landmarks_real for the real frames")
            landmarks_real = landmarks_fake
        if fake.shape[0] != real.shape[0]:
            raise ValueError(f"fake has {fake.shape[0]} frames and real {real.shape[0]}; they are compared in pairs")
        return fn(fake, landmarks_fake), fn(real, landmarks_real)


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be (B, 3, H, W) RGB in [0, 1], got {shape}")
