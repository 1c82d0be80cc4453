"""The fault suite: outputs of real runs deliberately damaged, bad inputs generated at test time. Every case asserts
the one-line message a user sees and that nothing already written was lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def six_step_run(train_subject, tmp_path_factory):
    """A tiny run trained for 6 steps (one validation, so last.ckpt and best.ckpt both exist), W&B disabled."""
    import os
    from unittest import mock

    from selfie_avatar.config import TrainConfig
    from selfie_avatar.training.run import train

    root = tmp_path_factory.mktemp("six_step_run")
    with mock.patch.dict(os.environ, {"WANDB_MODE": "disabled", "HOME": str(root / "home")}):
        train(TrainConfig(subject=str(train_subject), out=str(root / "run"), preset="tiny", max_steps=6,
                          progress=False, device="cpu", loss=["id_mrf=0", "cosine=0"]))
    return root / "run"


@pytest.fixture
def run_copy(six_step_run, tmp_path, monkeypatch):
    """A private copy of ``six_step_run`` to damage."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dst = tmp_path / "run"
    shutil.copytree(six_step_run, dst)
    return dst
