"""The default face model: the subject's own linear blendshape rig on the MediaPipe face-mesh topology.

It needs no registration or licence: it is built from the video itself.

    vertices = neutral + sum_k scores_k * basis_k + sum_j pca_j * pca_basis_j

``scores`` are MediaPipe's 52 named blendshape scores (person-independent); ``basis`` is regressed on the
subject's own pose-normalised frames, so each named score moves *this* person's face the way it moved in the
video. The optional PCA components capture what the scores miss (for example, asymmetric mouth shapes); they are
zero when another person drives the model.
"""

from __future__ import annotations

import numpy as np
import torch

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.face_model.names import BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from selfie_avatar.face_model.uv import frontal_uv


class BlendshapeFaceModel(FaceModel):
    """Linear blendshape model.

    Args:
        neutral: (V, 3) the subject's neutral shape (model space).
        basis: (52, V, 3) displacement per unit blendshape score.
        faces: (T, 3) triangles.
        uv: (V, 2) texture coordinates in [0, 1].
        pca_basis: (K, V, 3) extra orthonormal displacement directions (K may be 0).
        landmark_index: (L,) vertex index of each tracked landmark (identity for the MediaPipe mesh).
    """

    name = "blendshape"

    def __init__(self, neutral, basis, faces, uv, pca_basis=None, landmark_index=None) -> None:
        super().__init__()
        neutral = torch.as_tensor(np.asarray(neutral), dtype=torch.float32)
        basis = torch.as_tensor(np.asarray(basis), dtype=torch.float32)
        V = neutral.shape[0]
        if neutral.shape != (V, 3):
            raise ValueError(f"neutral must be (V, 3), got {tuple(neutral.shape)}")
        if basis.shape != (NUM_BLENDSHAPES, V, 3):
            raise ValueError(f"basis must be ({NUM_BLENDSHAPES}, {V}, 3), got {tuple(basis.shape)}")
        pca = torch.zeros(0, V, 3) if pca_basis is None else torch.as_tensor(np.asarray(pca_basis), dtype=torch.float32)
        if pca.ndim != 3 or pca.shape[1:] != (V, 3):
            raise ValueError(f"pca_basis must be (K, {V}, 3), got {tuple(pca.shape)}")
        lmk = torch.arange(V) if landmark_index is None else torch.as_tensor(np.asarray(landmark_index), dtype=torch.long)
        self.register_buffer("template", neutral)
        self.register_buffer("basis", basis)
        self.register_buffer("pca_basis", pca)
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.long))
        self.register_buffer("uv", torch.as_tensor(np.asarray(uv), dtype=torch.float32))
        self.register_buffer("landmark_index", lmk)

    @property
    def num_pca(self) -> int:
        return int(self.pca_basis.shape[0])

    @property
    def expression_names(self) -> list[str]:
        return list(BLENDSHAPE_NAMES) + [f"pca_{j}" for j in range(self.num_pca)]

    def forward(self, expression: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        self._check_expression(expression)
        if identity is not None and identity.numel():
            raise ValueError("the blendshape model has no identity code: it is one subject's own rig")
        scores, pca = expression[:, :NUM_BLENDSHAPES], expression[:, NUM_BLENDSHAPES:]
        # (B, 52) x (52, V*3) + (B, K) x (K, V*3): one matmul each, no per-vertex loop.
        offs = scores @ self.basis.flatten(1)
        if self.num_pca:
            offs = offs + pca @ self.pca_basis.flatten(1)
        return self.template + offs.view(-1, self.num_vertices, 3)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        return vertices[:, self.landmark_index]

    # -- persistence ------------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.array(self.name),
            "neutral": self.template.cpu().numpy(),
            "basis": self.basis.cpu().numpy(),
            "pca_basis": self.pca_basis.cpu().numpy(),
            "faces": self.faces.cpu().numpy(),
            "uv": self.uv.cpu().numpy(),
            "landmark_index": self.landmark_index.cpu().numpy(),
            "expression_names": np.array(self.expression_names),
        }

    @classmethod
    def from_arrays(cls, data) -> "BlendshapeFaceModel":
        kind = str(data["kind"])
        if kind != cls.name:
            raise ValueError(f"face model file holds a {kind!r} model, not {cls.name!r}")
        return cls(data["neutral"], data["basis"], data["faces"], data["uv"], data["pca_basis"], data["landmark_index"])

    @classmethod
    def fit(cls, points: np.ndarray, scores: np.ndarray, faces: np.ndarray, ridge: float = 1e-2,
            num_pca: int = 4, weights: np.ndarray | None = None,
            vertex_weights: np.ndarray | None = None) -> tuple["BlendshapeFaceModel", np.ndarray]:
        """Regress the rig from pose-normalised frames.

        Solves ``points_f ~ neutral + scores_f @ basis`` by ridge regression (the ridge acts on the basis only,
        scaled by the number of frames, so a score that barely varies gets a small, not a wild, displacement),
        then takes the top ``num_pca`` principal directions of what is left.

        Args:
            points: (F, V, 3) pose-normalised vertices, one row per frame.
            scores: (F, 52) blendshape scores of the same frames.
            faces: (T, 3) triangles.
            ridge: regularisation weight.
            num_pca: number of residual components (clipped to what the data supports).
            weights: (F,) optional per-frame weights (e.g. tracking confidence).
            vertex_weights: (V,) weights defining "rigid": every blendshape and PCA direction is made free of
                any similarity motion (translation, rotation, scale) of the neutral shape under these weights.
                Without this, a basis vector can hold a small head rotation that correlates with a score, and
                the tracker's pose would no longer be the head pose. None: uniform.

        Returns:
            (model, pca_coefficients (F, K)).
        """
        F, V, _ = points.shape
        if scores.shape != (F, NUM_BLENDSHAPES):
            raise ValueError(f"scores must be ({F}, {NUM_BLENDSHAPES}), got {scores.shape}")
        w = np.ones(F) if weights is None else np.asarray(weights, dtype=np.float64)
        A = np.concatenate([np.ones((F, 1)), scores.astype(np.float64)], axis=1)  # (F, 53)
        Y = points.reshape(F, -1).astype(np.float64)  # (F, V*3)
        Aw = A * w[:, None]
        reg = np.full(A.shape[1], ridge * max(w.sum(), 1.0))
        reg[0] = 0.0  # never shrink the neutral shape
        W = np.linalg.solve(Aw.T @ A + np.diag(reg), Aw.T @ Y)  # (53, V*3)
        neutral = W[0].reshape(V, 3)
        basis = W[1:].reshape(NUM_BLENDSHAPES, V, 3)
        P = _rigid_projector(neutral, vertex_weights)
        W[1:] = W[1:] - (W[1:] @ P.T)
        resid = Y - A @ W
        resid = resid - resid @ P.T
        k = int(min(num_pca, max(F - 1, 0)))
        if k > 0:
            centred = resid - resid.mean(0, keepdims=True)
            _, _, vt = np.linalg.svd(centred * np.sqrt(w)[:, None], full_matrices=False)
            pca = vt[:k]  # (K, V*3), orthonormal rows
            coeffs = resid @ pca.T
        else:
            pca = np.zeros((0, V * 3))
            coeffs = np.zeros((F, 0))
        uv = frontal_uv(neutral)
        model = cls(neutral, basis, faces, uv, pca.reshape(-1, V, 3))
        return model, coeffs.astype(np.float32)


def _rigid_projector(shape: np.ndarray, vertex_weights: np.ndarray | None) -> np.ndarray:
    """(V*3, V*3) weighted projector onto the infinitesimal similarity motions of ``shape``.

    ``x - P x`` removes from a displacement field x its best-fitting (weighted) translation, rotation and scale.
    """
    V = shape.shape[0]
    w = np.ones(V) if vertex_weights is None else np.asarray(vertex_weights, np.float64)
    c = shape - (w[:, None] * shape).sum(0) / w.sum()
    T = np.zeros((V, 3, 7))
    T[:, [0, 1, 2], [0, 1, 2]] = 1.0  # translations
    for k, axis in enumerate(np.eye(3)):
        T[:, :, 3 + k] = np.cross(axis, c)  # rotations
    T[:, :, 6] = c  # scale
    T = T.reshape(V * 3, 7)
    Wd = np.repeat(w, 3)
    return T @ np.linalg.solve(T.T @ (Wd[:, None] * T), (Wd[:, None] * T).T)
