"""Training presets: ``tiny`` (tests, seconds), ``cpu`` (the demo: about 10 minutes on 2 CPU cores), ``lite``
(256 px, narrow: an avatar that runs in real time on a CPU; 20 minutes), ``full`` (one GPU, 512 px). A preset fills every training setting the user did not give on the command line."""

from __future__ import annotations

from dataclasses import dataclass

from selfie_avatar.config import PRESETS as PRESET_HELP
from selfie_avatar.models.config import ModelConfig


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    batch_size: int
    max_steps: int
    max_minutes: float | None
    lr_g: float
    lr_d: float
    freeze_after: int  # steps before G_fa and G_b are frozen and their outputs cached (as StyleAvatar does)
    ema_decay: float
    val_every: int
    image_every: int
    r1_interval: int
    feature_window: int | None = None  # side of the face window the VGG losses see (losses/feature_crop.py)
    # Loss weights that differ from losses.registry.DEFAULT_LOSS_WEIGHTS, and the per-frame time code. The CPU
    # presets train without the adversarial term and the time code, and with lr_g 4e-3 instead of StyleAvatar's
    # 2e-3: measured on selfie_d6 (README, "Presets"), each gained quality within a 10-20 minute budget (the
    # GAN also costs a third of the step).
    loss_weights: tuple[tuple[str, float], ...] = ()
    time_code: bool = True
    lr_decay: float = 0.0  # the last fraction of the budget over which the learning rates fall (module.lr_scale)
    # In-plane rotation (degrees) and zoom of the whole sample on the shifted steps (training/shift.py).
    rotate_deg: float = 0.0
    zoom: float = 0.0


CPU_LOSSES = (("adversarial", 0.0),)

# The training schedule of each preset; its networks are models.config.NETWORK_PRESETS under the same name.
SCHEDULES: dict[str, dict] = {
    "tiny": dict(batch_size=2, max_steps=12, max_minutes=None, lr_g=2e-3, lr_d=2e-3, freeze_after=6, ema_decay=0.9,
                 val_every=6, image_every=6, r1_interval=4, feature_window=32),
    "cpu": dict(batch_size=4, max_steps=100_000, max_minutes=10.0, lr_g=4e-3, lr_d=2e-3, freeze_after=300,
                ema_decay=0.995, val_every=100, image_every=100, r1_interval=16, feature_window=64,
                loss_weights=CPU_LOSSES, time_code=False),
    "lite": dict(batch_size=2, max_steps=100_000, max_minutes=20.0, lr_g=4e-3, lr_d=2e-3, freeze_after=300,
                 ema_decay=0.995, val_every=100, image_every=100, r1_interval=16, feature_window=128,
                 loss_weights=CPU_LOSSES, time_code=False),
    "full": dict(batch_size=8, max_steps=200_000, max_minutes=None, lr_g=2e-3, lr_d=2e-3, freeze_after=10_000,
                 ema_decay=0.999, val_every=2000, image_every=1000, r1_interval=16),
}


def get_preset(name: str) -> Preset:
    """The named preset: its networks and its training schedule.

    Raises:
        ValueError: an unknown preset name.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}")
    return Preset(ModelConfig.preset(name), **SCHEDULES[name])


PRESETS = tuple(PRESET_HELP)  # the names, in order, as config.PRESETS lists them
