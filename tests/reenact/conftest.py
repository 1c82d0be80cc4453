"""Fixtures shared with the training tests: a small subject and a tiny trained run."""

from tests.training.conftest import offline_wandb, tiny_run, train_subject  # noqa: F401
