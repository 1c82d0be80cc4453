"""The built-in sample: a short, seeded "selfie" clip made from a real public-domain face photo.

scikit-image ships NASA's public-domain portrait of astronaut Eileen Collins. We track its face mesh once, then
for every frame move the mesh in 3D (smooth head rotation) and deform it like an expression would (jaw opening,
brows raising, smiling, blinking), and warp the photo through the mesh: a piecewise-affine warp over a
triangulation of the face landmarks plus rings around the head and the fixed image border, drawn with the
project's own rasteriser. It lets everything run with no footage of one's own. It is a sample, not a benchmark:
the motion is synthetic and the "person" never changes lighting or shows teeth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay

from selfie_avatar.config import SampleConfig
from selfie_avatar.errors import NoFaceError
from selfie_avatar.io.video_writer import VideoWriter
from selfie_avatar.prepare.landmarks import MediaPipeLandmarker
from selfie_avatar.render.rasterize import interpolate, rasterize
from selfie_avatar.geometry.rotation import euler_to_matrix

MOUTH_UPPER, MOUTH_LOWER, MOUTH_RIGHT, MOUTH_LEFT = 13, 14, 61, 291
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
BROWS = ((46, 52, 53, 55, 63, 65, 66, 70, 105, 107), (276, 282, 283, 285, 293, 295, 296, 300, 334, 336))
EYES = ((159, 145), (386, 374))  # (upper lid centre, lower lid centre): right eye, left eye
FACE_VERTS = 468


def sample_photo() -> np.ndarray:
    """The public-domain portrait (512x512 RGB uint8) that the sample animates."""
    import skimage.data

    return skimage.data.astronaut()


@dataclass
class SampleRig:
    """Source control points (P, 3) and their triangulation, with what the animation needs to know."""

    points: np.ndarray
    triangles: np.ndarray
    rotate_weight: np.ndarray  # (P,) 1 on the face, fading to 0 on the border
    face_size: float
    centre: np.ndarray


def build_rig(photo: np.ndarray, landmarks: np.ndarray) -> SampleRig:
    h, w = photo.shape[:2]
    face = landmarks[:FACE_VERTS].astype(np.float64)
    centre = face.mean(0)
    size = float((face[:, :2].max(0) - face[:, :2].min(0)).max())
    hull = face[cv2.convexHull(face[:, :2].astype(np.float32), returnPoints=False).ravel(), :2]
    rings, weights = [], []
    for scale, weight in ((1.3, 0.8), (1.8, 0.35)):
        ring = centre[:2] + (hull - centre[:2]) * scale
        rings.append(np.c_[ring, np.full(len(ring), centre[2] + 0.3 * size)])
        weights.append(np.full(len(ring), weight))
    t = np.linspace(0, 1, 9)[:-1]
    border = np.concatenate([np.c_[t * (w - 1), 0 * t], np.c_[(w - 1) + 0 * t, t * (h - 1)],
                             np.c_[(1 - t) * (w - 1), (h - 1) + 0 * t], np.c_[0 * t, (1 - t) * (h - 1)]])
    border = np.c_[border, np.full(len(border), centre[2] + size)]
    pts = np.concatenate([face] + rings + [border])
    rot_w = np.concatenate([np.ones(len(face))] + weights + [np.zeros(len(border))])
    keep = np.r_[np.ones(len(face), bool), _far_enough(pts[len(face):, :2], face[:, :2], 0.02 * size)]
    pts, rot_w = pts[keep], rot_w[keep]
    tri = Delaunay(pts[:, :2]).simplices.astype(np.int64)
    return SampleRig(pts.astype(np.float32), tri, rot_w.astype(np.float32), size, centre.astype(np.float32))


def _far_enough(cand: np.ndarray, ref: np.ndarray, dist: float) -> np.ndarray:
    d = np.linalg.norm(cand[:, None] - ref[None], axis=-1).min(1)
    return d > dist


def _bump(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-(((points[:, :2] - centre[:2]) / radius) ** 2).sum(-1))


def deform(rig: SampleRig, jaw: float, brows: float, smile: float, blink: float) -> np.ndarray:
    """Expression-like displacement of the control points, (P, 3), in pixels."""
    p = rig.points
    fs = rig.face_size
    d = np.zeros_like(p)
    face = np.arange(len(p)) < FACE_VERTS
    mouth_y = (p[MOUTH_UPPER, 1] + p[MOUTH_LOWER, 1]) / 2
    mouth_x = (p[MOUTH_LEFT, 0] + p[MOUTH_RIGHT, 0]) / 2
    below = np.clip((p[:, 1] - mouth_y) / (0.06 * fs), 0, 1)
    lateral = np.exp(-(((p[:, 0] - mouth_x) / (0.38 * fs)) ** 4))
    d[:, 1] += jaw * 0.10 * fs * below * lateral * face
    for brow in BROWS:
        c = p[list(brow)].mean(0)
        d[:, 1] -= brows * 0.05 * fs * _bump(p, c, 0.16 * fs) * face
    for corner, sign in ((MOUTH_RIGHT, -1), (MOUTH_LEFT, 1)):
        b = _bump(p, p[corner], 0.10 * fs) * face
        d[:, 0] += smile * sign * 0.035 * fs * b
        d[:, 1] -= smile * 0.03 * fs * b
    for upper, lower in EYES:
        gap = p[lower, 1] - p[upper, 1]
        d[:, 1] += blink * 0.9 * gap * _bump(p, p[upper], 0.05 * fs) * face
    return d


def animate_points(rig: SampleRig, angles: np.ndarray, expr: dict[str, float]) -> np.ndarray:
    """Target control points for one frame: deform, then rotate the head about its centre."""
    p = rig.points + deform(rig, **expr)
    R = euler_to_matrix(torch.tensor(angles, dtype=torch.float64)).numpy()
    rel = p - rig.centre
    rotated = rel @ R.T + rig.centre
    w = rig.rotate_weight[:, None]
    return (w * rotated + (1 - w) * p).astype(np.float32)


def warp(photo_t: torch.Tensor, rig: SampleRig, target: np.ndarray, tri: torch.Tensor) -> torch.Tensor:
    """Piecewise-affine warp: each pixel of the target mesh samples the photo at its source position."""
    _, _, h, w = photo_t.shape
    verts = torch.from_numpy(target)[None]
    frags = rasterize(verts, tri, (h, w))
    src = interpolate(frags, tri, torch.from_numpy(rig.points[:, :2]))  # (1, H, W, 2) source pixel coords
    grid = torch.stack([src[..., 0] / w * 2 - 1, src[..., 1] / h * 2 - 1], -1)
    out = F.grid_sample(photo_t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where(frags.mask[:, None], out, photo_t)


def schedule(num_frames: int, fps: float, seed: int) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Seeded smooth head angles (N, 3) in radians and expression weights per frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / fps
    ph = rng.uniform(0, 2 * np.pi, 8)
    yaw = np.radians(14) * np.sin(2 * np.pi * t / 5.0 + ph[0])
    pitch = np.radians(7) * np.sin(2 * np.pi * t / 3.7 + ph[1])
    roll = np.radians(5) * np.sin(2 * np.pi * t / 6.3 + ph[2])

    def pulses(period: float, phase: float, sharp: float = 2.0) -> np.ndarray:
        return np.clip(np.sin(2 * np.pi * t / period + phase), 0, 1) ** sharp

    jaw = pulses(3.1, ph[3])
    brows = pulses(4.3, ph[4])
    smile = pulses(5.7, ph[5])
    blink_t = np.cumsum(rng.uniform(2.0, 4.0, 32))
    blink = np.max([np.exp(-(((t - b) / 0.08) ** 2)) for b in blink_t], axis=0)
    expr = [dict(jaw=float(a), brows=float(b), smile=float(c), blink=float(d))
            for a, b, c, d in zip(jaw, brows, smile, blink)]
    return np.stack([yaw, pitch, roll], 1), expr


def build_sample_clip(cfg: SampleConfig, photo: np.ndarray | None = None) -> Path:
    """Write the sample clip to ``cfg.out`` and return its path. Same config, same seed: same pixels."""
    photo = sample_photo() if photo is None else photo
    if photo.shape[:2] != (cfg.size, cfg.size):
        photo = cv2.resize(photo, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
    with MediaPipeLandmarker(video=False) as det:
        found = det.detect(photo)
    if not found.found:
        raise NoFaceError("the sample photo shows no face the landmarker can find")
    rig = build_rig(photo, found.points)
    n = int(round(cfg.seconds * cfg.fps))
    angles, expr = schedule(n, cfg.fps, cfg.seed)
    photo_t = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    tri = torch.from_numpy(rig.triangles)
    inner = list(INNER_LIPS)
    with VideoWriter(cfg.out, cfg.fps) as writer:
        for i in range(n):
            target = animate_points(rig, angles[i], expr[i])
            frame = warp(photo_t, rig, target, tri)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
            frame = _darken_mouth(frame, target[inner, :2], expr[i]["jaw"])
            writer.write(frame)
    return Path(cfg.out)


def _darken_mouth(frame: np.ndarray, lips: np.ndarray, jaw: float) -> np.ndarray:
    """An opening mouth shows the dark inside, not stretched lips."""
    if jaw < 0.05:
        return frame
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lips).astype(np.int32)], 255)
    mask = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255 * min(1.0, 1.5 * jaw)
    dark = np.array([40, 12, 16], np.float32)
    return (frame * (1 - mask) + dark * mask).astype(np.uint8)
