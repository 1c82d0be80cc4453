"""``AvatarModule``: adversarial training of one person's avatar (manual optimisation).

Per step (batch of training frames):

    shift : on alternate steps the whole sample (frame, I_R, I_UV, matte, plate) moves by a random (dx, dy) and the
            background window the opposite way (training/shift.py), then, with rotate_deg or zoom, turns and zooms
            about the frame centre with the background features; pixels from outside the frame take the real
            frame's values in the output, so they carry no loss
    ref   = the reference bank's frame nearest in head pose, leaving out the frames within reference_window of the
            sample (models/reference.py), looked up before the shift and shifted with the sample
    out   = G(I_R, I_UV, frame_index, bg_offset, plate, bg_warp, ref)
            face texture warped through I_UV (its RGB view started from the photo texture, which run.py fills
            from the training frames), background window, StyleUNet fusion over the background plate, the photo
            texture shown in the face and the reference outside it where the generator's weights say -> image, mask
    D     : logistic loss on (real, I_R) vs (fake.detach(), I_R); lazy R1 every r1_interval steps, added to the same
            step's loss (so Adam's learning rate needs no lazy-regularisation correction)
    G     : weighted sum of the enabled losses (adversarial, reconstruction, id_mrf, cosine); a NaN or inf in any
            term stops the run with the term's name and step before anything is updated
    opt   : AdamW (betas 0, 0.99) for G and D, gradient norm of each generator (G_fa, G_b, G_I) clipped
            separately, as StyleAvatar does
    EMA   : exponential moving average of the image generator, used for validation and inference

After ``freeze_after`` steps the face and background generators are frozen and their outputs cached in buffers, as
StyleAvatar does; the cache travels in the checkpoint, so inference needs only the image generator.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from lightning import LightningModule

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.losses import GeneratorLoss, d_logistic_loss, r1_penalty
from selfie_avatar.models import AvatarGenerator, Discriminator, ModelConfig
from selfie_avatar.models.reference import ReferenceBank
from selfie_avatar.training.shift import composite_border, draw_shifts, draw_similarity, shift_batch, warp_batch


LR_FLOOR = 0.05


def lr_scale(progress: float, decay: float, floor: float = LR_FLOOR) -> float:
    """The learning-rate factor at ``progress`` (0..1 of the budget): 1 until the last ``decay`` of it, then a half
    cosine down to ``floor`` at its end, so a run with a fixed budget ends on small steps. Every preset leaves it
    off (``--lr-decay 0.3`` turns it on): on ``selfie_d6`` at 128 px (``cpu``, 10 minutes) it gave test LPIPS 0.107
    against 0.112 but PSNR 23.47 against 23.84 dB, in a run that also made fewer steps (703 against 794), so no
    clear gain was measured."""
    if decay <= 0 or progress <= 1 - decay:
        return 1.0
    t = min(1.0, (progress - (1 - decay)) / decay)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


class NonFiniteLossError(SelfieAvatarError):
    """A loss became NaN or inf; the message names the loss and the step."""


class AvatarModule(LightningModule):
    """Generator, discriminator, losses and the training step.

    Args:
        model: network settings (plain dict of :class:`ModelConfig` fields, so checkpoints hold no custom objects).
        loss_weights: {loss name: weight}; weight 0 switches a loss off.
        lr_g, lr_d: AdamW learning rates (betas 0 and 0.99).
        freeze_after: steps before G_fa and G_b are frozen and cached.
        ema_decay: decay of the image generator's moving average.
        grad_clip: gradient-norm clip of each generator (0: off); the discriminator is not clipped (StyleAvatar).
        r1_gamma, r1_interval: lazy R1 regularisation of the discriminator.
        bg_shift: translation augmentation on alternate steps (the whole sample and the background window).
        rotate_deg, zoom: on the same steps, an in-plane rotation up to ``rotate_deg`` degrees and a zoom up to a
            factor ``1 + zoom`` either way, of the whole sample and the background features (0: off).
        image_every: steps between image panels (0: never).
        vgg_weights: VGG weights file for the feature losses (see ``resolve_vgg_weights``; None: resolved, with
            stated fallbacks).
        seed: seeds the latent codes and the augmentation.
        feature_window: side of the face window the VGG losses see (None: the whole frame).
        lr_decay: the last fraction of the run's budget over which both learning rates fall on a half cosine to
            :data:`LR_FLOOR` of their value (0: constant). The budget is ``budget_steps`` or ``budget_seconds`` of
            training (wall time, resumed runs included), whichever runs out first.
        budget_steps, budget_seconds: the run's limits (None: none).
        reference_window: with a reference bank (``model["reference_frames"]``), the frames within this many
            frames of a training sample are left out of its reference search.
    """

    def __init__(self, model: dict[str, Any], loss_weights: dict[str, float], lr_g: float = 2e-3,
                 lr_d: float = 2e-3, freeze_after: int = 1000, ema_decay: float = 0.995, grad_clip: float = 1.0,
                 r1_gamma: float = 10.0, r1_interval: int = 16, bg_shift: bool = True, image_every: int = 0,
                 vgg_weights: str | None = None, seed: int = 0, feature_window: int | None = None,
                 lr_decay: float = 0.0, budget_steps: int | None = None, budget_seconds: float | None = None,
                 rotate_deg: float = 0.0, zoom: float = 0.0, reference_window: int = 30) -> None:
        super().__init__()
        if reference_window < 0:
            raise ValueError(f"reference_window must be >= 0, got {reference_window}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model_cfg = ModelConfig(**model)
        torch.manual_seed(seed)
        self.generator = AvatarGenerator(self.model_cfg)
        self.discriminator = Discriminator(self.model_cfg)
        self.ema = copy.deepcopy(self.generator.image_generator).requires_grad_(False).eval()
        self.loss_weights = dict(loss_weights)
        self.gen_loss = GeneratorLoss(self.loss_weights, vgg_weights_path=vgg_weights, feature_window=feature_window)
        self.use_adversarial = self.loss_weights.get("adversarial", 0.0) > 0
        # Step counter and the frozen generators' cache live in buffers: checkpoints carry them, resume restores them.
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache_face_texture", torch.zeros(0))
        self.register_buffer("cache_bg_canvas", torch.zeros(0))
        # The background plate is an input of the generator, so it travels with the weights: inference needs it.
        self.register_buffer("background_plate", torch.zeros(0))
        # The reference bank (models/reference.py) is an input too, and travels the same way (run.py fills it).
        self.reference = ReferenceBank()
        # Training wall time so far, so that a resumed run continues its learning-rate schedule where it was.
        self.register_buffer("train_seconds", torch.zeros((), dtype=torch.float64))
        self._elapsed, self._clock = 0.0, None
        self._aug = torch.Generator().manual_seed(seed + 1)

    # -- bookkeeping --------------------------------------------------------------------------------------------
    @property
    def vgg_source(self) -> str:
        src = self.gen_loss.vgg_source
        return "none (no VGG-based loss enabled)" if src is None else f"{src.kind}: {src.note or src.path}"

    @property
    def frozen(self) -> bool:
        return self.cache_face_texture.numel() > 0

    def _freeze_and_cache(self) -> None:
        with torch.no_grad():
            cache = self.generator.compute_cache()
        self.cache_face_texture = cache["face_texture"].detach()
        self.cache_bg_canvas = cache["bg_canvas"].detach()
        self.generator.face_generator.requires_grad_(False)
        self.generator.background_generator.requires_grad_(False)

    @property
    def assets_record(self) -> dict:
        """:func:`~selfie_avatar.assets.assets_record` of this run, computed once (checkpoints are saved often)."""
        if getattr(self, "_assets_record", None) is None:
            from selfie_avatar.assets import assets_record
            from selfie_avatar.assets.vgg_weights import VGG_KIND_ASSETS

            # An explicit VGG file is recorded under the asset of the kind it was read as.
            src, path = self.gen_loss.vgg_source, self.hparams.get("vgg_weights")
            explicit = {VGG_KIND_ASSETS[src.kind]: path} if path and src and src.kind in VGG_KIND_ASSETS else {}
            self._assets_record = assets_record(explicit)
        return self._assets_record

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vgg_source"] = self.vgg_source  # every checkpoint says which features trained it
        checkpoint["assets"] = self.assets_record  # and which model files were real or fell back

    def set_background_plate(self, plate: torch.Tensor) -> None:
        """Use ``plate`` (3, S, S) in [-1, 1] (the subject's background plate at the training size)."""
        s = self.model_cfg.size
        if plate.shape != (3, s, s):
            raise ValueError(f"the background plate must be (3, {s}, {s}), got {tuple(plate.shape)}")
        self.background_plate = plate.detach().float().to(self.background_plate.device)[None]

    def plate(self) -> torch.Tensor | None:
        """The (1, 3, S, S) plate the generator takes, or None when it was built without one."""
        if not self.model_cfg.use_background_plate:
            return None
        if self.background_plate.numel() == 0:
            raise RuntimeError("use_background_plate is on but no plate was set (set_background_plate)")
        return self.background_plate

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Buffers of size 0 grow when the cache exists: resize ours before the state dict is copied in.
        sd = checkpoint["state_dict"]
        for name in ("cache_face_texture", "cache_bg_canvas", "background_plate"):
            if name in sd:
                setattr(self, name, torch.empty_like(sd[name]))
        self.reference.shape_for(sd)
        if sd.get("cache_face_texture", torch.zeros(0)).numel():
            self.generator.face_generator.requires_grad_(False)
            self.generator.background_generator.requires_grad_(False)

    def cached(self) -> dict[str, torch.Tensor | None]:
        """The frozen generators' (1, C, N, N) outputs, or None before the freeze."""
        if not self.frozen:
            return {"face_texture": None, "bg_canvas": None}
        return {"face_texture": self.cache_face_texture, "bg_canvas": self.cache_bg_canvas}

    # -- optimisation ---------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        # StyleAvatar: AdamW, betas (0, 0.99). StyleGAN2 rescales the discriminator's learning rate and beta2 by
        # r1_interval / (r1_interval + 1) because its lazy R1 is an extra optimiser step; here R1 joins the
        # logistic loss in the same step, so no step is added and no correction applies.
        # The fused kernel updates every parameter in one pass: 2.6x faster than the per-tensor loop on a CPU.
        fused = self.device.type in ("cpu", "cuda")
        g = torch.optim.AdamW(self.generator.parameters(), lr=self.hparams.lr_g, betas=(0.0, 0.99), fused=fused)
        d = torch.optim.AdamW(self.discriminator.parameters(), lr=self.hparams.lr_d, betas=(0.0, 0.99), fused=fused)
        return [g, d]

    def _check(self, terms: dict[str, torch.Tensor], step: int) -> None:
        # One host sync for all terms: a per-term isfinite().all() would wait on the device once per loss.
        if bool(torch.stack([v.detach().float().reshape(()) for v in terms.values()]).isfinite().all()):
            return
        for name, value in terms.items():
            if not torch.isfinite(value).all():
                raise NonFiniteLossError(
                    f"loss '{name}' became {value.item()} at step {step}; training stopped before the update. "
                    "The last good checkpoint is kept (checkpoints/last.ckpt); try a lower learning rate or "
                    f"`--loss {name}=0`, then --resume."
                )

    def _augment(self, batch: dict[str, torch.Tensor], step: int):
        """On alternate steps, the batch shifted (and turned) as one, with ``valid``, the matching background window
        offsets and the background features' warp; else the batch as it is, the centred window and no warp (None,
        None)."""
        plate = self.plate()
        if plate is not None:
            batch = {**batch, "plate": plate}
        if self.model_cfg.reference_frames:
            batch = {**batch, "reference": self.reference(batch["uv"], batch["frame_index"],
                                                          self.hparams.reference_window)}
        if not self.hparams.bg_shift or step % 2:
            return batch, None, None
        bg = self.generator.background_generator
        centre = bg.max_offset // 2
        n = batch["image"].shape[0]
        shifts = draw_shifts(n, centre, generator=self._aug)
        batch = shift_batch(batch, shifts.to(self.device))
        warp = None
        rotate_deg, zoom = self.hparams.rotate_deg, self.hparams.zoom
        if rotate_deg > 0 or zoom > 0:
            warp = draw_similarity(n, rotate_deg, zoom, generator=self._aug).to(self.device)
            batch = warp_batch(batch, warp)
        return batch, (centre - shifts).to(self.device), warp

    def forward(self, batch: dict[str, torch.Tensor], ema: bool = False, bg_offset=None,
                bg_warp=None) -> dict[str, torch.Tensor]:
        cache = self.cached()
        image_generator = self.ema if ema else None
        plate = batch.get("plate", self.plate())
        reference = batch.get("reference")
        if reference is None and self.model_cfg.reference_frames:
            reference = self.reference(batch["uv"])
        return self.generator(batch["render"], batch["uv"], frame_index=batch.get("frame_index"),
                              bg_offset=bg_offset, face_texture=cache["face_texture"],
                              bg_canvas=cache["bg_canvas"], image_generator=image_generator, plate=plate,
                              bg_warp=bg_warp, reference=reference)

    def on_train_start(self) -> None:
        self._elapsed, self._clock = float(self.train_seconds), time.perf_counter()

    def progress(self, step: int) -> float:
        """How much of the run's budget is spent at ``step``: the larger of the step and time fractions."""
        hp = self.hparams
        fractions = [0.0]
        if hp.budget_steps:
            fractions.append(step / hp.budget_steps)
        if hp.budget_seconds:
            fractions.append(self._elapsed / hp.budget_seconds)
        return max(fractions)

    def _set_learning_rates(self, step: int, g_opt, d_opt) -> float:
        now = time.perf_counter()
        self._elapsed += now - (self._clock if self._clock is not None else now)
        self._clock = now
        self.train_seconds.fill_(self._elapsed)
        scale = lr_scale(self.progress(step), self.hparams.lr_decay)
        for opt, lr in ((g_opt, self.hparams.lr_g), (d_opt, self.hparams.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        return scale

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        step = int(self.step)  # one host read per step
        lr_factor = self._set_learning_rates(step, g_opt, d_opt)
        if not self.frozen and step >= self.hparams.freeze_after:
            self._freeze_and_cache()
        batch, offsets, warp = self._augment(batch, step)
        real, render, valid = batch["image"], batch["render"], batch.get("valid")
        out = self(batch, bg_offset=offsets, bg_warp=warp)
        fake = composite_border(out["image"], real, valid)
        pred_mask = composite_border(out["mask"], batch["matte"], valid)
        logs: dict[str, torch.Tensor] = {}

        if self.use_adversarial:
            self.discriminator.requires_grad_(True)
            d_terms = {"d_logistic": d_logistic_loss(self.discriminator(real, render),
                                                     self.discriminator(fake.detach(), render))}
            d_total = d_terms["d_logistic"]
            if step % self.hparams.r1_interval == 0 and self.hparams.r1_gamma > 0:
                real_req = real.detach().requires_grad_(True)
                d_terms["r1"] = r1_penalty(self.discriminator(real_req, render), real_req)
                d_total = d_total + self.hparams.r1_gamma / 2 * d_terms["r1"] * self.hparams.r1_interval
            self._check(d_terms, step)
            d_opt.zero_grad(set_to_none=True)
            self.manual_backward(d_total)
            d_opt.step()
            logs.update({f"train/{k}": v.detach() for k, v in d_terms.items()})
            self.discriminator.requires_grad_(False)
            fake_logits = self.discriminator(fake, render)
        else:
            fake_logits = None

        total, terms = self.gen_loss(fake, real, batch["matte"], batch["face_mask"], fake_logits=fake_logits,
                                     pred_mask=pred_mask)
        self._check({**terms, "total": total.detach()}, step)
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        for part in (self.generator.face_generator, self.generator.background_generator,
                     self.generator.image_generator):
            self._clip(part)
        g_opt.step()
        self._update_ema(step)
        self.step += 1

        logs.update({f"train/{k}": v for k, v in terms.items()})
        logs["train/total"] = total.detach()
        logs["train/lr_factor"] = lr_factor
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False, batch_size=real.shape[0])
        self.log("step", self.step.float(), prog_bar=True, on_step=True, on_epoch=False, batch_size=real.shape[0])
        every = self.hparams.image_every
        if every and (step + 1) % every == 0:
            self._panels(batch, {**out, "image": fake}, "train")

    def _clip(self, module: torch.nn.Module) -> None:
        if self.hparams.grad_clip > 0:
            params = [p for p in module.parameters() if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, self.hparams.grad_clip)

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        # Warm-up: early on the average follows the weights closely, else it would start as random noise.
        decay = min(self.hparams.ema_decay, (1 + step) / (10 + step))
        for pe, p in zip(self.ema.parameters(), self.generator.image_generator.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.ema.buffers(), self.generator.image_generator.buffers()):
            be.copy_(b)

    # -- validation -----------------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        from kornia.metrics import psnr

        # Held-out frames were never trained on: use the mean time code, as reenactment does.
        out = self({**batch, "frame_index": None}, ema=True)
        fake = ((out["image"] + 1) / 2).clamp(0, 1)
        real = (batch["image"] + 1) / 2
        n = real.shape[0]
        self.log("val/psnr", psnr(fake, real, 1.0), sync_dist=True, batch_size=n)
        self.log("val/l1", (fake - real).abs().mean(), sync_dist=True, batch_size=n)
        if batch_idx == 0 and self.hparams.image_every:
            self._panels(batch, out, "val")

    def _panels(self, batch, out, tag: str) -> None:
        from selfie_avatar.training.panels import log_panels

        log_panels(self, batch, out, tag, int(self.step))
