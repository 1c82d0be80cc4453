"""Fixtures shared with the training tests: a small prepared subject."""

from tests.training.conftest import train_subject  # noqa: F401
