"""Pairing generated and real feature maps layer by layer, with their weights (shared by the feature losses)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch


def layer_pairs(fake_feats: Mapping[str, torch.Tensor], real_feats: Mapping[str, torch.Tensor],
                layers: Sequence[str], layer_weights: Sequence[float] | None,
                loss: str) -> Iterator[tuple[str, float, torch.Tensor, torch.Tensor]]:
    """Yield (layer, weight, fake, real) for each requested layer, after checking the inputs.

    Raises:
        ValueError: no layers, a weight count that does not match, a layer missing from the features, or fake and
            real maps of different shapes (``loss`` names the caller in the message).
    """
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"{loss} needs at least one layer")
    weights = (1.0,) * len(layers) if layer_weights is None else tuple(layer_weights)
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} layer weights for {len(layers)} layers")
    for name, w in zip(layers, weights):
        if name not in fake_feats or name not in real_feats:
            raise ValueError(f"layer {name!r} missing from the features (have {sorted(fake_feats)})")
        f, r = fake_feats[name], real_feats[name]
        if f.ndim != 4 or f.shape != r.shape:
            raise ValueError(f"{name}: fake {tuple(f.shape)} and real {tuple(r.shape)} must be equal (B, C, H, W)")
        yield name, w, f, r
