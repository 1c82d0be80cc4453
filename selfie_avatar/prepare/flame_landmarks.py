"""FLAME's embedded landmarks as the tracker sees them, with their Jacobian w.r.t. the codes.

The tracker moves only FLAME's jaw (global, neck and eyes stay at rest: head pose is the camera's). Then every
joint transform but the jaw's is the identity, and for a vertex with jaw weight ``w``::

    v = v_posed + w * D (v_posed - J_jaw),     D = R_jaw - I,   v_posed = v_shaped + posedirs_jaw @ vec(D)

which, for a fixed jaw rotation, is *affine* in the shape and expression codes (``v_shaped`` and ``J_jaw`` are
linear in them). So their Jacobian is a few small products per landmark instead of one autodiff pass per
coefficient; the jaw's uses the closed-form derivative of the rotation (:func:`rotation_derivative`). Only the
vertices of the embedded triangles are evaluated. :func:`FlameLandmarks.__call__` equals the full :class:`FLAME` forward followed by the
barycentric interpolation (the tests check both the values and the Jacobians against autodiff).
"""

from __future__ import annotations

import torch

from selfie_avatar.face_model.flame import FLAME
from selfie_avatar.face_model.landmark_embedding import LandmarkEmbedding
from selfie_avatar.geometry.rotation import axis_angle_to_matrix

__all__ = ["FlameLandmarks", "rotation_derivative"]

_JAW = 2  # FLAME's joints: root, neck, jaw, left eye, right eye


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2)


def rotation_derivative(w: torch.Tensor, small: float = 1e-6) -> torch.Tensor:
    """Derivatives of R = exp([w]x) w.r.t. each axis-angle component, in closed form.

    ``dR/dw_i = (w_i [w]x + [w x ((I - R) e_i)]x) R / |w|^2`` (Gallego and Yezzi, "A compact formula for the
    derivative of a 3-D rotation in exponential coordinates", 2015); ``[e_i]x R`` below ``small`` radians, where the
    closed form is 0/0 (and its error is of the order of the angle). Closed form rather than forward-mode autodiff:
    the first use of torch's forward AD costs about 2 s of set-up.

    Shape:
        - w: :math:`(B, 3)`
        - output: :math:`(3, B, 3, 3)`, index 0 the component
    """
    R = axis_angle_to_matrix(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    theta2 = (w * w).sum(-1)  # (B,)
    tiny = theta2 < small ** 2
    safe2 = torch.where(tiny, torch.ones_like(theta2), theta2)
    W = _skew(w)  # (B, 3, 3)
    out = []
    for i in range(3):
        e = eye[i].expand_as(w)
        u = torch.linalg.cross(w, ((eye - R) @ e[..., None]).squeeze(-1))
        general = (w[:, i, None, None] * W + _skew(u)) @ R / safe2[:, None, None]
        out.append(torch.where(tiny[:, None, None], _skew(e) @ R, general))
    return torch.stack(out)


class FlameLandmarks:
    """Landmarks (model axes) of FLAME with a given identity, expression and jaw; everything else at rest.

    Args:
        flame: the FLAME model (its standard 5-joint tree).
        embedding: landmark embedding for its mesh.
        num_expression: how many of FLAME's expression coefficients the codes hold (the rest stay 0).
    """

    def __init__(self, flame: FLAME, embedding: LandmarkEmbedding, num_expression: int) -> None:
        embedding.check_mesh(int(flame.faces.shape[0]))
        if not 0 < num_expression <= flame.num_expression:
            raise ValueError(f"num_expression must be in [1, {flame.num_expression}], got {num_expression}")
        if flame.parents[:3] != [-1, 0, 1] or any(p not in (0, 1) for p in flame.parents[3:]):
            raise ValueError(f"expected FLAME's joint tree (root, neck, jaw, eyes), got parents {flame.parents}")
        self.flame, self.n = flame, num_expression
        dev = flame.v_template.device
        corners = flame.faces[torch.as_tensor(embedding.face_idx, device=dev)]  # (L, 3)
        ids, local = torch.unique(corners, return_inverse=True)
        self.local = local.reshape(-1)  # (L * 3,) index into the K evaluated vertices
        self.bary = torch.as_tensor(embedding.bary, dtype=torch.float32, device=dev)  # (L, 3)
        self.template = flame.v_template.index_select(0, ids)  # (K, 3)
        self.shapedirs = flame.shapedirs.index_select(0, ids)  # (K, 3, S)
        self.exprdirs = flame.exprdirs[:, :, :num_expression].index_select(0, ids)  # (K, 3, n)
        self.posedirs_jaw = flame.posedirs[9 * (_JAW - 1):9 * _JAW].index_select(1, ids)  # (9, K, 3)
        self.w_jaw = flame.weights[:, _JAW].index_select(0, ids)  # (K,)
        self.J_template = flame.J_template[_JAW]  # (3,)
        self.J_shapedirs = flame.J_shapedirs[_JAW]  # (3, S)
        self.J_exprdirs = flame.J_exprdirs[_JAW, :, :num_expression]  # (3, n)
        self._mixed: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def num_landmarks(self) -> int:
        return int(self.bary.shape[0])

    def _to_landmarks(self, v: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, ...) per-vertex quantity -> (B, L, 3, ...) barycentric mix, in model axes."""
        B = v.shape[0]
        # index_select, not v[:, local]: advanced indexing with a 2-D index is ~100x slower on CPU.
        corners = v.index_select(1, self.local).view(B, -1, 3, *v.shape[2:])
        bary = self.bary.view(1, -1, 3, *[1] * (v.dim() - 2))
        out = (corners * bary).sum(2)  # (B, L, 3, ...)
        flip = out.new_tensor([1.0, -1.0, -1.0]).view(3, *[1] * (v.dim() - 3))
        return out * flip

    def _vertices(self, shape: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor):
        v_shaped = self._shaped(shape, expression)
        J = self.J_template + shape @ self.J_shapedirs.T + expression @ self.J_exprdirs.T  # (B, 3)
        D = axis_angle_to_matrix(jaw) - torch.eye(3, dtype=jaw.dtype, device=jaw.device)  # (B, 3, 3)
        v_posed = v_shaped + self._posed_offset(D)
        rel = v_posed - J[:, None]
        v = v_posed + self.w_jaw[:, None] * (rel[..., None, :] * D[:, None]).sum(-1)
        return v, D

    def _shaped(self, shape: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        # Plain matmuls on flattened bases: einsum picks batched tiny products here, many times slower on CPU.
        K = self.template.shape[0]
        out = self.template + (expression @ self.exprdirs.reshape(K * 3, -1).T).view(-1, K, 3)
        if shape.shape[-1]:
            out = out + (shape @ self.shapedirs.reshape(K * 3, -1).T).view(-1, K, 3)
        return out

    def _posed_offset(self, D: torch.Tensor) -> torch.Tensor:
        """(..., 3, 3) jaw D = R - I -> (..., K, 3) pose-corrective offsets."""
        K = self.template.shape[0]
        return (D.reshape(-1, 9) @ self.posedirs_jaw.reshape(9, K * 3)).view(*D.shape[:-2], K, 3)

    def __call__(self, shape: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """Landmarks in model axes.

        Shape:
            - shape: :math:`(B, S)` or :math:`(1, S)`; expression: :math:`(B, n)`; jaw: :math:`(B, 3)`
            - output: :math:`(B, L, 3)`
        """
        B = expression.shape[0]
        if expression.shape != (B, self.n) or jaw.shape != (B, 3) or shape.shape[-1] != self.flame.num_shape:
            raise ValueError(f"expected shape (B|1, {self.flame.num_shape}), expression (B, {self.n}), jaw (B, 3); "
                             f"got {tuple(shape.shape)}, {tuple(expression.shape)}, {tuple(jaw.shape)}")
        v, _ = self._vertices(shape.expand(B, -1), expression, jaw)
        return self._to_landmarks(v)

    def with_jacobian(self, shape: torch.Tensor, expression: torch.Tensor, jaw: torch.Tensor,
                      need_shape: bool = True):
        """Landmarks and their derivatives w.r.t. expression, jaw and (optionally) shape.

        Returns:
            (p, dp/dexpression, dp/djaw, dp/dshape or None).

        Shape:
            - p: :math:`(B, L, 3)`; d/dexpression :math:`(B, L, 3, n)`; d/djaw :math:`(B, L, 3, 3)`;
              d/dshape :math:`(B, L, 3, S)`
        """
        B = expression.shape[0]
        shape = shape.expand(B, -1)
        with torch.no_grad():
            dR = rotation_derivative(jaw)  # (3, B, 3, 3)
            v, D = self._vertices(shape, expression, jaw)
            p = self._to_landmarks(v)
            d_expr = self._code_jacobian(D, self.exprdirs, self.J_exprdirs)
            d_shape = self._code_jacobian(D, self.shapedirs, self.J_shapedirs) if need_shape else None
            # d v / d jaw_k = dP_k + w (dR_k (v_posed - J) + D dP_k), with dP_k = posedirs_jaw @ vec(dR_k)
            J = self.J_template + shape @ self.J_shapedirs.T + expression @ self.J_exprdirs.T
            rel = self._shaped(shape, expression) + self._posed_offset(D) - J[:, None]
            dP = self._posed_offset(dR)  # (3, B, K, 3)
            turn = rel[None] @ dR.transpose(-1, -2) + dP @ D.transpose(-1, -2)[None]
            dv_jaw = dP + self.w_jaw[:, None] * turn
            d_jaw = self._to_landmarks(dv_jaw.permute(1, 2, 3, 0))  # (B, L, 3, 3)
        return p, d_expr, d_jaw, d_shape

    def _code_jacobian(self, D: torch.Tensor, dirs: torch.Tensor, J_dirs: torch.Tensor) -> torch.Tensor:
        """(B, L, 3, m) d landmarks / d code for a linear basis ``dirs`` (K, 3, m) with joint part ``J_dirs`` (3, m).

        Per vertex, d v / d code = (I + w D) dirs - w D J_dirs; mixed into landmarks this is
        E0 + D E1 - w_l D J_dirs with E0 = sum bary dirs and E1 = sum bary w dirs, both independent of the frame,
        so each frame costs one (3 x 3) @ (3 x L m) product.
        """
        key = id(dirs)
        if key not in self._mixed:
            E0 = self._to_landmarks(dirs[None])[0]  # (L, 3, m), model axes
            E1 = self._to_landmarks((self.w_jaw[:, None, None] * dirs)[None])[0]
            w_l = (self.w_jaw.index_select(0, self.local).view(-1, 3) * self.bary).sum(1)  # (L,)
            self._mixed[key] = (E0, E1, w_l)
        E0, E1, w_l = self._mixed[key]
        L, _, m = E0.shape
        B = D.shape[0]
        # D acts in FLAME axes while E1 is in model axes: model = F flame with F = diag(1, -1, -1), so use F D F.
        flip = D.new_tensor([1.0, -1.0, -1.0])
        Dm = D * flip[:, None] * flip[None, :]
        turned = (Dm @ E1.permute(1, 0, 2).reshape(3, L * m)).view(B, 3, L, m).permute(0, 2, 1, 3)
        joint = Dm @ (J_dirs * flip[:, None])  # (B, 3, m)
        return E0 + turned - w_l[None, :, None, None] * joint[:, None]
