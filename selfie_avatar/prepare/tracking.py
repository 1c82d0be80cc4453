"""Fit the face model to a landmark sequence: rigid head pose per frame, the subject's rig, and codes.

Model (scaled-orthographic camera, crop pixels, axes x right / y down / z away):

    landmarks_f  ~  s_f * R_f @ (neutral + scores_f @ basis + pca_f @ pca_basis) + t_f

Alternating fit (a few rounds):
  1. pose: weighted Umeyama (similarity Procrustes, closed form) of the current per-frame model shape onto the
     landmarks; the first round starts from the landmarker's own pose matrix. Vertex weights come from the data:
     a vertex that moves a lot once pose is removed (lips, jaw) weighs little, so pose follows the rigid skull.
  2. rig: with pose removed, regress the subject's neutral shape and blendshape basis on the 52 scores
     (:meth:`BlendshapeFaceModel.fit`), plus a few PCA components of the remainder.
Finally pose and codes are smoothed lightly in time within each run of valid frames, and the landmark
reprojection error is measured per frame in pixels and relative to the face size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from selfie_avatar.face_model import BlendshapeFaceModel, FaceModel, NUM_BLENDSHAPES, NUM_MESH_VERTICES
from selfie_avatar.prepare.sequence import runs_of
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.tracking.status import DETECTED, INTERPOLATED, MISSING, face_extent


@dataclass
class TrackingResult:
    """Per-frame tracking of one clip (N frames; MISSING frames hold identity pose and zero codes).

    Attributes:
        status: (N,) int8 DETECTED / INTERPOLATED / MISSING.
        codes: the fitted :class:`HeadCodes`: rotation (N, 3, 3) model -> camera, scale (N,) crop pixels per
            model unit, translation (N, 2) crop pixels, expression (N, E): 52 blendshape scores, then the PCA
            coefficients (FLAME: its expression coefficients, then the jaw's axis-angle rotation; see
            :mod:`.flame_fit`).
        landmarks: (N, L, 3) detected (or interpolated) landmarks in crop pixels.
        error_px: (N,) mean 2D distance between fitted and detected landmarks (NaN unless DETECTED).
        face_size: (N,) face extent in crop pixels.
        confidence: (N,) in [0, 1]: 0 when missing, halved when interpolated, lower as the fit error grows.
        model: the subject's fitted face model (:class:`BlendshapeFaceModel`, or a ``FlameFaceModel``).
    """

    status: np.ndarray
    codes: HeadCodes
    landmarks: np.ndarray
    error_px: np.ndarray
    face_size: np.ndarray
    confidence: np.ndarray
    model: FaceModel

    @property
    def error_rel(self) -> np.ndarray:
        return self.error_px / self.face_size

    @property
    def landmark_error_px(self) -> float:
        return float(np.nanmean(self.error_px))

    @property
    def landmark_error_rel(self) -> float:
        return float(np.nanmean(self.error_rel))


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """Weighted similarity transform with ``dst ~ s * R @ src + t``, batched over frames.

    Args:
        src: (F, V, 3) or (V, 3) source points.
        dst: (F, V, 3) target points.
        weights: (V,) or (F, V) non-negative weights (None: uniform).

    Returns:
        scale (F,), rotation (F, 3, 3) with det +1, translation (F, 3).
    """
    dst = np.asarray(dst, np.float64)
    src = np.broadcast_to(np.asarray(src, np.float64), dst.shape)
    F, V, _ = dst.shape
    w = np.ones((F, V)) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), (F, V))
    w = w / w.sum(1, keepdims=True)
    mu_s = np.einsum("fv,fvc->fc", w, src)
    mu_d = np.einsum("fv,fvc->fc", w, dst)
    xs, xd = src - mu_s[:, None], dst - mu_d[:, None]
    cov = np.einsum("fv,fvi,fvj->fij", w, xd, xs)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((F, 3))
    d[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ (d[:, :, None] * vt)
    var_s = np.einsum("fv,fvc->f", w, xs**2)
    scale = (sig * d).sum(1) / var_s
    trans = mu_d - scale[:, None] * np.einsum("fij,fj->fi", rot, mu_s)
    return scale, rot, trans


def apply_pose(points: np.ndarray, scale: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(F, V, 3) model-space points -> camera/crop space: s * R p + t."""
    return scale[:, None, None] * np.einsum("fij,fvj->fvi", rotation, points) + translation[:, None]


def remove_pose(points: np.ndarray, scale: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`apply_pose`."""
    return np.einsum("fji,fvj->fvi", rotation, points - translation[:, None]) / scale[:, None, None]


def _rigidity_weights(normalised: np.ndarray) -> np.ndarray:
    """(F, V, 3) pose-free shapes -> (V,) weights, low for vertices that move a lot on their own."""
    var = normalised.var(0).sum(-1)
    return 1.0 / (var + np.percentile(var, 10) + 1e-9)


def smooth_series(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time (axis 0) inside each run of valid frames, never across a gap."""
    if sigma <= 0:
        return x
    out = x.copy()
    for a, b in runs_of(valid):
        if b - a > 1:
            out[a:b] = gaussian_filter1d(x[a:b], sigma, axis=0, mode="nearest")
    return out


def fit_tracking(landmarks: np.ndarray, scores: np.ndarray, status: np.ndarray, faces: np.ndarray,
                 init_rotation: np.ndarray | None = None, ridge: float = 1e-2, num_pca: int = 4,
                 smooth_sigma: float = 1.0, iterations: int = 3) -> TrackingResult:
    """Fit pose, rig and codes to a landmark sequence.

    Args:
        landmarks: (N, L, 3) landmarks in crop pixels (the first 468 are the mesh vertices), NaN where missing.
        scores: (N, 52) blendshape scores.
        status: (N,) DETECTED / INTERPOLATED / MISSING.
        faces: (T, 3) mesh triangles.
        init_rotation: (N, 3, 3) the landmarker's head rotation, used to start the first round.
        ridge, num_pca: rig regression settings (see :meth:`BlendshapeFaceModel.fit`).
        smooth_sigma: Gaussian smoothing of pose and codes in frames (0 = off).
        iterations: alternation rounds.

    Returns:
        :class:`TrackingResult`.
    """
    N = len(status)
    valid = status != MISSING
    if valid.sum() < 2:
        raise ValueError(f"tracking needs at least 2 frames with a face, got {int(valid.sum())}")
    Y = landmarks[valid, :NUM_MESH_VERTICES].astype(np.float64)  # (F, V, 3)
    S = scores[valid].astype(np.float64)
    F = len(Y)
    conf_w = np.where(status[valid] == DETECTED, 1.0, 0.5)

    # Round 0 reference shape: undo the landmarker's rotation (or none) and the size, then take the median.
    centred = Y - Y.mean(1, keepdims=True)
    if init_rotation is not None:
        centred = np.einsum("fji,fvj->fvi", init_rotation[valid].astype(np.float64), centred)
    centred /= np.sqrt((centred**2).sum((1, 2)) / Y.shape[1])[:, None, None]
    shapes = np.broadcast_to(np.median(centred, 0) * np.median(face_extent(Y)), Y.shape)
    w_v = np.ones(Y.shape[1])

    coeffs = np.zeros((F, 0))
    for _ in range(iterations):
        # Re-weighting and re-posing go together: the weights say which vertices are rigid, which needs the
        # pose removed, which needs the weights. A few passes settle it.
        for _ in range(3):
            s, R, t = umeyama(shapes, Y, w_v)
            X = remove_pose(Y, s, R, t)
            w_v = _rigidity_weights(X)
        model, coeffs = BlendshapeFaceModel.fit(X, S, faces, ridge=ridge, num_pca=num_pca, weights=conf_w,
                                                vertex_weights=w_v)
        shapes = _model_vertices(model, S, coeffs)
    s, R, t = umeyama(shapes, Y, w_v)

    # Back to full length, smooth within runs of valid frames.
    E = NUM_BLENDSHAPES + coeffs.shape[1]
    rot = np.tile(np.eye(3), (N, 1, 1))
    scale, trans, expr = np.ones(N), np.zeros((N, 3)), np.zeros((N, E))
    rot[valid], scale[valid], trans[valid] = R, s, t
    expr[valid] = np.concatenate([S, coeffs], 1)
    rot = smooth_series(rot, valid, smooth_sigma)
    u, _, vt = np.linalg.svd(rot)
    rot = u @ vt
    scale = smooth_series(scale, valid, smooth_sigma)
    trans = smooth_series(trans, valid, smooth_sigma)
    expr = smooth_series(expr, valid, smooth_sigma)
    expr[:, :NUM_BLENDSHAPES] = expr[:, :NUM_BLENDSHAPES].clip(0, 1)

    fitted = apply_pose(_model_vertices(model, expr[:, :NUM_BLENDSHAPES], expr[:, NUM_BLENDSHAPES:]), scale, rot, trans)
    err = np.full(N, np.nan)
    det = status == DETECTED
    err[det] = np.linalg.norm(fitted[det, :, :2] - landmarks[det, :NUM_MESH_VERTICES, :2], axis=-1).mean(-1)
    return tracking_result(status, HeadCodes(rot, scale, trans, expr), landmarks, err, model)


def tracking_result(status: np.ndarray, codes: HeadCodes, landmarks: np.ndarray, error_px: np.ndarray,
                    model) -> TrackingResult:
    """A :class:`TrackingResult` from a fit, with face size and confidence filled in the same way for every face
    model (float32 arrays)."""
    valid = status != MISSING
    size = np.full(len(status), np.nan)
    size[valid] = face_extent(landmarks[valid])
    conf = np.zeros(len(status))
    rel = np.nan_to_num(error_px / size, nan=0.0)
    # 3% of the face size (a few pixels at 256) is a typical good fit; confidence halves at about 5%.
    conf[valid] = np.exp(-((rel[valid] / 0.06) ** 2)) * np.where(status[valid] == INTERPOLATED, 0.5, 1.0)
    return TrackingResult(
        status=status.astype(np.int8), codes=codes, landmarks=landmarks.astype(np.float32),
        error_px=error_px.astype(np.float32), face_size=size.astype(np.float32), confidence=conf.astype(np.float32), model=model,
    )


def _model_vertices(model: BlendshapeFaceModel, scores: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    n = model.template.numpy().astype(np.float64)
    b = model.basis.numpy().reshape(NUM_BLENDSHAPES, -1).astype(np.float64)
    out = n.reshape(1, -1) + np.asarray(scores, np.float64) @ b
    if coeffs.shape[1]:
        out = out + np.asarray(coeffs, np.float64) @ model.pca_basis.numpy().reshape(coeffs.shape[1], -1)
    return out.reshape(len(scores), -1, 3)
