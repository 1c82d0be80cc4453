"""Fixtures shared with the reenact tests (train_subject and tiny_run come from the root conftest)."""

from tests.reenact.conftest import driver_clip  # noqa: F401
