"""Face chips framed the way dlib's face descriptor expects them, from MediaPipe's landmarks, in batched torch.

dlib's ``get_face_chip(img, shape, size=150, padding=0.25)`` fits a similarity transform (rotation, uniform
scale, shift) from five landmarks to a fixed template: the outer and inner corners of both eyes and the base of
the nose. The network was trained on chips made that way, so the same five points are taken from MediaPipe's 478:
each of the five MediaPipe points below is, on real faces, within 1-3 chip pixels (median) of where dlib's own
5-point predictor puts its point; those are MediaPipe's mirror-symmetric eye-corner pairs (33/263, 133/362) and the
subnasale (2). Other nearby choices (382/155, 398/173, nose 164 or 94) separate people no better. On real footage
these chips give descriptors that tell people apart as well as dlib's own detector, predictor and chips do.

Each chip pixel is sampled bilinearly at its centre (averaged over a finer grid where the face shrinks 1.5x or
more). dlib samples a 2x image pyramid when it shrinks a face by more than 2x, and its chips then sit about
(0.3, 0.7) chip pixels off the exact transform; that offset is not copied (with the pyramid blur it moves
descriptors by ~0.04, well inside one person's spread).

Pixel conventions: landmarks follow the toolkit's (pixel (i, j) is sampled at (j + 0.5, i + 0.5)); dlib puts
pixel centres on integers, so the template is fitted in dlib's frame and shifted by half a pixel on both sides.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's 5-point template on the unit square (image_transforms/interpolation.h, get_face_chip_details), in the order
# of its 5-point predictor: image-right eye outer and inner corner, image-left eye outer and inner corner, nose base.
DLIB_TEMPLATE_5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
# The same five points among MediaPipe's face-mesh landmarks (the subject's left eye is on the image's right).
MEDIAPIPE_TO_DLIB_5 = (263, 362, 33, 133, 2)
NUM_MEDIAPIPE = 478
# Past this much downscaling, bilinear sampling would skip pixels; chips are then averaged from a finer grid.
MAX_SUPERSAMPLE = 4


def chip_template(size: int = CHIP_SIZE, padding: float = CHIP_PADDING, device=None, dtype=torch.float32,
                  ) -> torch.Tensor:
    """dlib's five template points in chip pixels, in the toolkit's convention (pixel centres at +0.5).

    Returns:
        (5, 2) x, y.
    """
    t = torch.tensor(DLIB_TEMPLATE_5, dtype=torch.float64)
    return ((padding + t) / (2 * padding + 1) * size + 0.5).to(device=device, dtype=dtype)


def five_points(landmarks: torch.Tensor) -> torch.Tensor:
    """dlib's five alignment points from MediaPipe's 478 (or the five themselves, passed through).

    Args:
        landmarks: (B, 478, 2 or 3) MediaPipe landmarks, or (B, 5, 2 or 3) points in dlib's 5-point order.

    Returns:
        (B, 5, 2) x, y.
    """
    if landmarks.ndim != 3 or landmarks.shape[1] not in (NUM_MEDIAPIPE, 5) or landmarks.shape[2] not in (2, 3):
        raise ValueError(f"landmarks must be (B, {NUM_MEDIAPIPE}, 2|3) MediaPipe points or (B, 5, 2|3) dlib points, "
                         f"got {tuple(landmarks.shape)}")
    pts = landmarks[..., :2]
    return pts if pts.shape[1] == 5 else pts[:, list(MEDIAPIPE_TO_DLIB_5)]


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``src`` to ``dst``.

    In 2-D Umeyama's solution (what dlib's ``find_similarity_transform`` computes) has a closed form: with both
    point sets centred, scale * rotation is ``[[a, -b], [b, a]]`` with ``a = sum(s . d) / sum|s|^2`` and
    ``b = sum(s x d) / sum|s|^2``.

    Args:
        src: (B, N, 2) or (N, 2) points.
        dst: (B, N, 2) points.

    Returns:
        (B, 2, 3) affine matrices ``[A | t]`` with ``dst ~ src @ A.T + t``.
    """
    src = src.expand_as(dst)
    ms, md = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - ms, dst - md
    norm = (s ** 2).sum((1, 2)).clamp_min(1e-12)
    a = (s * d).sum((1, 2)) / norm
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / norm
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)  # (B, 2, 2)
    t = md[:, 0] - (rot @ ms[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[..., None]], -1)


def align_faces(images: torch.Tensor, landmarks: torch.Tensor, size: int = CHIP_SIZE,
                padding: float = CHIP_PADDING) -> torch.Tensor:
    """Cut dlib-style aligned face chips out of frames.

    The chip-to-frame transform is fitted on the five points (:func:`five_points`); each chip pixel is then
    sampled bilinearly at its place in the frame (zeros outside it). Where the chip shrinks the face by more than
    1.5x, each pixel averages a k x k grid of samples (k up to 4), as dlib samples from an image pyramid there.

    Args:
        images: frames in [0, 1].
        landmarks: MediaPipe landmarks (or dlib's five points) in pixels of ``images``.
        size: chip side in pixels (150 for dlib's descriptor).
        padding: border around the template, as a fraction of it (0.25 for dlib's descriptor).

    Returns:
        The chips, same dtype as ``images``.

    Shape:
        - images: :math:`(B, 3, H, W)`; landmarks: :math:`(B, 478, 2)` (or ``3``: depth is ignored, or ``5``
          points).
        - Output: :math:`(B, 3, size, size)`.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    pts = five_points(landmarks)
    if pts.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {pts.shape[0]} landmark sets")
    if not torch.isfinite(pts).all():
        raise ValueError("landmarks hold NaN or inf (a frame without a detected face?)")
    h, w = images.shape[2:]
    # float32 throughout (MPS has no float64); at 150 px chips its rounding is far below a pixel.
    pts = pts.to(device=images.device, dtype=torch.float32)
    chip_to_frame = similarity_transform(chip_template(size, padding, images.device), pts)
    scale = torch.linalg.det(chip_to_frame[:, :, :2]).abs().sqrt()  # frame pixels per chip pixel
    k = int(min(MAX_SUPERSAMPLE, max(1, math.floor(float(scale.max()) + 0.5))))
    # Sample positions of a k-times finer grid, in chip pixels (toolkit convention), then in frame pixels.
    u = (torch.arange(size * k, device=images.device, dtype=torch.float32) + 0.5) / k
    gy, gx = torch.meshgrid(u, u, indexing="ij")
    grid = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)
    xy = grid @ chip_to_frame.transpose(1, 2)  # (B, P, 2)
    norm = torch.stack([xy[..., 0] / w, xy[..., 1] / h], -1) * 2 - 1  # align_corners=False: edges at -1 and 1
    norm = norm.reshape(-1, size * k, size * k, 2).to(images.dtype)
    chips = F.grid_sample(images, norm, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(chips, k) if k > 1 else chips
