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


# The small prepared subject and the tiny run live here, once per session, for every folder that uses them.
@pytest.fixture(scope="session")
def train_subject(tmp_path_factory):
    """24 frames at 64 px from the real selfie when ../shared/data is present, else from the built-in sample."""
    from selfie_avatar.config import PrepareConfig
    from selfie_avatar.prepare.pipeline import prepare

    root = tmp_path_factory.mktemp("train_subject")
    video = SHARED_DATA / "selfie_d6.mp4"
    if not video.is_file():
        from tests.prepare.conftest import build_short_sample

        video = build_short_sample(root / "sample.mp4", seconds=1.0)
    out = root / "subject"
    prepare(PrepareConfig(video=str(video), out=str(out), size=64, max_frames=24, device="cpu", write_video=False),
            progress=False)
    return out


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, with its files and its debug logs under a temporary folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(train_subject, tmp_path_factory):
    """A run folder trained for 12 steps with the tiny preset on ``train_subject`` (W&B disabled): enough for
    inference tests, which check plumbing and consistency, not quality."""
    import os
    from unittest import mock

    from selfie_avatar.config import TrainConfig
    from selfie_avatar.training.run import train

    root = tmp_path_factory.mktemp("tiny_run")
    run = root / "run"
    with mock.patch.dict(os.environ, {"WANDB_MODE": "disabled", "HOME": str(root / "home")}):
        train(TrainConfig(subject=str(train_subject), out=str(run), preset="tiny", max_steps=12, progress=False,
                          device="cpu", loss=["id_mrf=0", "cosine=0"]))
    return run
