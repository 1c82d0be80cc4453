"""Fixtures shared with the training tests: a small prepared subject."""

from tests.training.conftest import offline_wandb, train_subject  # noqa: F401
