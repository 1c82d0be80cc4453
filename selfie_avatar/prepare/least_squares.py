"""Batched Levenberg-Marquardt for many small problems that may share a few unknowns (bundle adjustment style).

Minimises ``sum_f ||r_f(theta_f, shared)||^2 + shared_prior * ||shared||^2`` where each frame f has its own
parameters ``theta_f`` (P of them) and all frames share ``shared`` (S, possibly 0). Jacobians come from forward-mode
autodiff (one vmapped JVP per parameter, so the cost grows with P + S, not with the number of residuals); the
normal equations are solved per frame, with the shared block eliminated through its Schur complement. A caller that
knows its Jacobian's structure can pass it instead.

First-order methods (Adam, L-BFGS) on the stacked frames converge slowly here: the frames are independent
problems with very different curvatures, which one quasi-Newton history cannot capture; Gauss-Newton sees each
frame's curvature exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import jvp, vmap

__all__ = ["levenberg_marquardt", "autodiff_jacobians"]

Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Jacobian = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def autodiff_jacobians(fn: Residual, theta: torch.Tensor, shared: torch.Tensor):
    """(B, R, P) Jacobian w.r.t. each frame's theta and (B, R, S) w.r.t. the shared unknowns."""
    B, P = theta.shape
    S = shared.shape[0]
    eye_p = torch.eye(P, dtype=theta.dtype, device=theta.device)
    # The same one-hot tangent for every frame: frame f's residuals depend on theta_f only, so one JVP per
    # parameter index gives the whole batch's column.
    Jt = vmap(lambda e: jvp(lambda t: fn(t, shared), (theta,), (e.expand(B, P),))[1])(eye_p)  # (P, B, R)
    Jt = Jt.permute(1, 2, 0)
    if S == 0:
        return Jt, theta.new_zeros(B, Jt.shape[1], 0)
    eye_s = torch.eye(S, dtype=shared.dtype, device=shared.device)
    Js = vmap(lambda e: jvp(lambda s: fn(theta, s), (shared,), (e,))[1])(eye_s)  # (S, B, R)
    return Jt, Js.permute(1, 2, 0)


def levenberg_marquardt(fn: Residual, theta: torch.Tensor, shared: torch.Tensor | None = None,
                        shared_prior: float = 0.0, iterations: int = 20, damping: float = 1e-3,
                        rtol: float = 1e-7, jacobian: Jacobian | None = None,
                        recentre: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Minimise the summed squared residuals over per-frame and shared unknowns.

    Args:
        fn: ``fn(theta (B, P), shared (S,)) -> (B, R)`` residuals; frame f's row may depend on theta_f and shared
            only.
        theta: initial per-frame parameters.
        shared: initial shared parameters (None: none).
        shared_prior: weight of ``||shared||^2`` in the cost.
        iterations: maximum number of Jacobian evaluations.
        damping: initial Marquardt damping (relative to the diagonal of J^T J).
        rtol: stop when no frame's cost falls by more than this fraction.
        jacobian: ``jacobian(theta, shared) -> (dr/dtheta (B, R, P), dr/dshared (B, R, S))``; None: forward-mode
            autodiff of ``fn`` (:func:`autodiff_jacobians`).
        recentre: applied to theta before every Jacobian (e.g. to fold a rotation offset into its base pose, so a
            Jacobian may assume zero offsets); it must not change the residuals.

    Returns:
        (theta, shared, cost per frame (B,)).

    Shape:
        - theta: :math:`(B, P)`; shared: :math:`(S,)`
    """
    if theta.ndim != 2:
        raise ValueError(f"theta must be (B, P), got {tuple(theta.shape)}")
    theta = theta.detach().clone()
    shared = theta.new_zeros(0) if shared is None else shared.detach().clone()
    B, P = theta.shape
    S = shared.shape[0]
    coupled = S > 0
    mu = torch.full((B,), damping, dtype=torch.float64, device=theta.device)

    def costs(t, s):
        with torch.no_grad():
            return (fn(t, s).double() ** 2).sum(1)

    cost = costs(theta, shared)
    prior = lambda s: shared_prior * float((s.double() ** 2).sum())  # noqa: E731
    for _ in range(iterations):
        if recentre is not None:
            theta = recentre(theta)
        with torch.no_grad():
            r = fn(theta, shared).double()
        Jt, Js = (jacobian or (lambda t, s: autodiff_jacobians(fn, t, s)))(theta, shared)
        Jt, Js = Jt.double(), Js.double()
        A = Jt.transpose(1, 2) @ Jt  # (B, P, P)
        g = (Jt.transpose(1, 2) @ r[..., None]).squeeze(-1)  # (B, P)
        diag = torch.diagonal(A, dim1=1, dim2=2).clamp_min(1e-12)
        Ad = A + torch.diag_embed(mu[:, None] * diag + 1e-12)
        chol, info = torch.linalg.cholesky_ex(Ad)
        if bool(info.any()):  # numerically indefinite (should not happen with damping): add more
            Ad = Ad + torch.diag_embed(diag * 1e-3)
            chol = torch.linalg.cholesky(Ad)
        Ainv_g = torch.cholesky_solve(g[..., None], chol).squeeze(-1)
        if coupled:
            Bm = Jt.transpose(1, 2) @ Js  # (B, P, S)
            C = (Js.transpose(1, 2) @ Js).sum(0) + shared_prior * torch.eye(S, dtype=A.dtype, device=A.device)
            gs = (Js.transpose(1, 2) @ r[..., None]).squeeze(-1).sum(0) + shared_prior * shared.double()
            Cd = C + torch.diag(float(mu[0]) * torch.diagonal(C).clamp_min(1e-12))
            Ainv_B = torch.cholesky_solve(Bm, chol)
            schur = Cd - (Bm.transpose(1, 2) @ Ainv_B).sum(0)
            rhs = gs - (Bm.transpose(1, 2) @ Ainv_g[..., None]).squeeze(-1).sum(0)
            ds = torch.linalg.solve(schur, rhs)
            dt = Ainv_g - (Ainv_B @ ds[:, None]).squeeze(-1)
            new_shared = shared - ds.to(shared.dtype)
        else:
            dt, new_shared = Ainv_g, shared
        new_theta = theta - dt.to(theta.dtype)
        new_cost = costs(new_theta, new_shared)
        if coupled:  # one cost: accept or reject every frame together
            better = (new_cost.sum() + prior(new_shared) < cost.sum() + prior(shared)).expand(B)
        else:
            better = new_cost < cost
        gain = torch.where(better, (cost - new_cost) / cost.clamp_min(1e-30), torch.zeros_like(cost))
        theta = torch.where(better[:, None], new_theta, theta)
        if coupled and bool(better[0]):
            shared = new_shared
        cost = torch.where(better, new_cost, cost)
        mu = torch.where(better, (mu / 3).clamp_min(1e-9), (mu * 4).clamp_max(1e9))
        # Done when every frame either stopped improving or keeps failing with a huge damping.
        if bool(((better & (gain <= rtol)) | (~better & (mu >= 1e8))).all()):
            break
    return theta, shared, cost.to(theta.dtype)
