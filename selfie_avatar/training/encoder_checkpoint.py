"""The encoder's checkpoint file, ``encoder.ckpt``: save, and load for inference without executing code from it.

The file is a plain dict (tensors, strings, numbers, lists), readable with ``torch.load(..., weights_only=True)``::

    format, format_version   "selfie_avatar.encoder", 1
    network                  EncoderNetConfig fields
    state_dict               CodeEncoder weights
    subject                  the subject folder it was trained on
    expression_names         the 52 blendshape names, in output order
    size                     the crop side it was trained at
    step                     training steps
    versions                 selfie_avatar / torch versions that wrote it
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from selfie_avatar import __version__
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.models.encoder import CodeEncoder, EncoderNetConfig
from selfie_avatar.tracking.codes import TorchCodes
from selfie_avatar.utils.atomic import atomic_path
from selfie_avatar.utils.device import resolve_device

__all__ = ["ENCODER_FORMAT", "ENCODER_FORMAT_VERSION", "LoadedEncoder", "load_encoder", "save_encoder"]

ENCODER_FORMAT = "selfie_avatar.encoder"
ENCODER_FORMAT_VERSION = 1
CHECKPOINT_NAME = "encoder.ckpt"


def save_encoder(path: str | Path, encoder: CodeEncoder, subject: str | Path, expression_names: list[str],
                 step: int) -> None:
    """Write ``encoder.ckpt`` atomically (weights moved to the CPU; see the module docstring for the fields)."""
    record = {
        "format": ENCODER_FORMAT, "format_version": ENCODER_FORMAT_VERSION,
        "network": dataclasses.asdict(encoder.config),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "subject": str(Path(subject).resolve()), "expression_names": list(expression_names),
        "size": int(encoder.config.size), "step": int(step),
        "versions": {"selfie_avatar": __version__, "torch": str(torch.__version__)},
    }
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


@dataclass
class LoadedEncoder:
    """A trained encoder ready to turn face crops into codes.

    Attributes:
        encoder: the network (eval mode, on ``device``).
        size: crop side it was trained at; other sizes are resized to it before the network runs.
        subject: the subject folder it was trained on.
        expression_names: names of the ``expression`` outputs.
        step: training steps.
        device: where the network runs.
    """

    encoder: CodeEncoder
    size: int
    subject: str
    expression_names: list[str]
    step: int
    device: torch.device

    @torch.no_grad()
    def predict(self, crops: torch.Tensor) -> TorchCodes:
        """Codes of face crops, in the conventions of ``tracking.npz`` for crops of the input's side.

        Args:
            crops: RGB face crops in [-1, 1], cropped like the subject's frames (``prepare``'s crop: the face's
                landmark extent times ``crop_scale``), at any side S; they are resized to :attr:`size` for the
                network and the pose comes back in pixels of S.

        Returns:
            :class:`TorchCodes` on :attr:`device`: rotation (B, 3, 3) model -> camera; scale (B,) pixels of S per
            model unit; translation (B, 2) pixels of S (``screen = scale * R @ X + translation``); expression
            (B, 52) blendshape scores in [0, 1] (the subject's PCA codes are not predicted: use zeros).

        Shape:
            - crops: :math:`(B, 3, S, S)` float

        Raises:
            ValueError: crops of the wrong shape or dtype.
        """
        if not isinstance(crops, torch.Tensor) or crops.dim() != 4 or crops.shape[1] != 3 \
                or crops.shape[2] != crops.shape[3]:
            shape = tuple(crops.shape) if isinstance(crops, torch.Tensor) else type(crops).__name__
            raise ValueError(f"crops must be a (B, 3, S, S) tensor, got {shape}")
        if not crops.is_floating_point():
            raise ValueError(f"crops must be float in [-1, 1], got {crops.dtype}")
        s = crops.shape[-1]
        x = crops.to(self.device, torch.float32)
        if s != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=s > self.size)
        return self.encoder.forward_relative(x).scaled(s)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> LoadedEncoder:
    """Read an ``encoder.ckpt`` written by ``selfie-avatar train-encoder`` (or the folder holding it).

    Args:
        path: the checkpoint file, or the ``train-encoder`` output folder.
        device: where the network runs (``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or a device).

    Returns:
        A :class:`LoadedEncoder`.

    Raises:
        SelfieAvatarError: the file is missing, unreadable, not an encoder checkpoint, or from another version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise SelfieAvatarError(f"{path} does not exist; train an encoder first (`selfie-avatar train-encoder "
                                "SUBJECT_DIR --out DIR`) or check the path")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        ck = torch.load(path, map_location=dev, weights_only=True)
    except Exception as exc:  # a pickle with code in it, a damaged or foreign file
        raise SelfieAvatarError(f"{path} is not a checkpoint this toolkit can read safely "
                                f"({_load_error_detail(exc)}); train the encoder again") from exc
    if not isinstance(ck, dict) or ck.get("format") != ENCODER_FORMAT:
        raise SelfieAvatarError(f"{path} is not a selfie_avatar encoder checkpoint (written by "
                                "`selfie-avatar train-encoder`); an avatar checkpoint goes to `load_avatar` instead")
    if ck.get("format_version") != ENCODER_FORMAT_VERSION:
        raise SelfieAvatarError(f"{path} is encoder format v{ck.get('format_version')}, this version reads "
                                f"v{ENCODER_FORMAT_VERSION}; train the encoder again")
    try:
        encoder = CodeEncoder(EncoderNetConfig(**ck["network"]))
        encoder.load_state_dict(ck["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SelfieAvatarError(f"{path} does not match this version's encoder network ({exc}); train it again") \
            from exc
    return LoadedEncoder(encoder.to(dev).eval(), int(ck["size"]), str(ck.get("subject", "")),
                         list(ck.get("expression_names", [])), int(ck.get("step", 0)), dev)


def _load_error_detail(exc: Exception) -> str:
    """The informative line of a ``torch.load`` failure (its weights-only message is a page of advice)."""
    msg = str(exc)
    if "WeightsUnpickler error:" in msg:
        msg = msg.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]
