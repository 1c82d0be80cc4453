"""Looking into a training run: its image panels over time and what the trained networks learned."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from selfie_avatar.io.image import read_image
from selfie_avatar.viz.plots import features_to_image

__all__ = ["run_panels", "avatar_maps", "avatar_frames"]

_PANEL = re.compile(r"^(?P<tag>[a-z]+)_(?P<step>\d+)\.png$")


def run_panels(run_dir: str | Path, tag: str = "val", last: int | None = 1) -> list[tuple[int, np.ndarray]]:
    """The image panels a run saved (``RUN/images/TAG_STEP.png``: real | generated | I_R | I_UV | mask rows).

    Args:
        run_dir: a training run folder.
        tag: ``train`` or ``val``.
        last: how many of the latest panels (None: all).

    Returns:
        ``[(step, image), ...]`` in step order; empty when the run has saved none yet.
    """
    folder = Path(run_dir) / "images"
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run folder")
    found = []
    for p in folder.glob(f"{tag}_*.png"):
        m = _PANEL.match(p.name)
        if m and m["tag"] == tag:
            found.append((int(m["step"]), p))
    found.sort()
    if last is not None:
        found = found[-last:] if last > 0 else []
    return [(step, read_image(p)) for step, p in found]


def avatar_maps(avatar) -> dict[str, np.ndarray]:
    """Pictures of what a trained avatar keeps besides the image generator (``training.checkpoint.LoadedAvatar``).

    Returns:
        ``{"face texture (RGB view)", "face texture (features 3-5)", "background canvas (RGB view)"}`` as uint8
        images: the neural texture in UV space, which the warp through ``I_UV`` lays onto the face, and the
        background canvas the frame is a window of. Each channel is stretched to show its structure
        (:func:`viz.plots.features_to_image`).
    """
    tex, bg = avatar.face_texture, avatar.bg_canvas
    maps = {"face texture (RGB view)": features_to_image(tex[:, :3])}
    if tex.shape[1] >= 6:
        maps["face texture (features 3-5)"] = features_to_image(tex[:, 3:6])
    maps["background canvas (RGB view)"] = features_to_image(bg[:, :3])
    return maps


def avatar_frames(avatar, subject, indices, device: str = "cpu") -> dict[str, list[np.ndarray]]:
    """Render subject frames with a trained avatar from their own tracked ``I_R`` and ``I_UV``.

    Args:
        avatar: ``training.checkpoint.load_avatar(...)``.
        subject: the subject folder (or ``Subject``) it was trained on.
        indices: frame indices (held-out frames show how it generalises).

    Returns:
        ``{"real": [...], "generated": [...]}`` as ``(S, S, 3)`` uint8 at the avatar's resolution.
    """
    import torch

    from selfie_avatar.training.data import SubjectFrames
    from selfie_avatar.utils.images import SIGNED, to_uint8

    indices = list(indices)
    if not indices:
        raise ValueError("avatar_frames needs at least one frame index")
    data = SubjectFrames(subject, indices, size=avatar.config.size, cache=False)
    batch = torch.utils.data.default_collate([data[k] for k in range(len(data))])
    with torch.no_grad():
        fake = avatar.render(batch["render"].to(device), batch["uv"].to(device))["image"].cpu()
    return {"real": list(to_uint8(batch["image"], SIGNED)), "generated": list(to_uint8(fake, SIGNED))}
