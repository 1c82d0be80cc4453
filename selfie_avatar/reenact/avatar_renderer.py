"""Codes in, avatar frames out: the subject's face model posed by head codes, rendered to ``I_R`` and ``I_UV``
by ``tracking/pose.py``, the same path prepare renders the subject folder with, then the trained image generator.
``reenact``, the live loop and the sliders all go through it.

    codes (HeadCodes, subject crop pixels)
      -> codes.scaled(k)                   to the avatar's size (k = avatar / subject size)
      -> tracking.pose.render_codes        posed vertices (B, V, 3); I_R (B, 3, S, S) quantised to 8 bits like the
                                           PNGs training read; I_UV (B, 3, S, S)
      -> LoadedAvatar.render               image (B, 3, S, S) in [-1, 1]
"""

from __future__ import annotations

import torch

from selfie_avatar.face_model import FaceModel
from selfie_avatar.render import MeshRenderer
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.tracking.pose import render_codes


class AvatarRenderer(torch.nn.Module):
    """Render a trained avatar from head codes.

    Args:
        avatar: the loaded avatar (:func:`~selfie_avatar.training.checkpoint.load_avatar`).
        face_model: the subject's face model (``Subject.face_model()``).
        subject_size: the crop side the codes are measured in (the subject folder's ``size``).

    Example:
        >>> renderer = AvatarRenderer(avatar, subject.face_model(), subject.size)   # doctest: +SKIP
        >>> out = renderer(subject.codes([0]))          # doctest: +SKIP
        >>> out["image"].shape                                                       # doctest: +SKIP
        torch.Size([1, 3, 256, 256])
    """

    def __init__(self, avatar, face_model: FaceModel, subject_size: int) -> None:
        super().__init__()
        if subject_size <= 0:
            raise ValueError(f"subject_size must be positive, got {subject_size}")
        self.avatar = avatar
        self.face_model = face_model
        self.size = int(avatar.config.size)
        self.factor = self.size / float(subject_size)
        self.mesh = MeshRenderer((self.size, self.size), face_model.faces, face_model.uv)
        device = avatar.face_texture.device
        self.face_model.to(device)
        self.mesh.to(device)

    @property
    def device(self) -> torch.device:
        return self.avatar.face_texture.device

    @torch.no_grad()
    def geometry(self, codes: HeadCodes) -> dict[str, torch.Tensor]:
        """``render`` (B, 3, S, S) in [-1, 1], ``uv`` (B, 3, S, S) and the posed mesh ``vertices`` (B, V, 3) in
        screen space, for the codes, at the avatar's size."""
        out = render_codes(self.mesh, self.face_model, codes.scaled(self.factor), self.device)
        # Training saw I_R through 8-bit PNGs; quantise the same way so the generator gets what it knows.
        render = out["render"].mul(255).round().div(127.5).sub(1)
        return {"render": render, "uv": out["uv"], "vertices": out["vertices"]}

    @torch.no_grad()
    def forward(self, codes: HeadCodes, frame_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Avatar frames for the codes.

        Returns:
            dict with ``image`` (B, 3, S, S) in [-1, 1], ``mask`` (B, 1, S, S), and ``render``, ``uv``,
            ``vertices`` as in :meth:`geometry`.
        """
        geo = self.geometry(codes)
        out = self.avatar.render(geo["render"], geo["uv"], frame_index)
        return {"image": out["image"], "mask": out["mask"], **geo}
