"""Session-wide inputs for the prepare tests: a short built-in sample clip and its frames."""

from __future__ import annotations

import numpy as np
import pytest

from selfie_avatar.config import SampleConfig
from selfie_avatar.io.video import read_video
from selfie_avatar.sample.clip import build_sample_clip


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory):
    """A 2.4 s, 25 fps, 256x256 built-in sample clip (60 frames)."""
    path = tmp_path_factory.mktemp("sample") / "sample.mp4"
    build_sample_clip(SampleConfig(out=str(path), seconds=2.4, fps=25, size=256, seed=0))
    return path


@pytest.fixture(scope="session")
def sample_frames(sample_clip) -> np.ndarray:
    frames, _ = read_video(sample_clip)
    return frames
