"""Frozen VGG feature extractor shared by the perceptual losses (ID-MRF, cosine multi-scale).

Which weights it runs with (an exact ImageNet VGG16 by default, then the quantised VGG19, HED's trunk, or a seeded
random VGG19), and why, is :mod:`selfie_avatar.assets.vgg_weights`.

Layers are named as in the VGG papers: ``relu{block}_{index}`` is the ReLU after the ``index``-th convolution of
the ``block``-th block; on a VGG16 trunk, VGG19-only names map to the last ReLU of their block.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.assets.vgg_weights import (IMAGENET_MEAN, IMAGENET_STD, RANDOM_SEED, TRUNKS, VGGSource,
                                              resolve_vgg_weights)
from selfie_avatar.assets.weights_io import VGG16_BLOCKS, VGG19_BLOCKS, VGG_CHANNELS, vgg_conv_indices
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")
_LAYER_RE = re.compile(r"^relu([1-5])_([1-4])$")


def _parse_layer(name: str) -> tuple[int, int]:
    m = _LAYER_RE.match(name)
    if m is None or int(m.group(2)) > VGG19_BLOCKS[int(m.group(1)) - 1]:
        valid = ", ".join(f"relu{b + 1}_{i + 1}" for b, n in enumerate(VGG19_BLOCKS) for i in range(n))
        raise ValueError(f"unknown VGG layer {name!r}; valid names: {valid}")
    return int(m.group(1)), int(m.group(2))


def map_layers_to_vgg16(layers: Sequence[str]) -> dict[str, str]:
    """Map VGG19 layer names onto the closest VGG16 layers.

    VGG16 has three convolutions in blocks 3-5 where VGG19 has four, so ``relu{b}_4`` becomes the last ReLU of
    the same block, ``relu{b}_3``; every other name exists in both networks and is kept.

    Args:
        layers: VGG19 layer names such as ``"relu3_4"``.

    Returns:
        Requested name -> VGG16 name.
    """
    out = {}
    for name in layers:
        block, index = _parse_layer(name)
        out[name] = f"relu{block}_{min(index, VGG16_BLOCKS[block - 1])}"
    return out


def _relu_index(name: str, blocks: Sequence[int]) -> int:
    """Position of a ReLU in a torchvision-style ``features`` Sequential (conv, relu, ..., pool per block)."""
    block, index = _parse_layer(name)
    if index > blocks[block - 1]:
        raise ValueError(f"layer {name!r} does not exist in a network with blocks {tuple(blocks)}")
    start = sum(2 * n + 1 for n in blocks[: block - 1])
    return start + 2 * (index - 1) + 1


def _random_state(blocks: Sequence[int], depth: int, seed: int) -> dict[str, torch.Tensor]:
    # A private generator keeps the fallback reproducible without touching the global RNG.
    g = torch.Generator().manual_seed(seed)
    state, in_ch = {}, 3
    convs = iter(vgg_conv_indices(blocks))
    for n, ch in zip(blocks, VGG_CHANNELS):
        for _ in range(n):
            i = next(convs)
            if i < depth:
                w = torch.empty(ch, in_ch, 3, 3)
                nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g)
                state[f"features.{i}.weight"], state[f"features.{i}.bias"] = w, torch.zeros(ch)
            in_ch = ch
    return state


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W) RGB in [-1, 1], got shape {tuple(images.shape)}")


class VGGFeatures(nn.Module):
    """Frozen VGG trunk returning named ReLU activations.

    The trunk is cut after the deepest requested layer. Its weights are fixed (non-persistent buffers: no
    parameters, nothing in ``state_dict``; they still follow ``.to(device)``) and the module is always in eval
    mode; gradients flow to the input images. Each weight source gets the input convention it was trained
    with (see the module docstring). On a VGG16 trunk, names missing from VGG16 map to the last ReLU of their
    block (recorded in ``source.note`` and :attr:`layer_map`).

    Args:
        layers: names ``relu{block}_{index}`` to return.
        weights_path: a weights file; ``None`` searches as :func:`resolve_vgg_weights` does.
        source: an already resolved source (overrides ``weights_path``).

    Attributes:
        source: the :class:`VGGSource` actually used.
        layer_map: requested name -> name in the network that computes it.
        depth: number of trunk modules kept (torchvision indexing: the deepest tap's index + 1).

    Shape:
        - Input: :math:`(B, 3, H, W)`, RGB in :math:`[-1, 1]`.
        - Output: dict of :math:`(B, C_l, H / 2^{b-1}, W / 2^{b-1})` for each requested ``relu{b}_i``.
    """

    def __init__(
        self,
        layers: Sequence[str] = DEFAULT_LAYERS,
        weights_path: str | os.PathLike | None = None,
        source: VGGSource | None = None,
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        if not layers:
            raise ValueError("VGGFeatures needs at least one layer")
        for name in layers:
            _parse_layer(name)
        self.layers = layers
        src = source if source is not None else resolve_vgg_weights(weights_path)
        if src.kind != "random" and src.kind not in TRUNKS:
            raise ValueError(f"unknown VGG source kind {src.kind!r}; known: {sorted(TRUNKS)} and 'random'")
        trunk = TRUNKS.get(src.kind)
        blocks = trunk.blocks if trunk else VGG19_BLOCKS
        if blocks == VGG16_BLOCKS:
            self.layer_map = map_layers_to_vgg16(layers)
            renamed = {k: v for k, v in self.layer_map.items() if k != v}
            if renamed:
                src = VGGSource(src.kind, src.path, src.note + "; VGG16 layers used for " + ", ".join(
                    f"{k}->{v}" for k, v in renamed.items()))
        else:
            self.layer_map = {name: name for name in layers}
        self._taps = {name: _relu_index(net_name, blocks) for name, net_name in self.layer_map.items()}
        depth = max(self._taps.values()) + 1
        state = trunk.read(src.path) if trunk else _random_state(blocks, depth, RANDOM_SEED)
        if trunk:
            self._set_input_affine(trunk.mean_rgb, trunk.std, trunk.bgr)
        else:
            self._set_input_affine(IMAGENET_MEAN, IMAGENET_STD, bgr=False)
        self.source = src
        # Fixed weights live in non-persistent buffers: they follow .to(device) but stay out of state_dict, so
        # a checkpoint of a model that holds this loss neither carries tens of MB of VGG nor breaks on resume
        # when the weight source differs.
        convs = set(vgg_conv_indices(blocks))
        pools = {sum(2 * n + 1 for n in blocks[: b + 1]) - 1 for b in range(len(blocks))}
        self._ops: list[str] = []
        for i in range(depth):
            if i in convs:
                self.register_buffer(f"_w{i}", state[f"features.{i}.weight"].float().clone(), persistent=False)
                self.register_buffer(f"_b{i}", state[f"features.{i}.bias"].float().clone(), persistent=False)
                self._ops.append("conv")
            else:
                self._ops.append("pool" if i in pools else "relu")
        self._ceil_mode = bool(trunk and trunk.ceil_mode)
        super().train(False)

    @property
    def depth(self) -> int:
        """Number of trunk modules kept (conv, ReLU and pool each count one, as in torchvision)."""
        return len(self._ops)

    def _set_input_affine(self, mean: Sequence[float], std: Sequence[float], bgr: bool) -> None:
        # Fold [-1, 1] -> [0, 1] and the per-channel standardisation (RGB order) into one multiply-add.
        mean_t = torch.tensor(mean).view(1, 3, 1, 1)
        std_t = torch.tensor(std).view(1, 3, 1, 1)
        self.register_buffer("_scale", 0.5 / std_t, persistent=False)
        self.register_buffer("_shift", (0.5 - mean_t) / std_t, persistent=False)
        self._bgr = bgr

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Ignore ``mode``: the extractor is always in eval mode."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the requested activations of ``images`` (RGB in [-1, 1])."""
        _check_images(images)
        x = images * self._scale.to(images.dtype) + self._shift.to(images.dtype)
        if self._bgr:
            x = x.flip(1)
        wanted: dict[int, list[str]] = {}
        for name, idx in self._taps.items():
            wanted.setdefault(idx, []).append(name)
        out: dict[str, torch.Tensor] = {}
        for i, op in enumerate(self._ops):
            if op == "conv":
                x = F.conv2d(x, getattr(self, f"_w{i}").to(x.dtype), getattr(self, f"_b{i}").to(x.dtype), padding=1)
            elif op == "relu":
                # In place is safe: conv's backward does not need its output, ReLU's needs only its own
                # output, and a tapped output is never modified later (the next op allocates).
                x = F.relu(x, inplace=True)
            else:
                x = F.max_pool2d(x, 2, 2, ceil_mode=self._ceil_mode)
            for name in wanted.get(i, ()):
                out[name] = x
        return {name: out[name] for name in self.layers}
