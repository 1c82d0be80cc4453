"""Fit FLAME to a landmark sequence: one identity per video; expression, jaw and head pose per frame.

Model (scaled-orthographic camera, crop pixels, the toolkit's axes x right / y down / z away)::

    landmarks_f  ~  s_f * R_f @ embed(FLAME(shape, expression_f, jaw_f)) + t_f

where ``embed`` takes the landmark embedding's barycentric points of the mesh (FLAME's axes turned into ours).
Head pose lives in the camera (R_f, s_f, t_f) as for the default model; FLAME's global, neck and eye rotations stay
at rest. Only the vertices of the embedded triangles are evaluated (joints are regressed exactly from the full
template), so each step is cheap.

Two stages, both batched Levenberg-Marquardt (:mod:`.least_squares`, Jacobians by PyTorch's forward-mode
autodiff), batched over frames:
  1. identity: shape, and the codes and pose of up to ``keyframes`` frames spread over the video;
  2. tracking: shape fixed, every frame in chunks of ``chunk`` consecutive frames; a chunk starts from the codes of
     the frame before it (warm start frame to frame) and from a closed-form pose (weighted Umeyama) per frame.
Residuals are measured in units of each frame's face size; the codes are pulled towards 0 (FLAME's codes are
unit-variance), the shape more weakly, so a video that never shows some expression does not invent it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from selfie_avatar.face_model.flame import FLAME
from selfie_avatar.face_model.flame_face_model import FlameFaceModel
from selfie_avatar.face_model.landmark_embedding import LandmarkEmbedding
from selfie_avatar.tracking.status import DETECTED, MISSING, face_extent
from selfie_avatar.prepare.flame_landmarks import FlameLandmarks
from selfie_avatar.prepare.least_squares import levenberg_marquardt
from selfie_avatar.prepare.tracking import TrackingResult, smooth_series, tracking_result, umeyama
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.render.camera import project
from selfie_avatar.geometry.rotation import axis_angle_to_matrix
from selfie_avatar.utils.log import get_logger

log = get_logger("prepare.flame_fit")

__all__ = ["fit_flame_tracking"]


class _Frames:
    """Residuals of a batch of frames; unknowns are offsets on a closed-form initial pose (all about unit scale).

    Per-frame parameters: ``[expression (n), jaw (3), rotation offset (3, axis-angle), log-scale offset (1),
    translation offset (2, in face sizes)]``.
    """

    def __init__(self, model_lm: FlameLandmarks, target: torch.Tensor, weight: torch.Tensor, size: torch.Tensor,
                 rot0: torch.Tensor, scale0: torch.Tensor, trans0: torch.Tensor, expression_weight: float,
                 jaw_weight: float, fixed_shape: torch.Tensor | None = None) -> None:
        self.model_lm, self.n = model_lm, model_lm.n
        self.target, self.size = target, size
        # mean over landmarks of the weighted squared distance, in face sizes: sqrt(w / L) per residual.
        self.sqrt_w = torch.sqrt(weight / weight.shape[1])[..., None]
        self.rot0, self.scale0, self.trans0 = rot0, scale0, trans0
        self.sqrt_e, self.sqrt_j = expression_weight ** 0.5, jaw_weight ** 0.5
        self.fixed_shape = fixed_shape

    @property
    def num_params(self) -> int:
        return self.n + 9

    def split(self, theta: torch.Tensor):
        n = self.n
        return theta[:, :n], theta[:, n:n + 3], theta[:, n + 3:n + 6], theta[:, n + 6], theta[:, n + 7:n + 9]

    def camera(self, theta: torch.Tensor):
        _, _, drot, dlogs, dtrans = self.split(theta)
        R = axis_angle_to_matrix(drot) @ self.rot0
        return R, self.scale0 * torch.exp(dlogs), self.trans0 + dtrans * self.size[:, None]

    def residual(self, theta: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """(B, P) parameters, (S,) shape (empty: the fixed one) -> (B, 2 L + n + 3) weighted residuals."""
        expr, jaw = self.split(theta)[:2]
        shape = self.fixed_shape if shape.numel() == 0 else shape
        pts = self.model_lm(shape[None], expr, jaw)
        R, s, t = self.camera(theta)
        proj = project(pts, R, s, t)[..., :2]
        r = (proj - self.target) / self.size[:, None, None] * self.sqrt_w
        return torch.cat([r.flatten(1), self.sqrt_e * expr, self.sqrt_j * jaw], 1)

    def jacobian(self, theta: torch.Tensor, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dr/dtheta (B, R, P) and dr/dshape (B, R, S) of :meth:`residual`, at zero pose offsets.

        Analytic around the landmark model's own Jacobian: with q = R p, d q / d(rotation offset k) = e_k x q,
        d proj / d log-scale = s q_xy, d proj / d translation offset = the face size.
        """
        n = self.n
        if bool(theta[:, n + 3:].abs().max() > 0):
            raise ValueError("jacobian() expects recentred parameters (zero pose offsets)")
        expr, jaw = self.split(theta)[:2]
        coupled = shape.numel() > 0
        shape_used = shape if coupled else self.fixed_shape
        p, d_expr, d_jaw, d_shape = self.model_lm.with_jacobian(shape_used[None], expr, jaw, need_shape=coupled)
        B, L = p.shape[:2]
        R, s = self.rot0, self.scale0
        c = (self.sqrt_w[..., 0] / self.size[:, None])[..., None, None]  # (B, L, 1, 1)
        cs = c * s[:, None, None, None]

        def lin(d: torch.Tensor) -> torch.Tensor:  # (B, L, 3, m) model-space derivative -> (B, 2 L, m)
            m = d.shape[-1]
            # One (2 x 3) @ (3 x L m) product per frame (einsum would batch L m tiny products instead).
            xy = (R[:, :2] @ d.permute(0, 2, 1, 3).reshape(B, 3, L * m)).view(B, 2, L, m).permute(0, 2, 1, 3)
            return (cs * xy).reshape(B, 2 * L, m)

        q = p @ R.transpose(1, 2)
        qx, qy, qz = q.unbind(-1)
        zero = torch.zeros_like(qx)
        d_rot = torch.stack([torch.stack([zero, -qz], -1), torch.stack([qz, zero], -1),
                             torch.stack([-qy, qx], -1)], -1)  # (B, L, 2, 3): xy of e_k x q
        d_logs = (cs[..., 0] * q[..., :2])[..., None]  # (B, L, 2, 1)
        d_trans = (self.sqrt_w[..., 0][..., None, None] * torch.eye(2, device=p.device)).expand(B, L, 2, 2)
        data = torch.cat([lin(d_expr), lin(d_jaw), (cs * d_rot).reshape(B, 2 * L, 3), d_logs.reshape(B, 2 * L, 1),
                          d_trans.reshape(B, 2 * L, 2)], 2)
        prior = torch.zeros(B, n + 3, self.num_params, device=p.device)
        prior[:, :n, :n] = self.sqrt_e * torch.eye(n, device=p.device)
        prior[:, n:, n:n + 3] = self.sqrt_j * torch.eye(3, device=p.device)
        Jt = torch.cat([data, prior], 1)
        if not coupled:
            return Jt, Jt.new_zeros(B, Jt.shape[1], 0)
        Js = torch.cat([lin(d_shape), Jt.new_zeros(B, n + 3, d_shape.shape[-1])], 1)
        return Jt, Js

    def recentre(self, theta: torch.Tensor) -> torch.Tensor:
        """Fold the pose offsets into the base pose (same residuals), so each step linearises around zero."""
        R, s, t = self.camera(theta)
        self.rot0, self.scale0, self.trans0 = R, s, t
        theta = theta.clone()
        theta[:, self.n + 3:] = 0
        return theta


@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int = 1):
    """Run tiny CPU tensor ops on ``n`` intra-op threads, restoring the previous count afterwards.

    The fit is thousands of small products; with several OpenMP threads each one pays a synchronisation, which
    on a busy machine made a Jacobian 25x slower (measured on 2 cores: 7 ms on one thread, 180 ms on two).
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_flame_tracking(landmarks: np.ndarray, status: np.ndarray, flame: FLAME, embedding: LandmarkEmbedding,
                       num_expression: int = 50, shape_weight: float = 1e-5, expression_weight: float = 1e-5,
                       jaw_weight: float = 1e-5, smooth_sigma: float = 0.0, keyframes: int = 24, chunk: int = 128,
                       identity_iterations: int = 30, tracking_iterations: int = 20,
                       device: str | torch.device = "cpu") -> TrackingResult:
    """Fit FLAME's identity, per-frame expression and jaw, and the head pose to MediaPipe landmarks.

    Args:
        landmarks: (N, 478, 3) MediaPipe landmarks in crop pixels, NaN where missing.
        status: (N,) DETECTED / INTERPOLATED / MISSING.
        flame: the FLAME model (its shape components are the identity's unknowns); moved to ``device``.
        embedding: where the landmarks sit on FLAME's mesh.
        num_expression: FLAME expression coefficients per frame (the code adds the jaw's 3).
        shape_weight, expression_weight, jaw_weight: pulls of the codes towards 0, against the mean squared
            landmark distance in face sizes (1e-5 is as strong as about 3% of the face size spread over 100
            landmarks per unit of code).
        smooth_sigma: Gaussian smoothing of pose and codes in frames after the fit (0 = off).
        keyframes: frames that fix the identity.
        chunk: frames optimised together in the tracking stage.
        identity_iterations, tracking_iterations: Levenberg-Marquardt iterations of each stage (per chunk for
            tracking).
        device: where to optimise.

    Returns:
        :class:`TrackingResult` whose ``model`` is the subject's :class:`FlameFaceModel` and whose ``expression``
        is (N, num_expression + 3): the expression coefficients, then the jaw's axis-angle rotation.
    """
    N = len(status)
    if landmarks.ndim != 3 or landmarks.shape[0] != N or landmarks.shape[1] < 478 or landmarks.shape[2] != 3:
        raise ValueError(f"landmarks must be ({N}, 478, 3) MediaPipe landmarks, got {landmarks.shape}")
    valid = status != MISSING
    if valid.sum() < 2:
        raise ValueError(f"tracking needs at least 2 frames with a face, got {int(valid.sum())}")
    device = torch.device(device)
    flame = flame.to(device)
    model_lm = FlameLandmarks(flame, embedding, num_expression)
    n = num_expression
    idx = np.flatnonzero(valid)
    target_np = embedding.targets_from_mediapipe(landmarks[idx].astype(np.float64))  # (F, L, 3)
    lm_ok = np.isfinite(target_np).all(-1)
    target_np = np.nan_to_num(target_np)
    frame_w = np.where(status[idx] == DETECTED, 1.0, 0.5)
    weight_np = lm_ok * frame_w[:, None]
    size_np = np.maximum(face_extent(np.where(lm_ok[..., None], target_np, np.nan)), 1.0)
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731

    def frames(rows: np.ndarray, expr0: torch.Tensor, jaw0: torch.Tensor, shape: torch.Tensor,
               fixed: bool) -> tuple[_Frames, torch.Tensor]:
        with torch.no_grad():
            pts = model_lm(shape, expr0, jaw0).double().cpu().numpy()
        s, R, t = umeyama(pts, target_np[rows], weight_np[rows] + 1e-9)  # closed-form start for every frame
        fr = _Frames(model_lm, as_t(target_np[rows, :, :2]), as_t(weight_np[rows]), as_t(size_np[rows]), as_t(R),
                     as_t(s), as_t(t[:, :2]), expression_weight, jaw_weight, shape[0] if fixed else None)
        theta = torch.zeros(len(rows), fr.num_params, device=device)
        theta[:, :n], theta[:, n:n + 3] = expr0, jaw0
        return fr, theta

    with _cpu_threads(device):
        # ---- stage 1: identity from keyframes (detected frames preferred) ------------------------------------------
        det_rows = np.flatnonzero(status[idx] == DETECTED)
        pool = det_rows if len(det_rows) >= 2 else np.arange(len(idx))
        keys = pool[np.unique(np.linspace(0, len(pool) - 1, min(keyframes, len(pool))).round().astype(int))]
        zeros = lambda B, k: torch.zeros(B, k, device=device)  # noqa: E731
        shape = zeros(1, flame.num_shape)
        kf, theta = frames(keys, zeros(len(keys), n), zeros(len(keys), 3), shape, fixed=False)
        _, shape_vec, cost = levenberg_marquardt(kf.residual, theta, shape[0], shape_weight, identity_iterations,
                                                 jacobian=kf.jacobian, recentre=kf.recentre)
        shape = shape_vec[None]
        log.info("FLAME identity from %d keyframes: cost %.3g", len(keys), float(cost.sum()))

        # ---- stage 2: every frame, chunk by chunk, warm-started from the frame before --------------------------------
        F = len(idx)
        expr_all, jaw_all = np.zeros((F, n)), np.zeros((F, 3))
        rot_all, scale_all, trans_all = np.zeros((F, 3, 3)), np.zeros(F), np.zeros((F, 2))
        prev_expr, prev_jaw = zeros(1, n), zeros(1, 3)
        for a in range(0, F, chunk):
            rows = np.arange(a, min(a + chunk, F))
            fr, theta = frames(rows, prev_expr.expand(len(rows), -1), prev_jaw.expand(len(rows), -1), shape, fixed=True)
            theta, _, _ = levenberg_marquardt(fr.residual, theta, None, 0.0, tracking_iterations, jacobian=fr.jacobian,
                                              recentre=fr.recentre)
            with torch.no_grad():
                R, s, t = fr.camera(theta)
            expr_t, jaw_t = fr.split(theta)[:2]
            expr_all[rows], jaw_all[rows] = expr_t.cpu().numpy(), jaw_t.cpu().numpy()
            rot_all[rows], scale_all[rows], trans_all[rows] = R.cpu().numpy(), s.cpu().numpy(), t.cpu().numpy()
            prev_expr, prev_jaw = expr_t[-1:], jaw_t[-1:]

    # ---- back to full length, smoothing, errors -------------------------------------------------------------------
    rot = np.tile(np.eye(3), (N, 1, 1))
    scale, trans, expr = np.ones(N), np.zeros((N, 3)), np.zeros((N, n + 3))
    rot[idx], scale[idx], trans[idx, :2] = rot_all, scale_all, trans_all
    expr[idx] = np.concatenate([expr_all, jaw_all], 1)
    rot = smooth_series(rot, valid, smooth_sigma)
    u, _, vt = np.linalg.svd(rot)
    rot = u @ vt
    scale, trans, expr = (smooth_series(x, valid, smooth_sigma) for x in (scale, trans, expr))
    model = FlameFaceModel.from_flame(flame, embedding, shape.cpu(), n)
    fitted = np.zeros((F, model_lm.num_landmarks, 3))
    with torch.no_grad():
        for a in range(0, F, chunk):  # the embedded landmarks only: the full mesh of every frame at once is big
            rows = idx[a:a + chunk]
            code = as_t(expr[rows])
            pts = model_lm(shape, code[:, :n], code[:, n:])
            fitted[a:a + chunk] = project(pts, as_t(rot[rows]), as_t(scale[rows]), as_t(trans[rows, :2])).cpu().numpy()
    err = np.full(N, np.nan)
    det = status[idx] == DETECTED
    dist = np.linalg.norm(fitted[..., :2] - target_np[..., :2], axis=-1)
    err[idx[det]] = (np.where(lm_ok, dist, 0).sum(1) / np.maximum(lm_ok.sum(1), 1))[det]
    return tracking_result(status, HeadCodes(rot, scale, trans, expr), landmarks, err, model)
