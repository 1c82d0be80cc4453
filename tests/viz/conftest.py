"""Fixtures shared with the training tests: a small prepared subject."""

