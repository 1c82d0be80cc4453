"""``selfie-avatar train-encoder``: a CNN that reads pose and expression codes off a face crop (issue 4, section 3).

``EncoderModule`` trains :class:`~selfie_avatar.models.encoder.CodeEncoder` on a subject's training frames against
its tracked codes (only frames with a tracked face), each batch augmented on the device
(:func:`~selfie_avatar.training.encoder_data.augment_batch`: warp with targets moved alike, then colour, blur,
noise). Losses, all in units relative to the crop side:

    rotation     Frobenius distance |R_pred - R|  (~ sqrt(2) x the angle in radians for small errors)
    scale        |log(s_pred / s)|
    translation  |t_pred - t|
    expression   mean |e_pred - e| over the 52 blendshape scores
    landmarks    mean 2D distance between the face model's landmarks (PCA codes zero) projected with the
                 predicted pose and the tracked landmarks: ties pose and expression to what the image shows

Output folder (built under a temporary name, renamed when complete)::

    OUT/
      config.json    the command's settings, the network, the loss weights, the subject
      encoder.ckpt   weights + network config + subject + expression names (``load_encoder``; weights_only)
      metrics.json   held-out code and landmark errors beside a constant-mean predictor and the tracker, speed
      logs/          Lightning CSV log of the losses
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningModule

from selfie_avatar import __version__
from selfie_avatar.config import TrainEncoderConfig, config_to_dict
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.face_model import BLENDSHAPE_NAMES, NUM_BLENDSHAPES, FaceModel
from selfie_avatar.models.encoder import CodeEncoder, EncoderNetConfig
from selfie_avatar.training.encoder_checkpoint import LoadedEncoder, load_encoder, save_encoder
from selfie_avatar.training.encoder_data import AugmentSettings, augment_batch
from selfie_avatar.training.encoder_report import METRICS, model_landmarks
from selfie_avatar.training.module import NonFiniteLossError
from selfie_avatar.tracking.codes import TorchCodes
from selfie_avatar.utils.log import get_logger

__all__ = ["DEFAULT_LOSS_WEIGHTS", "EncoderModule", "EncoderTrainResult", "LoadedEncoder", "load_encoder",
           "train_encoder"]

log = get_logger("encoder")

# Balanced so that, near convergence, 1 degree, 1 % of scale, 1 px of a 128 px crop and 0.01 of mean score error
# weigh within a factor of a few of each other.
DEFAULT_LOSS_WEIGHTS = {"rotation": 1.0, "scale": 1.0, "translation": 5.0, "expression": 3.0, "landmarks": 10.0}


class EncoderModule(LightningModule):
    """The encoder network, its losses and its learning-rate schedule.

    Args:
        net: :class:`EncoderNetConfig` fields (a plain dict, so hyper-parameters hold no custom objects).
        face_model: the subject's face model, for the landmark term (None: the term is off).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        max_steps: steps of the cosine decay.
        max_seconds: when set, the decay also follows wall time and ends at whichever budget runs out first.
        loss_weights: {term: weight} over :data:`DEFAULT_LOSS_WEIGHTS` (0 switches a term off).
        augment: augment each batch (:func:`augment_batch`); off, crops go in as they are.
        seed: seeds the augmentation.

    Shape:
        - batch: the fields of :mod:`selfie_avatar.training.encoder_data` (``image`` (B, 3, S, S) uint8)
    """

    def __init__(self, net: dict[str, Any], face_model: FaceModel | None = None, lr: float = 2e-3,
                 weight_decay: float = 1e-4, warmup_steps: int = 50, max_steps: int = 3000,
                 max_seconds: float | None = None, loss_weights: dict[str, float] | None = None, augment: bool = True,
                 seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["face_model"])
        unknown = sorted(set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown encoder loss terms {unknown}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        if max_steps < 1 or lr <= 0:
            raise ValueError(f"max_steps must be >= 1 and lr > 0, got {max_steps} and {lr}")
        self.encoder = CodeEncoder(EncoderNetConfig(**net))
        self.face_model = face_model.requires_grad_(False) if face_model is not None else None
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        if self.face_model is None:
            self.loss_weights["landmarks"] = 0.0
        self.augment_settings = AugmentSettings()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._gen: torch.Generator | None = None
        self._t0 = time.perf_counter()

    def forward(self, image: torch.Tensor) -> TorchCodes:
        """Relative codes of crops in [-1, 1] (:meth:`CodeEncoder.forward_relative`)."""
        return self.encoder.forward_relative(image)

    def _generator(self) -> torch.Generator:
        if self._gen is None or self._gen.device != self.device:
            self._gen = torch.Generator(device=self.device).manual_seed(self.hparams.seed)
        return self._gen

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch the network sees: augmented (training with ``augment``) or just scaled to [-1, 1]."""
        if self.hparams.augment and self.training:
            return augment_batch(batch, self._generator(), self.augment_settings)
        return {**batch, "image": batch["image"].float() / 127.5 - 1}

    def loss_terms(self, pred: TorchCodes, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each loss term (unweighted) of relative predictions against a batch's relative targets (module
        docstring)."""
        eps = 1e-8  # inside the square roots: their gradient at an exact hit would be 0/0
        terms = {
            "rotation": ((pred.rotation - target["rotation"]).square().sum((-1, -2)) + eps).sqrt().mean(),
            "scale": (pred.scale.log() - target["scale"].log()).abs().mean(),
            "translation": ((pred.translation - target["translation"]).square().sum(-1) + eps).sqrt().mean(),
            "expression": (pred.expression - target["expression"]).abs().mean(),
        }
        if self.loss_weights["landmarks"] > 0:
            lm = model_landmarks(self.face_model, pred, target["landmarks"].shape[1])
            terms["landmarks"] = ((lm - target["landmarks"]).square().sum(-1) + eps).sqrt().mean()
        return terms

    def configure_optimizers(self):
        return torch.optim.AdamW(self.encoder.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)

    def on_train_start(self) -> None:
        self._t0 = time.perf_counter()

    def _lr(self) -> float:
        hp = self.hparams
        progress = int(self.step) / hp.max_steps
        if hp.max_seconds:
            progress = max(progress, (time.perf_counter() - self._t0) / hp.max_seconds)
        warm = min(1.0, (int(self.step) + 1) / max(1, hp.warmup_steps))
        # Cosine to 2 % of the peak: the last steps still polish instead of standing still.
        return hp.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        lr = self._lr()
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr
        batch = self.prepare_batch(batch)
        terms = self.loss_terms(self(batch["image"]), batch)
        for name, value in terms.items():
            if not torch.isfinite(value):
                raise NonFiniteLossError(f"encoder loss '{name}' became {value.item()} at step {int(self.step)}; "
                                         "try a lower --lr")
        loss = sum(self.loss_weights[k] * v for k, v in terms.items())
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=len(batch["image"]))
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(batch["image"]))
        self.log("train/lr", lr, batch_size=len(batch["image"]))
        self.step += 1
        return loss


@dataclass
class EncoderTrainResult:
    """What ``train_encoder`` made: the folder, the run's length and the report written to ``metrics.json``."""

    out_dir: Path
    steps: int
    seconds: float
    metrics: dict

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "encoder.ckpt"

    def summary(self) -> str:
        m = self.metrics
        head = (f"encoder: {self.out_dir}  ({self.steps} steps in {self.seconds / 60:.1f} min, "
                f"{m['size']} px, {m['speed']['device']})")
        lines = [head]
        for split, title in (("heldout", f"held-out frames ({len(m['frames']['heldout'])})"),
                             ("train", f"training frames (sample of {m['frames']['train_sample']})")):
            rows = m.get(split)
            if not rows:
                continue
            lines.append(f"  {title}:  rotation deg | scale % | translation px | expression MAE | landmarks px")
            for name, label in (("encoder", "encoder"), ("constant_mean", "constant mean"),
                                ("tracked_no_pca", "tracked codes, PCA 0"), ("tracker", "tracker (fit)")):
                row = rows.get(name)
                if row:
                    cells = ["{:.3f}".format(row[k]) if row.get(k) is not None else "-" for k in METRICS]
                    lines.append(f"    {label:<22}" + " | ".join(f"{c:>8}" for c in cells))
        sp = m["speed"]
        trk = sp.get("tracker_frames_per_second")
        lines.append(f"  speed: encoder {sp['encoder_frames_per_second']:.1f} frames/s (batch 1, {sp['device']}); "
                     f"tracker {'n/a' if trk is None else f'{trk:.1f}'} frames/s (landmarks + fit, from meta.json)")
        lines.append(f"  written to {self.out_dir}")
        return "\n".join(lines)


def _lightning_device(device: torch.device) -> tuple[str, Any]:
    if device.type == "cuda":
        return "gpu", [device.index or 0]
    return device.type, 1


def train_encoder(cfg: TrainEncoderConfig) -> EncoderTrainResult:
    """Train an encoder on a prepared subject and report it on the held-out frames (module docstring).

    Raises:
        FileExistsError: the output folder exists and ``overwrite`` is false.
        SelfieAvatarError: the subject folder is missing, malformed or has no tracked training frames; a NaN loss.
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.training.encoder_data import EncoderDataModule
    from selfie_avatar.training.encoder_report import heldout_report
    from selfie_avatar.training.run import keep_native_signal_handlers
    from selfie_avatar.utils.atomic import atomic_dir, write_json_atomic
    from selfie_avatar.utils.device import resolve_device

    if not cfg.out:
        raise ValueError("train-encoder needs an output folder (--out)")
    if cfg.size < 16 or cfg.batch_size < 1 or cfg.max_steps < 1:
        raise ValueError(f"size >= 16, batch_size >= 1 and max_steps >= 1 are needed, got {cfg.size}, "
                         f"{cfg.batch_size}, {cfg.max_steps}")
    try:
        subject = Subject(cfg.subject)
        face_model = subject.face_model()
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise SelfieAvatarError(f"train-encoder: cannot use subject {cfg.subject!r}: {exc}") from exc
    if list(face_model.expression_names[:NUM_BLENDSHAPES]) != list(BLENDSHAPE_NAMES):
        raise SelfieAvatarError(
            f"train-encoder: {subject.root} uses the {face_model.name!r} face model, whose expression codes are not "
            "the 52 MediaPipe blendshape scores this encoder regresses; prepare the subject with the default "
            "blendshape model")
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    num_landmarks = int(face_model.landmarks(face_model.template[None]).shape[1])
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        try:
            data = EncoderDataModule(subject, cfg.size, cfg.batch_size, cfg.num_workers, cfg.seed, cfg.progress,
                                     num_landmarks)
        except ValueError as exc:
            raise SelfieAvatarError(f"train-encoder: {exc}") from exc
        # The scale head starts at the data's typical scale: its units depend on the subject's face model.
        net = EncoderNetConfig(size=cfg.size, width=cfg.width, scale_ref=float(data.train_data["scale"].median()))
        max_seconds = cfg.max_minutes * 60 if cfg.max_minutes else None
        torch.manual_seed(cfg.seed)
        module = EncoderModule(dataclasses.asdict(net), face_model, lr=cfg.lr, max_steps=cfg.max_steps,
                               max_seconds=max_seconds, augment=cfg.augment, seed=cfg.seed)
        record = {
            "type": "EncoderRun", "train_encoder_config": config_to_dict(cfg), "network": dataclasses.asdict(net),
            "loss_weights": module.loss_weights, "subject": str(subject.root.resolve()),
            "augment": dataclasses.asdict(module.augment_settings) if cfg.augment else None,
            "versions": {"selfie_avatar": __version__, "torch": torch.__version__,
                         "python": platform.python_version()},
        }
        write_json_atomic(tmp / "config.json", record)
        accelerator, devices = _lightning_device(device)
        trainer = L.Trainer(
            accelerator=accelerator, devices=devices, max_epochs=-1, max_steps=cfg.max_steps,
            max_time=timedelta(seconds=max_seconds) if max_seconds else None,
            logger=CSVLogger(save_dir=str(tmp), name="logs", version=""), enable_checkpointing=False,
            enable_progress_bar=cfg.progress, enable_model_summary=False,
            log_every_n_steps=max(1, min(10, len(data.train_set) // cfg.batch_size)),
            num_sanity_val_steps=0, limit_val_batches=0,
        )
        keep_native_signal_handlers(trainer)
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=data)
        seconds = time.perf_counter() - t0
        encoder = module.encoder.to(device).eval()
        steps = int(module.step)
        save_encoder(tmp / "encoder.ckpt", encoder, subject.root, face_model.expression_names[:net.num_expression],
                     steps)
        metrics = heldout_report(encoder, subject, data.train_data, face_model.cpu(), cfg.size, device,
                                 progress=cfg.progress)
        metrics.update({"steps": steps, "seconds": seconds, "subject": str(subject.root.resolve()),
                        "config": config_to_dict(cfg)})
        write_json_atomic(tmp / "metrics.json", metrics)
    result = EncoderTrainResult(out, steps, seconds, metrics)
    log.info("encoder trained: %d steps, held-out rotation %.2f deg, expression MAE %.4f", steps,
             *(np.nan if not metrics.get("heldout") else metrics["heldout"]["encoder"][k]
               for k in ("rotation_deg", "expression_mae")))
    return result
