"""Load a trained avatar for inference from a Lightning checkpoint, without executing code from the file.

Checkpoints hold only tensors and plain Python values (``torch.load(..., weights_only=True)`` reads them). Inference
needs the moving-average image generator plus the cached face texture and background canvas: the face and
background generators themselves are not run once the cache exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.models import ImageGenerator, ModelConfig, warp_texture
from selfie_avatar.models.reference import ReferenceBank
from selfie_avatar.models.background_generator import crop_windows


@dataclass
class LoadedAvatar:
    """An avatar ready to render frames.

    Attributes:
        config: the network settings it was trained with.
        image_generator: the EMA image generator (eval mode).
        face_texture: (1, C_f, T, T) cached neural texture in UV space.
        bg_canvas: (1, C_b, N, N) cached background canvas.
        step: training step of the checkpoint.
        loss_weights, vgg_source: what it was trained with (for reports).
        plate: (1, 3, S, S) background plate in [-1, 1], or None for a generator built without one.
        reference: the reference bank (``models/reference.py``), or None for a generator built without one.
    """

    config: ModelConfig
    image_generator: ImageGenerator
    face_texture: torch.Tensor
    bg_canvas: torch.Tensor
    step: int
    loss_weights: dict
    vgg_source: str | None
    plate: torch.Tensor | None = None
    reference: ReferenceBank | None = None

    @torch.no_grad()
    def render(self, render: torch.Tensor, uv: torch.Tensor, frame_index: torch.Tensor | None = None) -> dict:
        """(B, 3, S, S) I_R in [-1, 1] and (B, 3, S, S) I_UV -> {'image' (B,3,S,S) in [-1,1], 'mask' (B,1,S,S)}."""
        b = render.shape[0]
        face = warp_texture(self.face_texture, uv)
        bg = crop_windows(self.bg_canvas, self.config.size, batch=b)  # the centred window
        ref = self.reference(uv) if self.reference is not None else None
        return self.image_generator(render, face, uv[:, 2:3], bg, frame_index=frame_index, plate=self.plate,
                                    reference=ref)


def _under(state_dict: dict, prefix: str) -> dict:
    """The entries of a module's ``state_dict`` under ``prefix``, named as that submodule names them."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_avatar(path: str | Path, device: str | torch.device = "cpu") -> LoadedAvatar:
    """Read a checkpoint written by ``selfie-avatar train``.

    Raises:
        SelfieAvatarError: the file is missing, not a selfie_avatar checkpoint, or from an incompatible version.
    """
    path = Path(path)
    if not path.is_file():
        raise SelfieAvatarError(f"{path} does not exist; train first (`selfie-avatar train`) or check the path")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a pickle with code in it, or a damaged file
        raise SelfieAvatarError(f"{path} is not a checkpoint this toolkit can read safely: {exc}") from exc
    hp = ck.get("hyper_parameters", {})
    sd = ck.get("state_dict", {})
    if "model" not in hp or not any(k.startswith("ema.") for k in sd):
        raise SelfieAvatarError(f"{path} is not a selfie_avatar training checkpoint (no model settings or EMA weights)")
    try:
        cfg = ModelConfig(**hp["model"])
    except TypeError as exc:
        raise SelfieAvatarError(f"{path} was written by another version of selfie_avatar ({exc})") from exc
    gen = ImageGenerator(cfg).to(device)
    ema = _under(sd, "ema.")
    try:
        missing, unexpected = gen.load_state_dict(ema, strict=False)
    except RuntimeError as exc:  # same names, other shapes: other network settings than the ones recorded
        raise SelfieAvatarError(f"{path} does not match its own recorded settings or this version's image "
                                f"generator; it comes from another version or preset ({str(exc)[:300]})") from exc
    if missing or unexpected:
        raise SelfieAvatarError(f"{path} does not match this version's image generator (missing {missing[:3]}, "
                                f"unexpected {unexpected[:3]}); it comes from another version or preset")
    face, bg = sd.get("cache_face_texture"), sd.get("cache_bg_canvas")
    if face is None or face.numel() == 0:
        face, bg = _cache_from_generators(cfg, sd, device)
    plate = sd.get("background_plate")
    if cfg.use_background_plate and (plate is None or plate.shape != (1, 3, cfg.size, cfg.size)):
        raise SelfieAvatarError(f"{path} was trained with a background plate but does not carry one")
    reference = None
    if cfg.reference_frames:
        reference = ReferenceBank()
        if not reference.shape_for(sd):
            raise SelfieAvatarError(f"{path} was trained with a reference bank but does not carry one")
        reference.load_state_dict(_under(sd, "reference."))
        reference = reference.to(device)
    return LoadedAvatar(cfg, gen.eval(), face, bg, int(sd.get("step", torch.tensor(0))),
                        dict(hp.get("loss_weights", {})), ck.get("vgg_source"),
                        plate if cfg.use_background_plate else None, reference)


def _cache_from_generators(cfg: ModelConfig, sd: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A checkpoint from before the freeze has no cache: run the face and background generators once."""
    from selfie_avatar.models import AvatarGenerator

    gen = AvatarGenerator(cfg).to(device)
    own = _under(sd, "generator.")
    gen.load_state_dict(own, strict=True)
    cache = gen.eval().compute_cache()
    return cache["face_texture"], cache["bg_canvas"]


@dataclass
class TrainedRun:
    """A training run folder opened for inference: its record, avatar and subject."""

    root: Path
    record: dict
    checkpoint: Path
    avatar: LoadedAvatar
    subject: object  # selfie_avatar.tracking.subject.Subject


def read_run_record(run_dir: str | Path) -> dict:
    """The run's ``config.json``.

    Raises:
        SelfieAvatarError: not a run folder, or its config.json is not valid JSON.
    """
    from selfie_avatar.utils.atomic import read_json

    return read_json(Path(run_dir) / "config.json",
                     "this is not a training run folder written by `selfie-avatar train`, or it is damaged")


def open_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> TrainedRun:
    """Open ``RUN_DIR``: read ``config.json``, load ``checkpoints/<checkpoint>.ckpt`` and the subject folder.

    Raises:
        SelfieAvatarError: not a run folder, no such checkpoint, or the subject folder is gone.
    """
    from selfie_avatar.tracking.subject import Subject

    run = Path(run_dir)
    record = read_run_record(run)
    ckpt = run / "checkpoints" / f"{checkpoint}.ckpt"
    avatar = load_avatar(ckpt, device)
    try:
        subject = Subject(record["subject"])
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise SelfieAvatarError(f"{run}: its subject folder cannot be read ({exc}); inference needs the subject's "
                                f"face model and tracking") from exc
    return TrainedRun(run, record, ckpt, avatar, subject)
