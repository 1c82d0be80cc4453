"""prepare: a selfie video in, a tracked subject folder out (landmarks, crop, tracking, render, matte)."""

from selfie_avatar.prepare.pipeline import PrepareResult, prepare
from selfie_avatar.tracking.subject import Subject

__all__ = ["PrepareResult", "Subject", "prepare"]
