"""FLAME (Li et al., SIGGRAPH Asia 2017): loading the licensed model file and its full forward pass in PyTorch.

The model files (``generic_model.pkl`` of FLAME 2020, ``flame2023.pkl`` of FLAME 2023) are obtained by the user
from https://flame.is.tue.mpg.de after registering; nothing here downloads them. They are read with the
restricted unpickler of :mod:`.safe_pickle`, so a crafted file cannot run code.

Forward pass (everything in FLAME's own axes: metres, x to the subject's left, y up, z towards the camera)::

    v_shaped = v_template + shapedirs @ shape + exprdirs @ expression
    J        = J_regressor @ v_shaped                               (5 joints: root, neck, jaw, eye, eye)
    R_k      = rodrigues(pose_k)                                    (global, neck, jaw, eye, eye)
    v_posed  = v_shaped + posedirs @ vec(R_1..4 - I)                (pose correctives; the root is excluded)
    v        = sum_k weights_k * G_k(J, R) @ v_posed                (linear blend skinning along the kinematic tree)

``J`` is linear in the codes, so it is computed from ``J_regressor`` applied to each basis once, at construction;
that makes a forward over a few vertices only (``vertex_ids``, used by the landmark fit) exact and cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfie_avatar.face_model.safe_pickle import UnresolvedObject, load_pickle
from selfie_avatar.geometry.rotation import axis_angle_to_matrix

__all__ = ["FLAME", "load_flame_arrays", "lbs", "flame_to_model", "FLAME_SHAPE_COLUMNS"]

# FLAME 2020 and 2023 files stack 300 shape columns, then the expression columns, in one ``shapedirs``.
FLAME_SHAPE_COLUMNS = 300
_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights", "f")


def flame_to_model(points: torch.Tensor) -> torch.Tensor:
    """FLAME axes (y up, z towards the camera) -> the toolkit's model axes (y down, z away).

    A half turn about x: lengths, handedness and the winding of triangles as seen from the camera are kept.

    Shape:
        - points: :math:`(..., 3)`
        - output: :math:`(..., 3)`
    """
    return points * points.new_tensor([1.0, -1.0, -1.0])


def load_flame_arrays(path: str | os.PathLike, shape_columns: int | None = None) -> dict[str, np.ndarray]:
    """Read a FLAME model file into plain arrays.

    Args:
        path: ``generic_model.pkl`` (FLAME 2020), ``flame2023.pkl`` (FLAME 2023) or a file in the same format.
        shape_columns: how many leading ``shapedirs`` columns are identity shape (the rest are expression).
            None: 300 when the file has more than 300 columns, as FLAME 2020/2023 do.

    Returns:
        ``v_template`` (V, 3), ``shapedirs`` (V, 3, S), ``exprdirs`` (V, 3, E), ``posedirs`` (V, 3, 9 (J - 1)),
        ``J_regressor`` (J, V), ``parents`` (J,) with -1 for the root, ``weights`` (V, J), ``faces`` (T, 3) int64.

    Raises:
        UnsafePickleError: the file names anything but arrays (it may try to run code).
        ValueError: a key is missing or an array has the wrong shape.
    """
    path = Path(path)
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a FLAME file holds a dict, found {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{path}: not a FLAME model file, keys {missing} are missing (has {sorted(data)})")
    for k in _REQUIRED:
        if isinstance(data[k], UnresolvedObject):
            raise ValueError(f"{path}: '{k}' could not be read as an array: {data[k]!r}")
    v_template = np.asarray(data["v_template"], np.float64)
    if v_template.ndim != 2 or v_template.shape[1] != 3:
        raise ValueError(f"{path}: v_template must be (V, 3), got {v_template.shape}")
    V = v_template.shape[0]
    dirs = np.asarray(data["shapedirs"], np.float64)
    if dirs.shape[:2] != (V, 3) or dirs.ndim != 3:
        raise ValueError(f"{path}: shapedirs must be ({V}, 3, K), got {dirs.shape}")
    K = dirs.shape[2]
    if shape_columns is None:
        if K <= FLAME_SHAPE_COLUMNS:
            raise ValueError(f"{path}: shapedirs has {K} columns, too few for FLAME's 300 shape + expression; "
                             "pass shape_columns to say where expression starts")
        shape_columns = FLAME_SHAPE_COLUMNS
    if not 0 <= shape_columns < K:
        raise ValueError(f"{path}: shape_columns={shape_columns} leaves no expression columns out of {K}")
    kintree = np.asarray(data["kintree_table"]).astype(np.int64)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise ValueError(f"{path}: kintree_table must be (2, J), got {kintree.shape}")
    J = kintree.shape[1]
    # The root's parent is stored as uint32 -1 (4294967295); any out-of-range parent means "none".
    parents = np.where((kintree[0] < 0) | (kintree[0] >= J), -1, kintree[0])
    order = np.argsort(kintree[1])
    parents = parents[order]
    posedirs = np.asarray(data["posedirs"], np.float64)
    P = 9 * (J - 1)
    if posedirs.shape == (V * 3, P):
        posedirs = posedirs.reshape(V, 3, P)
    if posedirs.shape != (V, 3, P):
        raise ValueError(f"{path}: posedirs must be ({V}, 3, {P}) or ({V * 3}, {P}), got {posedirs.shape}")
    J_reg = np.asarray(data["J_regressor"], np.float64)
    if J_reg.shape != (J, V):
        raise ValueError(f"{path}: J_regressor must be ({J}, {V}), got {J_reg.shape}")
    weights = np.asarray(data["weights"], np.float64)
    if weights.shape != (V, J):
        raise ValueError(f"{path}: weights must be ({V}, {J}), got {weights.shape}")
    faces = np.asarray(data["f"]).astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= V:
        raise ValueError(f"{path}: f must be (T, 3) vertex indices below {V}, got {faces.shape}")
    return {
        "v_template": v_template, "shapedirs": dirs[:, :, :shape_columns], "exprdirs": dirs[:, :, shape_columns:],
        "posedirs": posedirs, "J_regressor": J_reg, "parents": parents, "weights": weights, "faces": faces,
    }


def _rigid_transforms(rot: torch.Tensor, joints: torch.Tensor, parents: list[int]):
    """World transforms of the kinematic chain, as (B, J, 3, 4) ``[R | t]`` acting on *rest-pose* points.

    Returns also the posed joint positions (B, J, 3).
    """
    rel = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parents[1:]]], dim=1)
    world_R, world_t = [rot[:, 0]], [rel[:, 0]]
    for i in range(1, len(parents)):
        p = parents[i]
        world_R.append(world_R[p] @ rot[:, i])
        world_t.append(world_t[p] + (world_R[p] @ rel[:, i, :, None]).squeeze(-1))
    R = torch.stack(world_R, 1)
    t = torch.stack(world_t, 1)
    # Skinning moves rest-pose points, so each transform first takes its joint's rest position to the origin.
    t_rest = t - (R @ joints[..., None]).squeeze(-1)
    return torch.cat([R, t_rest[..., None]], -1), t


def lbs(v_shaped: torch.Tensor, joints: torch.Tensor, rot: torch.Tensor, posedirs: torch.Tensor,
        parents: list[int], weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose correctives and linear blend skinning.

    Args:
        v_shaped: rest-pose vertices with shape and expression applied.
        joints: rest-pose joint positions (regressed from the shaped template).
        rot: per-joint rotation matrices, joint 0 is the root (global).
        posedirs: pose-corrective basis; row k multiplies entry k of vec(R_1..J-1 - I).
        parents: parent joint index per joint (-1 for the root; a parent comes before its children).
        weights: skinning weights.

    Returns:
        (posed vertices, posed joints).

    Shape:
        - v_shaped: :math:`(B, V, 3)`
        - joints: :math:`(B, J, 3)`
        - rot: :math:`(B, J, 3, 3)`
        - posedirs: :math:`(9 (J - 1), V, 3)`
        - weights: :math:`(V, J)`
        - output: :math:`(B, V, 3)`, :math:`(B, J, 3)`
    """
    B, V, _ = v_shaped.shape
    J = joints.shape[1]
    if rot.shape != (B, J, 3, 3) or posedirs.shape != (9 * (J - 1), V, 3) or weights.shape != (V, J):
        raise ValueError(f"lbs: inconsistent shapes v_shaped {tuple(v_shaped.shape)}, joints {tuple(joints.shape)}, "
                         f"rot {tuple(rot.shape)}, posedirs {tuple(posedirs.shape)}, weights {tuple(weights.shape)}")
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    pose_feature = (rot[:, 1:] - eye).reshape(B, -1)
    v_posed = v_shaped + (pose_feature @ posedirs.reshape(-1, V * 3)).view(B, V, 3)
    A, posed_joints = _rigid_transforms(rot, joints, parents)
    T = (weights @ A.reshape(B, J, 12)).view(B, V, 3, 4)  # one blended [R | t] per vertex
    # Elementwise, not a batch of 3x3 matmuls: far faster for millions of tiny products (and under vmap).
    verts = (T[..., :3] * v_posed[..., None, :]).sum(-1) + T[..., 3]
    return verts, posed_joints


class FLAME(nn.Module):
    """The FLAME head model (arrays as returned by :func:`load_flame_arrays`; see the module docstring).

    Args:
        v_template: (V, 3) mean head.
        shapedirs: (V, 3, S) identity basis (S may be 0).
        exprdirs: (V, 3, E) expression basis.
        posedirs: (V, 3, 9 (J - 1)) pose-corrective basis.
        J_regressor: (J, V) joint regressor.
        parents: (J,) kinematic tree, -1 for the root.
        weights: (V, J) skinning weights.
        faces: (T, 3) triangles.
    """

    def __init__(self, v_template, shapedirs, exprdirs, posedirs, J_regressor, parents, weights, faces) -> None:
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        v_template, shapedirs, exprdirs = f32(v_template), f32(shapedirs), f32(exprdirs)
        posedirs, J_regressor, weights = f32(posedirs), f32(J_regressor), f32(weights)
        V = v_template.shape[0]
        J = J_regressor.shape[0]
        parents = [int(p) for p in np.asarray(parents).ravel()]
        if v_template.shape != (V, 3):
            raise ValueError(f"v_template must be (V, 3), got {tuple(v_template.shape)}")
        for name, t in (("shapedirs", shapedirs), ("exprdirs", exprdirs)):
            if t.ndim != 3 or t.shape[:2] != (V, 3):
                raise ValueError(f"{name} must be ({V}, 3, K), got {tuple(t.shape)}")
        if posedirs.shape != (V, 3, 9 * (J - 1)):
            raise ValueError(f"posedirs must be ({V}, 3, {9 * (J - 1)}), got {tuple(posedirs.shape)}")
        if J_regressor.shape != (J, V) or weights.shape != (V, J):
            raise ValueError(f"J_regressor must be ({J}, {V}) and weights ({V}, {J}), got "
                             f"{tuple(J_regressor.shape)} and {tuple(weights.shape)}")
        if len(parents) != J or parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i):
            raise ValueError(f"parents must list each joint's parent before it, root first (-1), got {parents}")
        self.parents = parents
        self.register_buffer("v_template", v_template)
        self.register_buffer("shapedirs", shapedirs)
        self.register_buffer("exprdirs", exprdirs)
        self.register_buffer("posedirs", posedirs.permute(2, 0, 1).contiguous())  # (P, V, 3)
        self.register_buffer("J_regressor", J_regressor)
        self.register_buffer("weights", weights)
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.long))
        # Joints are linear in the codes: regress each basis once (exact, and independent of vertex_ids).
        self.register_buffer("J_template", J_regressor @ v_template)
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcs->jcs", J_regressor, shapedirs))
        self.register_buffer("J_exprdirs", torch.einsum("jv,vcs->jcs", J_regressor, exprdirs))

    @classmethod
    def from_file(cls, path: str | os.PathLike, num_shape: int | None = None, num_expression: int | None = None,
                  shape_columns: int | None = None) -> "FLAME":
        """Load a FLAME file, keeping the first ``num_shape`` / ``num_expression`` components (None: all)."""
        return cls.from_arrays(load_flame_arrays(path, shape_columns), num_shape, num_expression, str(path))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], num_shape: int | None = None,
                    num_expression: int | None = None, source: str = "FLAME") -> "FLAME":
        """Build from :func:`load_flame_arrays`' output, keeping the first components (None: all)."""
        a = arrays
        for name, n, have in (("num_shape", num_shape, a["shapedirs"].shape[2]),
                              ("num_expression", num_expression, a["exprdirs"].shape[2])):
            if n is not None and not 0 <= n <= have:
                raise ValueError(f"{source}: {name}={n}, but the model has {have} such components")
        return cls(a["v_template"], a["shapedirs"][:, :, :num_shape], a["exprdirs"][:, :, :num_expression],
                   a["posedirs"], a["J_regressor"], a["parents"], a["weights"], a["faces"])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expression(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def _codes(self, batch: int, shape, expression, pose: dict[str, torch.Tensor | None]):
        zeros = lambda n: self.v_template.new_zeros(batch, n)  # noqa: E731
        shape = zeros(self.num_shape) if shape is None else shape
        expression = zeros(self.num_expression) if expression is None else expression
        for name, t, n in (("shape", shape, self.num_shape), ("expression", expression, self.num_expression)):
            if t.shape != (batch, n):
                raise ValueError(f"FLAME: {name} must be ({batch}, {n}), got {tuple(t.shape)}")
        sizes = {"global_pose": 3, "neck_pose": 3, "jaw_pose": 3, "eye_pose": 3 * (self.num_joints - 3)}
        parts = []
        for name, n in sizes.items():
            t = pose.get(name)
            t = zeros(n) if t is None else t
            if t.shape != (batch, n):
                raise ValueError(f"FLAME: {name} must be ({batch}, {n}), got {tuple(t.shape)}")
            parts.append(t)
        return shape, expression, torch.cat(parts, 1).view(batch, -1, 3)

    def forward(self, shape: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                global_pose: torch.Tensor | None = None, neck_pose: torch.Tensor | None = None,
                jaw_pose: torch.Tensor | None = None, eye_pose: torch.Tensor | None = None,
                vertex_ids: torch.Tensor | None = None, return_joints: bool = False):
        """Posed vertices in FLAME's axes.

        Args:
            shape: identity codes (None: zeros, the mean head).
            expression: expression codes (None: zeros).
            global_pose, neck_pose, jaw_pose: axis-angle rotations of joints 0, 1, 2 (None: zeros).
            eye_pose: axis-angle rotations of the two eye joints (3 and 4, in the file's order), concatenated.
            vertex_ids: evaluate only these vertices (the result is exactly those rows of the full forward).
            return_joints: also return the posed joints.

        Returns:
            Vertices, and the joints when ``return_joints``.

        Shape:
            - shape: :math:`(B, S)`; expression: :math:`(B, E)`
            - global_pose, neck_pose, jaw_pose: :math:`(B, 3)`; eye_pose: :math:`(B, 6)`
            - vertex_ids: :math:`(K,)`
            - output: :math:`(B, V, 3)` (or :math:`(B, K, 3)`), joints :math:`(B, J, 3)`
        """
        given = [t for t in (shape, expression, global_pose, neck_pose, jaw_pose, eye_pose) if t is not None]
        batch = given[0].shape[0] if given else 1
        shape, expression, pose = self._codes(batch, shape, expression, dict(
            global_pose=global_pose, neck_pose=neck_pose, jaw_pose=jaw_pose, eye_pose=eye_pose))
        if vertex_ids is None:
            tmpl, sd, ed, pd, w = self.v_template, self.shapedirs, self.exprdirs, self.posedirs, self.weights
        else:
            ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=self.v_template.device)
            tmpl, sd, ed = (t.index_select(0, ids) for t in (self.v_template, self.shapedirs, self.exprdirs))
            pd, w = self.posedirs.index_select(1, ids), self.weights.index_select(0, ids)
        v_shaped = tmpl + torch.einsum("vcs,bs->bvc", sd, shape) + torch.einsum("vcs,bs->bvc", ed, expression)
        joints = (self.J_template + torch.einsum("jcs,bs->bjc", self.J_shapedirs, shape)
                  + torch.einsum("jcs,bs->bjc", self.J_exprdirs, expression))
        rot = axis_angle_to_matrix(pose)
        verts, posed_joints = lbs(v_shaped, joints, rot, pd, self.parents, w)
        return (verts, posed_joints) if return_joints else verts
