"""Fixtures shared with the training tests."""

from tests.reenact.conftest import driver_clip  # noqa: F401
from tests.training.conftest import offline_wandb, tiny_run, train_subject  # noqa: F401
