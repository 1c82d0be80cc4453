"""``selfie-avatar train``: a subject folder in, a run folder out.

    RUN/
      config.json             every setting of the run (train config, preset values, model config, loss set,
                              VGG feature source, versions)
      checkpoints/last.ckpt   the latest state (atomic; --resume continues from it exactly)
      checkpoints/best.ckpt   the best by PSNR on the validation frames (never on the test frames)
      checkpoints/*.prev.ckpt the state each of those replaced (--resume falls back to it when the newer is damaged)
      logs/metrics.csv        every logged value (always)
      wandb/                  Weights & Biases run files (offline unless logged in; WANDB_MODE is honoured)
      images/                 panels: real | generated | I_R | I_UV | mask
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from selfie_avatar import __version__
from selfie_avatar.config import TrainConfig, config_to_dict
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.training.presets import Preset, get_preset
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.utils.log import get_logger
from selfie_avatar.utils.threads import ThreadGovernor

log = get_logger("train")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    val_psnr: float | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    vgg_source: str

    def summary(self) -> str:
        psnr = "n/a" if self.val_psnr is None else f"{self.val_psnr:.2f} dB"
        return (f"run folder: {self.run_dir}\n  steps: {self.steps} in {self.seconds / 60:.1f} min\n"
                f"  validation PSNR (EMA generator): {psnr}\n  VGG features: {self.vgg_source}\n"
                f"  checkpoints: {self.last_checkpoint}" + (f", {self.best_checkpoint}" if self.best_checkpoint else ""))


def resolve_settings(cfg: TrainConfig) -> Preset:
    """The run's preset with every field the user gave on the command line put in (``None`` keeps the preset's),
    its network switches too (time code, background plate, face as foreground, reference bank, photo texture).

    ``--feature-window 0`` means the whole frame (None in the preset's terms).
    """
    p = get_preset(cfg.preset)
    given = {k: v for k, v in {"batch_size": cfg.batch_size, "max_steps": cfg.max_steps,
                               "max_minutes": cfg.max_minutes, "lr_g": cfg.lr_g, "lr_d": cfg.lr_d,
                               "freeze_after": cfg.freeze_after, "time_code": cfg.time_code,
                               "lr_decay": cfg.lr_decay, "rotate_deg": cfg.rotate_deg,
                               "zoom": cfg.zoom}.items() if v is not None}
    if cfg.feature_window is not None:
        given["feature_window"] = cfg.feature_window or None  # 0: the whole frame
    p = dataclasses.replace(p, **given)
    model = dataclasses.replace(p.model, use_time_code=p.time_code,
                                use_background_plate=p.model.use_background_plate and cfg.background_plate,
                                face_is_foreground=(p.model.face_is_foreground if cfg.face_foreground is None
                                                    else cfg.face_foreground),
                                reference_frames=p.model.reference_frames if cfg.reference else 0,
                                photo_texture=p.model.photo_texture and cfg.photo_texture)
    return dataclasses.replace(p, model=model)


def settings_record(s: Preset) -> dict:
    """The resolved settings as the run record stores them (the network settings are stored on their own)."""
    out = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "model"}
    out["loss_weights"] = dict(s.loss_weights)
    return out


def _wandb_mode() -> str:
    """WANDB_MODE when set; else offline unless an API key is configured (wandb would fail without one)."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    return "online" if logged_in else "offline"


def _accelerator(device: str) -> str:
    return {"auto": "auto", "cpu": "cpu", "cuda": "gpu", "gpu": "gpu"}.get(device.split(":")[0], device)


def train(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train an avatar on a prepared subject. See the module docstring for what the run folder holds.

    Args:
        cfg: the run's settings.
        callbacks: further Lightning callbacks (e.g. ``benchmarks/quality.py``'s snapshots).

    Raises:
        FileExistsError: the run folder exists and neither --resume nor --overwrite was given.
        SelfieAvatarError: --resume without a checkpoint, or a checkpoint from another preset / version; a NaN loss.
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from selfie_avatar.losses import resolve_loss_weights
    from selfie_avatar.training.checkpoint_io import SafeCheckpointIO, resume_checkpoint
    from selfie_avatar.training.data import SubjectDataModule
    from selfie_avatar.training.module import AvatarModule

    if not cfg.out:
        raise ValueError("train needs a run folder (--out)")
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    s = resolve_settings(cfg)
    weights = resolve_loss_weights(dict(s.loss_weights), overrides=cfg.loss)
    model_cfg = s.model

    worker = _is_worker_process()
    resume_from = None
    if worker:
        # DDP launches this function again in every worker: the launching process did the checks and writes, and
        # set damaged checkpoints aside; a worker only picks the same newest whole one.
        if cfg.resume:
            resume_from = resume_checkpoint(ckpt_dir, set_aside=False)
    elif cfg.resume:
        _check_resumable(out, cfg, weights)
        resume_from = resume_checkpoint(ckpt_dir)  # the newest whole checkpoint; damaged ones are named and set aside
    elif out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or --overwrite to restart")
    elif cfg.overwrite and ckpt_dir.is_dir():
        for f in ckpt_dir.glob("*.ckpt*"):  # the old run's states, their previous copies and damaged leftovers
            f.unlink()

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = SubjectDataModule(cfg.subject, size=model_cfg.size, batch_size=s.batch_size,
                             num_workers=cfg.num_workers, seed=cfg.seed)
    model_cfg = dataclasses.replace(model_cfg, num_frames=data.num_frames)
    module = AvatarModule(
        model=dataclasses.asdict(model_cfg), loss_weights=weights, lr_g=s.lr_g, lr_d=s.lr_d,
        freeze_after=s.freeze_after, ema_decay=s.ema_decay, grad_clip=cfg.grad_clip, r1_gamma=cfg.r1_gamma,
        r1_interval=s.r1_interval, bg_shift=cfg.bg_shift, image_every=s.image_every,
        feature_window=s.feature_window, lr_decay=s.lr_decay, rotate_deg=s.rotate_deg, zoom=s.zoom,
        budget_steps=s.max_steps,
        budget_seconds=s.max_minutes * 60 if s.max_minutes else None,
        vgg_weights=cfg.vgg_weights, seed=cfg.seed, reference_window=cfg.reference_window,
    )
    if model_cfg.use_background_plate:
        from selfie_avatar.training.data import background_plate

        module.set_background_plate(background_plate(data.subject, model_cfg.size))
    if model_cfg.reference_frames:
        from selfie_avatar.training.data import fill_reference_bank

        fill_reference_bank(module.reference, data.train_set, model_cfg.reference_frames)
    if model_cfg.photo_texture:
        from selfie_avatar.training.data import fill_photo_texture

        fill_photo_texture(module.generator, data.train_set)
    record = {
        "type": "TrainRun", "train_config": config_to_dict(cfg),
        "resolved": settings_record(s), "model": dataclasses.asdict(model_cfg),
        "loss_weights": weights, "vgg_source": module.vgg_source, "subject": str(Path(cfg.subject).resolve()),
        "validation_frames": data.val_indices, "test_frames": data.subject.test_indices,
        "checkpoint_selection": f"best.ckpt: highest val/psnr of the EMA generator on {len(data.val_indices)} "
                                f"validation frames, never on a test frame",
        "assets": module.assets_record,  # which model files were real, which fell back (also the W&B config)
        "versions": {"selfie_avatar": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    if not worker:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", record)

    # One CSV per session (a resumed run adds one), so resuming never overwrites the history; read_metrics() joins them.
    session = len(list((out / "logs").glob("session_*"))) if not worker else 0
    loggers = [CSVLogger(save_dir=str(out), name="logs", version=f"session_{session:03d}")]
    mode = _wandb_mode()
    if mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        os.environ["WANDB_MODE"] = mode
        loggers.append(WandbLogger(project=cfg.wandb_project, name=cfg.run_name or out.name, group=cfg.wandb_group,
                                   save_dir=str(out), config=record))
    for lg in loggers:
        lg.log_hyperparams({"loss_weights": weights, "vgg_source": module.vgg_source, "preset": cfg.preset})

    governor = ThreadGovernor()  # follows other processes' load during the run (utils/threads.py)

    class StopAtStep(Callback):
        def on_train_batch_end(self, trainer, pl_module, *args) -> None:
            governor.tick()
            if int(pl_module.step) >= s.max_steps:
                trainer.should_stop = True

    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/psnr", mode="max", save_top_k=1,
                           save_last=True, enable_version_counter=False)
    _drop_lightning_advert()
    trainer = L.Trainer(
        accelerator=_accelerator(cfg.device), devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=_strategy(cfg.strategy),
        max_epochs=-1, max_steps=-1,
        max_time=timedelta(minutes=s.max_minutes) if s.max_minutes else None,
        val_check_interval=s.val_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        logger=loggers, callbacks=[best, StopAtStep(), *(callbacks or [])], default_root_dir=str(out),
        plugins=[SafeCheckpointIO()],  # keeps the previous checkpoint; a failed write leaves it intact
        enable_progress_bar=cfg.progress, log_every_n_steps=1, enable_model_summary=False,
    )
    keep_native_signal_handlers(trainer)
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=None if resume_from is None else str(resume_from),
                    weights_only=True)
        # The final state, also when training stopped between validations. Every rank calls it (a collective);
        # Lightning writes from rank 0 only.
        trainer.save_checkpoint(last, weights_only=False)  # optimiser states included: --resume needs them
    finally:
        _finish_wandb(loggers)
    val = trainer.callback_metrics.get("val/psnr")
    return TrainResult(out, int(module.step), time.perf_counter() - t0, None if val is None else float(val), last,
                       Path(best.best_model_path) if best.best_model_path else None, module.vgg_source)


def _drop_lightning_advert() -> None:
    """Lightning 2.6 prints a tip to install its cloud logger at every fit; it says nothing about the run."""
    import logging

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(getattr(f, "_selfie_avatar", False) for f in logger.filters):
        drop = logging.Filter()
        drop.filter = lambda record: "litlogger" not in record.getMessage()  # type: ignore[method-assign]
        drop._selfie_avatar = True  # type: ignore[attr-defined]
        logger.addFilter(drop)


def _finish_wandb(loggers) -> None:
    """Close this run's W&B run. Lightning leaves it open, and the next ``train`` in the same process (an ablation
    grid, a notebook) would otherwise log into it instead of starting its own run."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()  # a no-op stand-in on ranks other than 0


def keep_native_signal_handlers(trainer) -> None:
    """Make Lightning restore only the signals it actually replaced when fit ends.

    Its teardown re-registers *every* signal to what Python's ``signal.getsignal`` reported, which is SIG_DFL for
    handlers installed by native code. MediaPipe arms a SIGPROF timer with its own C handler, so after a training
    run in the same process (a notebook kernel, the test suite) the next ``prepare`` was killed by SIGPROF.
    """
    import signal

    conn = getattr(trainer, "_signal_connector", None)
    if conn is None or not hasattr(conn, "teardown"):
        return
    replaced = {signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT}
    teardown = conn.teardown

    def narrowed() -> None:
        conn._original_handlers = {k: v for k, v in getattr(conn, "_original_handlers", {}).items() if k in replaced}
        teardown()

    conn.teardown = narrowed


def _strategy(name: str):
    """Lightning's DDP, told that each backward uses only part of the module: the discriminator's backward leaves
    the generators unused and the generator's leaves the discriminator unused (manual optimisation)."""
    if name in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True, start_method="spawn" if name == "ddp_spawn" else "popen")
    return name


def _is_worker_process() -> bool:
    """True in the processes Lightning's DDP launcher starts beside the first (and in non-zero ranks)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("RANK", "0")) > 0 \
        or int(os.environ.get("NODE_RANK", "0")) > 0


def read_metrics(run_dir: str | Path) -> list[dict[str, str]]:
    """Every row of every session's ``metrics.csv`` of a run, in session order."""
    import csv

    rows: list[dict[str, str]] = []
    for f in sorted(Path(run_dir).glob("logs/session_*/metrics.csv")):
        with open(f) as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def _check_resumable(out: Path, cfg: TrainConfig, weights: dict) -> None:
    from selfie_avatar.utils.atomic import read_json

    old = read_json(out / "config.json", "--resume needs the run record `selfie-avatar train` writes; start again "
                                         "with --overwrite")
    was = old.get("train_config", {})
    if was.get("preset") != cfg.preset:
        raise SelfieAvatarError(f"--resume: {out} was trained with preset {was.get('preset')!r}, not {cfg.preset!r}")
    if old.get("versions", {}).get("selfie_avatar") != __version__:
        raise SelfieAvatarError(f"--resume: {out} was written by selfie_avatar {old.get('versions')}, this is "
                                f"{__version__}; start a new run")
    if old.get("loss_weights") != weights:
        log.warning("resuming with a different loss set: %s (was %s)", weights, old.get("loss_weights"))


def ensure_run(subject: str | Path, out: str | Path, preset: str = "cpu", max_steps: int | None = None,
               device: str = "auto", progress: bool = True) -> Path:
    """The run folder ``out``, trained on ``subject`` unless it already holds a finished run (notebooks pick up the
    run an earlier notebook trained this way).

    Raises:
        FileExistsError: ``out`` exists but holds no checkpoint (nothing is overwritten).
    """
    out = Path(out)
    if out.exists():
        if not (out / "checkpoints" / "last.ckpt").is_file():
            raise FileExistsError(f"{out} exists but holds no checkpoints/last.ckpt; choose another folder, or "
                                  f"resume it with `selfie-avatar train --resume`")
        log.info("reusing run folder %s", out)
        return out
    train(TrainConfig(subject=str(subject), out=str(out), preset=preset, max_steps=max_steps, device=device,
                      progress=progress))
    return out
