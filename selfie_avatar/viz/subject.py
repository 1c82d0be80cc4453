"""Pictures of one frame of a subject folder, stage by stage, and its fitted mesh in 3D."""

from __future__ import annotations

import numpy as np
import torch

from selfie_avatar.tracking.status import MISSING
from selfie_avatar.tracking.subject import Subject
from selfie_avatar.tracking.pose import posed_vertices
from selfie_avatar.viz.plots import as_rgb, mesh_overlay, uv_image

__all__ = ["frame_panels", "subject_mesh", "pick_frames"]


def _check_index(subject: Subject, index: int) -> int:
    if not 0 <= int(index) < len(subject):
        raise IndexError(f"frame {index} is outside {subject.root} (frames 0..{len(subject) - 1})")
    return int(index)


def pick_frames(subject: Subject, count: int = 4) -> list[int]:
    """``count`` training frames spread evenly over the clip (fewer when the subject has fewer)."""
    train = subject.train_indices
    if count < 1 or not train:
        return []
    pos = np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(int)
    return [train[p] for p in pos]


def frame_panels(subject: Subject, index: int) -> dict[str, np.ndarray]:
    """The images ``prepare`` made for one frame, named, as ``(S, S, 3)`` uint8.

    Returns:
        ``{"frame", "I_R (render)", "mesh over frame", "I_UV (u red, v green)", "matte", "background plate"}``.
    """
    i = _check_index(subject, index)
    frame, render, uv = subject.frame(i), subject.render(i), subject.uv(i)
    return {
        "frame": frame,
        "I_R (render)": render,
        "mesh over frame": mesh_overlay(frame, render, uv),
        "I_UV (u red, v green)": uv_image(uv),
        "matte": as_rgb(subject.matte(i)),
        "background plate": subject.background,
    }


@torch.no_grad()
def subject_mesh(subject: Subject, index: int, posed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The fitted face mesh of one frame.

    Args:
        subject: a prepared subject.
        index: the frame.
        posed: True: in crop pixels, with the frame's head pose and camera (lines up with the frame); False: in
            model space (the expression only).

    Returns:
        ``(vertices (V, 3) float32, faces (T, 3) int64)``.

    Raises:
        ValueError: the frame has no face (missing) and ``posed`` is asked for.
    """
    i = _check_index(subject, index)
    tr = subject.tracking
    model = subject.face_model()
    if posed:
        if int(tr["status"][i]) == MISSING:
            raise ValueError(f"frame {i} of {subject.root} has no tracked face; choose a training frame")
        verts = posed_vertices(model, subject.codes([i]).torch())
    else:
        verts = model(torch.from_numpy(tr["expression"][i : i + 1]).float())
    return verts[0].numpy().astype(np.float32), model.faces.numpy().astype(np.int64)
