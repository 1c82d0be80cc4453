"""Image panels during training: real | generated | I_R | I_UV | predicted mask (| reference moved with the head |
its weight, with a reference bank) (| the photo texture's weight, with one), one row per sample.

Saved as PNG under ``<run>/images/`` always, and sent to Weights & Biases when a W&B logger is attached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from selfie_avatar.io.image import write_image
from selfie_avatar.utils.images import to_uint8

PANEL_COLUMNS = ("real", "generated", "I_R", "I_UV", "mask")
REFERENCE_COLUMNS = ("reference", "reference weight")
PHOTO_COLUMNS = ("photo weight",)


def panel_columns(out: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """The columns a panel of ``out`` shows."""
    return (PANEL_COLUMNS + (REFERENCE_COLUMNS if out.get("reference") is not None else ())
            + (PHOTO_COLUMNS if out.get("photo_weight") is not None else ()))


def panel_grid(batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """(rows * S, len(panel_columns(out)) * S, 3) uint8 grid."""
    n = min(rows, batch["image"].shape[0])

    def rgb(x):  # [-1, 1] -> [0, 1]
        return ((x[:n].detach().float() + 1) / 2).clamp(0, 1)

    uv = batch["uv"][:n].detach().float()
    uv_img = torch.cat([uv[:, :2], torch.zeros_like(uv[:, :1])], 1) * uv[:, 2:3]
    mask = out["mask"][:n].detach().float().clamp(0, 1).expand(-1, 3, -1, -1)
    cols = [rgb(batch["image"]), rgb(out["image"]), rgb(batch["render"]), uv_img, mask]
    if out.get("reference") is not None:
        weight = out["reference_weight"][:n].detach().float().clamp(0, 1).expand(-1, 3, -1, -1)
        cols += [rgb(out["reference"][:, :3]), weight]
    if out.get("photo_weight") is not None:
        cols.append(out["photo_weight"][:n].detach().float().clamp(0, 1).expand(-1, 3, -1, -1))
    grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2)  # (3, n*S, columns*S)
    return to_uint8(grid)


def log_panels(module, batch, out, tag: str, step: int) -> Path | None:
    trainer = getattr(module, "_trainer", None)
    if trainer is None or not trainer.is_global_zero:
        return None
    grid = panel_grid(batch, out)
    path = Path(trainer.default_root_dir) / "images" / f"{tag}_{step:07d}.png"
    write_image(path, grid)
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.log_image(key=f"{tag}/panels", images=[grid], caption=[" | ".join(panel_columns(out))], step=step)
    return path
