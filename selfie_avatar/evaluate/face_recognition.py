"""dlib's 128-d face descriptor network (``dlib_face_recognition_resnet_model_v1``) in pure PyTorch.

A ResNet-29-style network with 32 -> 64 -> 128 -> 256 channels (Davis King, dlib; the weights are CC0). This is a
port of face-api.js' ``FaceRecognitionNet`` (MIT), which carries dlib's weights in TensorFlow.js format
(``face_recognition_model.bin`` + ``face_recognition_model-weights_manifest.json``; 8-bit quantised but for the
64-channel stage, which is stored as float32): the layer names below are face-api's, so the manifest maps onto the
parameters one to one. Against dlib's own fp32 network on the same chips, descriptors differ by 0.04 (Euclidean;
dlib's same-person threshold is 0.6): the size of one more rounding of the 8-bit weights.

Layer conventions, all as dlib and face-api have them:

- every convolution is followed by a per-channel affine ("scale": dlib's batch norm folded at export) and, except
  the second one of a residual block, a ReLU;
- stride-1 convolutions are 3x3 with one pixel of zero padding; stride-2 convolutions and the pools use no
  padding at all (TF's 'valid', dlib's default for strides above 1), so 150 -> 72 -> 35 -> 17 -> 8 -> 3 -> 1;
- a downsampling block's shortcut is a 2x2 average pool of its input, zero-padded to the block's channels; where
  the pooled shortcut is larger than the block's output (8 -> pool 4 vs conv 3; 4 -> 2 vs 1) the output is
  zero-padded at the bottom and right to match (dlib adds tensors of different sizes that way);
- the head is a global average over space and a 256 -> 128 linear map without bias.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.assets.tfjs import WeightsFileError, read_tfjs_weights

BIN_FILE = "face_recognition_model.bin"
MANIFEST_FILE = "face_recognition_model-weights_manifest.json"
INPUT_SIZE = 150
DESCRIPTOR_DIM = 128
# dlib's input layer (input_rgb_image): subtract these 8-bit channel means, divide by 256, the scale it was trained
# with. face-api divides by 255; descriptors move by 2e-4 between the two, far below the 8-bit weights' 0.04.
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_DIVISOR = 256.0

# (name, in, out, downsample) of the residual stages, in order.
_BLOCKS = (
    ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)


class Scale(nn.Module):
    """Per-channel affine ``x * weights + biases``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(channels))
        self.biases = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights[:, None, None] + self.biases[:, None, None]


class ConvLayer(nn.Module):
    """Convolution + bias, scale, optional ReLU. Stride 2 pads nothing; stride 1 pads ``kernel // 2``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0)
        self.scale = Scale(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scale(self.conv(x))
        return F.relu(out) if self.relu else out


class ResidualBlock(nn.Module):
    """Two 3x3 conv layers plus the identity, or (``down``) the first at stride 2 plus an average-pooled,
    zero-padded shortcut."""

    def __init__(self, cin: int, cout: int, down: bool = False) -> None:
        super().__init__()
        if not down and cin != cout:
            raise ValueError(f"an identity residual block needs cin == cout, got {cin} -> {cout}")
        self.conv1 = ConvLayer(cin, cout, stride=2 if down else 1)
        self.conv2 = ConvLayer(cout, cout, relu=False)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if not self.down:
            return F.relu(out + x)
        short = F.avg_pool2d(x, 2, 2)
        short = F.pad(short, (0, 0, 0, 0, 0, out.shape[1] - short.shape[1]))
        dh, dw = short.shape[2] - out.shape[2], short.shape[3] - out.shape[3]
        out = F.pad(out, (0, dw, 0, dh))
        return F.relu(out + short)


class FaceRecognitionNet(nn.Module):
    """dlib's face descriptor network (random weights until loaded: use :func:`load_face_recognition_net`).

    Takes aligned face chips (dlib's ``get_face_chip`` framing, as
    :func:`~selfie_avatar.evaluate.face_align.align_faces` cuts them) and returns dlib's raw descriptors: two faces
    are the same person, by dlib's convention, when the Euclidean distance of their descriptors is below 0.6.

    Shape:
        - Input: :math:`(B, 3, 150, 150)` RGB in [0, 1].
        - Output: :math:`(B, 128)`, not normalised.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv32_down = ConvLayer(3, 32, kernel=7, stride=2)
        for name, cin, cout, down in _BLOCKS:
            self.add_module(name, ResidualBlock(cin, cout, down))
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1) / 255.0, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"face chips must be (B, 3, {INPUT_SIZE}, {INPUT_SIZE}), got {tuple(images.shape)}")
        x = (images.to(self.mean.dtype) - self.mean) * (255.0 / INPUT_DIVISOR)
        x = F.max_pool2d(self.conv32_down(x), 3, 2)
        for name, *_ in _BLOCKS:
            x = getattr(self, name)(x)
        return self.fc(x.mean((2, 3)))


def tfjs_state_dict(tensors: dict[str, np.ndarray], net: nn.Module, source: str = "the weights file",
                    ) -> dict[str, torch.Tensor]:
    """face-api tensors (``conv32_1/conv1/conv/filters`` ...) -> ``net``'s state dict, shapes checked strictly.

    Filters go from TF's HWIO to PyTorch's OIHW and ``fc`` from (in, out) to (out, in).

    Raises:
        WeightsFileError: a parameter is missing, has the wrong shape or non-finite values, or the file holds
            tensors the network does not have.
    """
    own = net.state_dict()
    out = {}
    for key, param in own.items():
        name = _tfjs_name(key)
        if name not in tensors:
            raise WeightsFileError(f"{source} has no tensor '{name}' (for {key}); is it face-api's "
                                   f"face_recognition_model?")
        arr = tensors[name]
        if arr.ndim == 4:
            arr = arr.transpose(3, 2, 0, 1)
        elif name == "fc":
            arr = arr.T
        if tuple(arr.shape) != tuple(param.shape):
            raise WeightsFileError(f"{source}: tensor '{name}' has shape {tuple(tensors[name].shape)}, the network "
                                   f"needs {tuple(param.shape)} (as stored: HWIO / in-out); is it face-api's "
                                   f"face_recognition_model?")
        if not np.isfinite(arr).all():
            raise WeightsFileError(f"{source}: tensor '{name}' holds NaN or inf; the file is corrupt")
        out[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    expected = {_tfjs_name(k) for k in own}
    extra = sorted(set(tensors) - expected)
    if extra:
        raise WeightsFileError(f"{source} holds tensors this network does not have ({', '.join(extra[:3])}...); "
                               f"is it face-api's face_recognition_model?")
    return out


def _tfjs_name(key: str) -> str:
    """``conv32_1.conv1.conv.weight`` -> ``conv32_1/conv1/conv/filters``; ``fc.weight`` -> ``fc``."""
    if key == "fc.weight":
        return "fc"
    return key.replace(".", "/").replace("conv/weight", "conv/filters")


def load_face_recognition_net(bin_path: str | os.PathLike | None = None,
                              manifest_path: str | os.PathLike | None = None) -> FaceRecognitionNet:
    """The network with dlib's weights from face-api's tfjs files, found like every model file (and
    hash-checked), in eval mode with gradients off.

    Args:
        bin_path: ``face_recognition_model.bin`` (default: resolved from the weights folders).
        manifest_path: ``face_recognition_model-weights_manifest.json`` (default: beside an explicit ``bin_path``
            when it is there, else resolved from the weights folders).

    Raises:
        AssetMissingError: a file is not found, or not a known release (the message says where it was looked for
            and how to get it).
        WeightsFileError: a file is truncated, corrupt or another model's.
    """
    from selfie_avatar.assets.registry import resolve_asset

    if manifest_path is None and bin_path is not None:
        beside = Path(bin_path).with_name(MANIFEST_FILE)
        manifest_path = beside if beside.is_file() else None
    return face_recognition_net_from_tfjs(resolve_asset("face_recognition", bin_path),
                                          resolve_asset("face_recognition_manifest", manifest_path))


def face_recognition_net_from_tfjs(bin_file: str | os.PathLike, manifest: str | os.PathLike) -> FaceRecognitionNet:
    """The network from these exact tfjs files (no search, no hash check: for converted or test copies).

    Raises:
        WeightsFileError: a file is unreadable, truncated, corrupt or another model's.
    """
    net = FaceRecognitionNet()
    tensors = read_tfjs_weights(manifest, [bin_file])
    net.load_state_dict(tfjs_state_dict(tensors, net, source=str(bin_file)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
