"""Fixtures for the loss tests: a seeded random VGG (no weight files needed) and an empty weights search path."""

from __future__ import annotations

import pytest
import torch

from selfie_avatar.losses.vgg import VGGFeatures, VGGSource

LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")


@pytest.fixture(scope="session")
def random_vgg() -> VGGFeatures:
    """VGG19 trunk up to relu4_2 with seeded random weights: deterministic, no files, no warnings."""
    return VGGFeatures(LAYERS, source=VGGSource("random", None, "tests"))


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Every place a VGG or HED weights file is searched for is an empty temporary folder."""
    import selfie_avatar.assets.registry as registry

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(registry.ENV_WEIGHTS, str(empty))
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setattr(registry, "default_install_dir", lambda: empty / "install")
    monkeypatch.setattr(registry, "_package_path", lambda asset: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(empty / "hub"))
    return empty


def images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB images in [-1, 1] (blurred noise looks more like photos than white noise does)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return (x * 2 - 1).clamp(-1, 1)
