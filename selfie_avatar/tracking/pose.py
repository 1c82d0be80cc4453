"""Codes to pixels, the one path: expression codes -> face model -> pose and camera -> posed vertices, landmarks,
and the rasterised ``I_R`` and ``I_UV``. prepare renders the subject folder's images with it, reenact and the
sliders render the avatar's inputs with it, viz draws the fitted mesh with it and the encoder's report projects
landmarks with it, so the geometry is the same everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.render import MeshRenderer, project
from selfie_avatar.tracking.codes import HeadCodes, TorchCodes


def posed_vertices(face_model: FaceModel, codes: TorchCodes) -> Tensor:
    """Screen-space vertices (crop pixels, depth in z) of the codes; differentiable.

    Shape:
        - codes: rotation :math:`(B, 3, 3)`, scale :math:`(B,)`, translation :math:`(B, 2)`, expression :math:`(B, E)`
        - output: :math:`(B, V, 3)`
    """
    if codes.expression.shape[-1] != face_model.num_expression:
        raise ValueError(f"codes have {codes.expression.shape[-1]} expression entries, the face model takes "
                         f"{face_model.num_expression}")
    verts = face_model(codes.expression.float())  # (B, V, 3) model space
    # the translation's z never changes what is in front, so only its x, y are used
    return project(verts, codes.rotation.float(), codes.scale.float(), codes.translation[..., :2].float())


def posed_landmarks(face_model: FaceModel, codes: TorchCodes, num_landmarks: int | None = None) -> Tensor:
    """2D landmark positions of the codes (the face model's landmark embedding, posed); differentiable.

    Shape:
        - output: :math:`(B, L, 2)`, the first ``num_landmarks`` landmarks (all by default)
    """
    verts = face_model(codes.expression.float())
    lmk = face_model.landmarks(verts)[:, :num_landmarks]
    return project(lmk, codes.rotation.float(), codes.scale.float(), codes.translation[..., :2].float())[..., :2]


@torch.no_grad()
def render_codes(renderer: MeshRenderer, face_model: FaceModel, codes: HeadCodes,
                 device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """``I_R``, ``I_UV`` and the posed mesh of the codes, at the renderer's size.

    Returns:
        ``render`` (B, 3, S, S) grey shading in [0, 1] (0 off the mesh), ``uv`` (B, 3, S, S) (u, v, coverage),
        ``vertices`` (B, V, 3) screen space.
    """
    screen = posed_vertices(face_model, codes.torch(device))
    out = renderer(screen)
    return {"render": out["render"], "uv": out["uv"], "vertices": screen}
