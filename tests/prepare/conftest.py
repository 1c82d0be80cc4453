"""Session-wide inputs for the prepare tests: a short built-in sample clip and its frames."""

from __future__ import annotations

import numpy as np
import pytest

from selfie_avatar.config import SampleConfig
from selfie_avatar.io.video import read_video
from selfie_avatar.sample.clip import build_sample_clip


def build_short_sample(path, seconds: float = 2.4, size: int = 256):
    """A short built-in sample clip at 25 fps (``seconds * 25`` frames)."""
    return build_sample_clip(SampleConfig(out=str(path), seconds=seconds, fps=25, size=size, seed=0))


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory):
    """A 2.4 s, 25 fps, 256x256 built-in sample clip (60 frames)."""
    return build_short_sample(tmp_path_factory.mktemp("sample") / "sample.mp4")


@pytest.fixture(scope="session")
def sample_frames(sample_clip) -> np.ndarray:
    frames, _ = read_video(sample_clip)
    return frames
