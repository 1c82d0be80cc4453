"""One stable square crop per video around the head, with room for hair and neck (as StyleAvatar does).

The crop is fixed for the whole clip, so the background stays still in crop space and outputs can be pasted back
into the full frame with the saved box. ``prepare`` keeps it inside the video frame (shrinking it when the wanted
side does not fit), because pixels from outside are not data: replicating the border smears whatever touches the
frame's edge (a hair tie, a shoulder) across the padding, changing from frame to frame, and on a selfie clip that
was close to half the crop. :func:`crop_frame` still replicates the border for a box that reaches outside (``prepare
--no-crop-inside``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from selfie_avatar.tracking.status import face_extent


@dataclass(frozen=True)
class CropBox:
    """Square crop in source-frame pixels: top-left (x0, y0) and side; ``size`` is the output side."""

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Output pixels per source pixel."""
        return self.size / self.side

    def to_dict(self) -> dict:
        return asdict(self)

    def with_size(self, size: int) -> "CropBox":
        """The same region of the frame, cut out at another output side."""
        return CropBox(self.x0, self.y0, self.side, int(size))

    def affine(self) -> np.ndarray:
        """(2, 3) matrix mapping source pixel coordinates to crop pixel coordinates."""
        s = self.scale
        return np.array([[s, 0, -self.x0 * s], [0, s, -self.y0 * s]], dtype=np.float64)

    def points_to_crop(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) source pixels (x, y, z) -> crop pixels; z is scaled like x and y."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.x0) * self.scale
        out[..., 1] = (out[..., 1] - self.y0) * self.scale
        out[..., 2] = out[..., 2] * self.scale
        return out

    def points_to_frame(self, points: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`points_to_crop` for (..., 2 or 3) points."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = out[..., 0] / self.scale + self.x0
        out[..., 1] = out[..., 1] / self.scale + self.y0
        if out.shape[-1] > 2:
            out[..., 2] = out[..., 2] / self.scale
        return out


def compute_crop(points: np.ndarray, valid: np.ndarray, size: int, crop_scale: float = 2.0,
                 shift_y: float = -0.10, frame_size: tuple[int, int] | None = None) -> CropBox:
    """The crop for a clip.

    Args:
        points: (N, L, >=2) landmarks in source pixels.
        valid: (N,) frames to use.
        size: output side in pixels.
        crop_scale: crop side as a multiple of the face extent (the 90th percentile over frames, so the crop
            fits the face when it is largest, not on average).
        shift_y: vertical shift of the centre as a fraction of the side (negative = up, towards the hair).
        frame_size: ``(width, height)`` of the video: the box is then kept inside the frame, its side at most
            the frame's shorter side and its centre moved as little as keeps it inside. ``None``: anywhere.

    The centre is the median landmark-box centre, widened by how far the face wanders so it stays inside.

    Raises:
        ValueError: no valid frame, or a frame size that is not positive.
    """
    p = points[valid][..., :2]
    if len(p) == 0:
        raise ValueError("no valid frames to compute a crop from")
    lo, hi = p.min(1), p.max(1)
    centres = (lo + hi) / 2
    extent = float(np.percentile(face_extent(p), 90))
    centre = np.median(centres, axis=0)
    wander = np.percentile(np.abs(centres - centre), 95, axis=0).max()
    side = crop_scale * extent + 2 * wander
    cx, cy = centre[0], centre[1] + shift_y * side
    box = CropBox(float(cx - side / 2), float(cy - side / 2), float(side), int(size))
    return box if frame_size is None else fit_inside(box, *frame_size)


def fit_inside(box: CropBox, width: int, height: int) -> CropBox:
    """``box`` moved (and, if it is larger than the frame's shorter side, shrunk about its centre) to lie inside
    a ``width`` x ``height`` frame.

    Raises:
        ValueError: a frame size that is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    side = min(box.side, float(width), float(height))
    cx, cy = box.x0 + box.side / 2, box.y0 + box.side / 2
    x0 = min(max(cx - side / 2, 0.0), width - side)
    y0 = min(max(cy - side / 2, 0.0), height - side)
    return CropBox(float(x0), float(y0), float(side), box.size)


def outside_fraction(box: CropBox, width: int, height: int) -> float:
    """Fraction of the crop's area that lies outside a ``width`` x ``height`` frame (padding, not data)."""
    w = max(0.0, min(box.x0 + box.side, width) - max(box.x0, 0.0))
    h = max(0.0, min(box.y0 + box.side, height) - max(box.y0, 0.0))
    return float(1.0 - w * h / box.side ** 2)


def crop_frame(frame: np.ndarray, box: CropBox, interpolation: int | None = None) -> np.ndarray:
    """Cut and resize the crop out of a frame in one resampling step. (H, W, C) -> (size, size, C)."""
    if interpolation is None:
        interpolation = cv2.INTER_AREA if box.scale < 1 else cv2.INTER_LINEAR
    if interpolation == cv2.INTER_AREA:
        # warpAffine has no area filter; pre-shrink by an integer factor, then warp the rest of the way.
        f = int(1 / box.scale)
        if f >= 2:
            small = cv2.resize(frame, (frame.shape[1] // f, frame.shape[0] // f), interpolation=cv2.INTER_AREA)
            sx, sy = frame.shape[1] / small.shape[1], frame.shape[0] / small.shape[0]
            box_small = CropBox(box.x0 / sx, box.y0 / sy, box.side / sx, box.size)
            return cv2.warpAffine(small, box_small.affine(), (box.size, box.size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        interpolation = cv2.INTER_LINEAR
    return cv2.warpAffine(frame, box.affine(), (box.size, box.size), flags=interpolation,
                          borderMode=cv2.BORDER_REPLICATE)


def paste_back(frame: np.ndarray, crop: np.ndarray, box: CropBox, feather: float = 0.04) -> np.ndarray:
    """Paste a (size, size, 3) crop back into a full frame, blending over a soft border of ``feather`` * side."""
    h, w = frame.shape[:2]
    inv = cv2.invertAffineTransform(box.affine())
    warped = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    ramp = max(int(feather * box.size), 1)
    a = np.ones((box.size, box.size), np.float32)
    lin = np.linspace(0, 1, ramp + 2, dtype=np.float32)[1:-1]
    a[:ramp] *= lin[:, None]
    a[-ramp:] *= lin[::-1, None]
    a[:, :ramp] *= lin[None]
    a[:, -ramp:] *= lin[None, ::-1]
    alpha = cv2.warpAffine(a, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    return (alpha * warped + (1 - alpha) * frame).round().clip(0, 255).astype(np.uint8)
