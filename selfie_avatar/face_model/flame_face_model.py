"""``FlameFaceModel``: FLAME as the toolkit's :class:`FaceModel` for one subject.

The subject's identity shape (fitted in prepare) is baked into the template; the per-frame code is

    expression = [exp_0 .. exp_{n-1}, jaw_x, jaw_y, jaw_z]

FLAME's first ``n`` expression coefficients, then the jaw's axis-angle rotation in FLAME's own axes (so codes
match other FLAME tools: ``jaw_x > 0`` opens the mouth). Global pose, neck and eyes stay at rest: head pose is the
tracker's (scaled-orthographic camera, as for the default model). Vertices come out in the toolkit's model axes
(x right in the image, y down, z away; FLAME's y up / z towards the camera is turned half a turn about x), in
FLAME's unit (metres).

Per-vertex ``uv`` is a frontal projection of the template (:func:`frontal_uv`) unless a FLAME texture-space file
(``vt``/``ft`` arrays) is given to :func:`uv_from_texture_space`. The model round-trips through
:func:`~selfie_avatar.face_model.save_face_model` as plain arrays; note that those arrays are derived from the
FLAME model and fall under its licence.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.face_model.uv import frontal_uv
from selfie_avatar.face_model.flame import FLAME, flame_to_model
from selfie_avatar.face_model.landmark_embedding import LandmarkEmbedding

__all__ = ["FlameFaceModel", "uv_from_texture_space", "JAW_NAMES"]

JAW_NAMES = ("jaw_x", "jaw_y", "jaw_z")


class FlameFaceModel(FaceModel):
    """FLAME with a fixed identity; ``forward(expression)`` with ``expression = [exp_0..exp_{n-1}, jaw (3)]``.

    Build it with :meth:`from_flame` (bakes a shape code in) or :meth:`from_arrays` (a saved subject model).

    Args:
        v_template: (V, 3) the subject's shaped rest head, FLAME axes.
        exprdirs: (V, 3, n) expression basis.
        posedirs: (V, 3, 36) pose correctives; J_regressor (5, V); parents (5,); weights (V, 5); faces (T, 3).
        embedding: where the tracked landmarks sit on the mesh.
        uv: (V, 2) texture coordinates in [0, 1] (None: frontal projection of the template).
        identity_shape: (S,) the shape code baked into ``v_template`` (kept for records only).
    """

    name = "flame"
    topology = "FLAME head mesh"

    def __init__(self, v_template, exprdirs, posedirs, J_regressor, parents, weights, faces,
                 embedding: LandmarkEmbedding, uv=None, identity_shape=None) -> None:
        super().__init__()
        V = np.asarray(v_template).shape[0]
        self.flame = FLAME(v_template, np.zeros((V, 3, 0)), exprdirs, posedirs, J_regressor, parents, weights, faces)
        embedding.check_mesh(int(self.flame.faces.shape[0]))
        self.embedding = embedding
        template = flame_to_model(self.flame.v_template)
        uv = frontal_uv(template.numpy()) if uv is None else np.asarray(uv, np.float32)
        if uv.shape != (V, 2):
            raise ValueError(f"uv must be ({V}, 2), got {uv.shape}")
        self.register_buffer("template", template)
        self.register_buffer("faces", self.flame.faces.clone())
        self.register_buffer("uv", torch.as_tensor(uv, dtype=torch.float32))
        self.register_buffer("landmark_vertices", self.flame.faces[torch.as_tensor(embedding.face_idx)].clone())
        self.register_buffer("landmark_bary", torch.as_tensor(embedding.bary, dtype=torch.float32))
        shape = np.zeros(0) if identity_shape is None else np.asarray(identity_shape).ravel()
        self.register_buffer("identity_shape", torch.as_tensor(shape, dtype=torch.float32))

    @classmethod
    def from_flame(cls, flame: FLAME, embedding: LandmarkEmbedding, shape: torch.Tensor | None = None,
                   num_expression: int | None = None, uv=None) -> "FlameFaceModel":
        """Bake an identity into a subject model.

        Args:
            flame: the loaded FLAME model.
            embedding: landmark embedding for FLAME's mesh.
            shape: (S,) or (1, S) identity code (None: the mean head).
            num_expression: expression coefficients to keep (None: all of ``flame``'s).
            uv: (V, 2) texture coordinates (None: frontal projection).
        """
        n = flame.num_expression if num_expression is None else int(num_expression)
        if not 0 < n <= flame.num_expression:
            raise ValueError(f"num_expression must be in [1, {flame.num_expression}], got {n}")
        with torch.no_grad():
            code = None if shape is None else shape.detach().reshape(1, -1).to(flame.v_template)
            if code is not None and code.shape[1] != flame.num_shape:
                raise ValueError(f"shape must have {flame.num_shape} entries, got {code.shape[1]}")
            sd = flame.shapedirs
            v_shaped = flame.v_template + (0 if code is None else torch.einsum("vcs,s->vc", sd, code[0]))
        P = flame.posedirs.shape[0]
        posedirs = flame.posedirs.permute(1, 2, 0).reshape(-1, 3, P)
        return cls(v_shaped.cpu().numpy(), flame.exprdirs[:, :, :n].cpu().numpy(), posedirs.cpu().numpy(),
                   flame.J_regressor.cpu().numpy(), np.array(flame.parents), flame.weights.cpu().numpy(),
                   flame.faces.cpu().numpy(), embedding, uv,
                   None if code is None else code[0].cpu().numpy())

    @property
    def num_flame_expression(self) -> int:
        return self.flame.num_expression

    @property
    def expression_names(self) -> list[str]:
        return [f"exp_{i}" for i in range(self.num_flame_expression)] + list(JAW_NAMES)

    def forward(self, expression: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        self._check_expression(expression)
        if identity is not None and identity.numel():
            raise ValueError("the FLAME subject model has its identity baked in; it takes no identity code")
        n = self.num_flame_expression
        verts = self.flame(expression=expression[:, :n], jaw_pose=expression[:, n:])
        return flame_to_model(verts)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, L, 3) embedded landmark positions (barycentric in their triangles)."""
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(f"vertices must be (B, {self.num_vertices}, 3), got {tuple(vertices.shape)}")
        # index_select: advanced indexing with a 2-D index tensor is far slower on CPU.
        corners = vertices.index_select(1, self.landmark_vertices.reshape(-1)).view(vertices.shape[0], -1, 3, 3)
        return (corners * self.landmark_bary[:, :, None]).sum(2)

    # -- persistence ------------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        f = self.flame
        P = f.posedirs.shape[0]
        return {
            "kind": np.array(self.name),
            "v_template": f.v_template.cpu().numpy(),
            "exprdirs": f.exprdirs.cpu().numpy(),
            "posedirs": f.posedirs.permute(1, 2, 0).reshape(-1, 3, P).cpu().numpy(),
            "J_regressor": f.J_regressor.cpu().numpy(),
            "parents": np.array(f.parents, np.int64),
            "weights": f.weights.cpu().numpy(),
            "faces": self.faces.cpu().numpy(),
            "uv": self.uv.cpu().numpy(),
            "identity_shape": self.identity_shape.cpu().numpy(),
            "expression_names": np.array(self.expression_names),
            **self.embedding.to_arrays(),
        }

    @classmethod
    def from_arrays(cls, data) -> "FlameFaceModel":
        kind = str(data["kind"])
        if kind != cls.name:
            raise ValueError(f"face model file holds a {kind!r} model, not {cls.name!r}")
        return cls(data["v_template"], data["exprdirs"], data["posedirs"], data["J_regressor"], data["parents"],
                   data["weights"], data["faces"], LandmarkEmbedding.from_arrays(data), data["uv"],
                   data["identity_shape"])


def uv_from_texture_space(path: str | os.PathLike, faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Per-vertex UV from a FLAME texture-space file (``FLAME_texture.npz`` style: ``vt`` (U, 2), ``ft`` (T, 3)).

    FLAME's texture space has seams, where one vertex has several UVs; each vertex takes the UV of its first
    triangle corner, which is exact away from the seams (they run behind the head and around the eyes). v is
    flipped so it grows downwards like image rows.

    Returns:
        (V, 2) float32 in [0, 1].
    """
    with np.load(path, allow_pickle=False) as z:
        if "vt" not in z.files or "ft" not in z.files:
            raise ValueError(f"{path}: a texture-space file needs 'vt' and 'ft', found {z.files}")
        vt, ft = z["vt"].astype(np.float32), z["ft"].astype(np.int64)
    faces = np.asarray(faces, np.int64)
    if ft.shape != faces.shape:
        raise ValueError(f"{path}: ft {ft.shape} does not match the mesh's faces {faces.shape}")
    uv = np.full((num_vertices, 2), np.nan, np.float32)
    # Assign in reverse so the first corner that uses a vertex wins.
    uv[faces.ravel()[::-1]] = vt[ft.ravel()[::-1]]
    unused = np.isnan(uv[:, 0])
    uv[unused] = 0.5
    uv[:, 1] = 1.0 - uv[:, 1]
    return np.clip(uv, 0.0, 1.0)
