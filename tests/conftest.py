"""Shared fixtures: the real footage in ../shared/data, and a temporary HOME so nothing writes to the user's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SELFIE_AVATAR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real test footage (read-only); tests using it skip with a reason where it is absent."""
    if not (SHARED_DATA / "selfie_d6.mp4").is_file():
        pytest.skip(f"real footage not found at {SHARED_DATA} (set SELFIE_AVATAR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real public-domain face photo (512x512 RGB uint8) shipped inside scikit-image."""
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch) -> Path:
    """An empty weights folder that is the only place model files are looked for (no install folder, no cache)."""
    from selfie_avatar.assets import registry

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(registry.ENV_WEIGHTS, str(folder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(registry, "default_install_dir", lambda: tmp_path / "none")
    return folder
