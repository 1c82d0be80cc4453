"""What the networks are made of: parameter counts per submodule and the shape of every output, for a preset.

Used by the training notebook (and handy in a shell) to see how a ``ModelConfig`` turns into networks without
reading the code: ``print(format_table(network_summary(ModelConfig.preset("tiny"))["parameters"]))``
(``selfie_avatar.utils.table``).
"""

from __future__ import annotations

import torch
from torch import nn

from .avatar import AvatarGenerator
from .config import ModelConfig
from .discriminator import Discriminator
from .reference import REFERENCE_CHANNELS

__all__ = ["parameter_rows", "network_summary"]


def parameter_rows(module: nn.Module, depth: int = 1, prefix: str = "") -> list[dict]:
    """Parameter counts of ``module``'s children, down to ``depth`` levels.

    Args:
        module: any torch module.
        depth: 0 gives one row for the module itself; 1 adds a row per direct child; and so on.
        prefix: name of the module in the rows (its children are ``prefix.child``).

    Returns:
        Rows ``{"module", "type", "parameters", "trainable"}``, parents before their children.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    rows = [{
        "module": prefix or type(module).__name__,
        "type": type(module).__name__,
        "parameters": sum(p.numel() for p in module.parameters()),
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }]
    if depth > 0:
        for name, child in module.named_children():
            rows.extend(parameter_rows(child, depth - 1, f"{prefix}.{name}" if prefix else name))
    return rows


@torch.no_grad()
def network_summary(cfg: ModelConfig, batch: int = 1, device: str | torch.device = "cpu") -> dict:
    """Build the avatar generator and the discriminator for ``cfg`` and run each once on blank inputs.

    Args:
        cfg: the architecture (e.g. ``ModelConfig.preset("tiny")``).
        batch: batch size of the blank inputs.
        device: where to build and run them.

    Returns:
        ``{"generator": AvatarGenerator, "discriminator": Discriminator, "parameters": rows (see
        :func:`parameter_rows`, depth 1, for both), "shapes": rows {"tensor", "role", "shape"}}`` covering the
        generator's inputs, its outputs (``image``, ``mask``, ``texture_rgb``, ``bg_features``, ...) and the
        discriminator's score ``D(image, I_R)``.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    gen = AvatarGenerator(cfg).to(device).eval()
    disc = Discriminator(cfg).to(device).eval()
    s = cfg.size
    render = torch.zeros(batch, 3, s, s, device=device)
    uv = torch.zeros(batch, 3, s, s, device=device)
    plate = torch.zeros(1, 3, s, s, device=device) if cfg.use_background_plate else None
    reference = torch.zeros(batch, REFERENCE_CHANNELS, s, s, device=device) if cfg.reference_frames else None
    out = gen(render, uv, plate=plate, reference=reference)
    score = disc(out["image"], render)
    shapes = [{"tensor": "I_R (render)", "role": "generator input", "shape": tuple(render.shape)},
              {"tensor": "I_UV (u, v, mask)", "role": "generator input", "shape": tuple(uv.shape)}]
    if plate is not None:
        shapes.append({"tensor": "background plate", "role": "generator input", "shape": tuple(plate.shape)})
    if reference is not None:
        shapes.append({"tensor": "reference (moved with the head, as filmed)", "role": "generator input",
                       "shape": tuple(reference.shape)})
    shapes += [{"tensor": k, "role": "generator output", "shape": tuple(v.shape)} for k, v in out.items()
               if isinstance(v, torch.Tensor)]
    shapes.append({"tensor": "score", "role": "discriminator output (image, I_R)", "shape": tuple(score.shape)})
    return {
        "generator": gen, "discriminator": disc,
        "parameters": parameter_rows(gen, 1, "generator") + parameter_rows(disc, 1, "discriminator"),
        "shapes": shapes,
    }

