"""The learning-rate decay at the end of a run's budget: its shape, and that a run follows it and records it."""

from __future__ import annotations

import math

import pytest
import torch

from selfie_avatar.config import TrainConfig
from selfie_avatar.training.module import LR_FLOOR, lr_scale
from selfie_avatar.training.run import read_metrics, train


def test_lr_scale_is_constant_then_a_half_cosine_to_the_floor():
    assert lr_scale(0.9, 0.0) == 1.0  # off
    assert lr_scale(0.0, 0.3) == lr_scale(0.7, 0.3) == 1.0
    assert lr_scale(1.0, 0.3) == pytest.approx(LR_FLOOR) and lr_scale(1.5, 0.3) == pytest.approx(LR_FLOOR)
    assert lr_scale(0.85, 0.3) == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * 0.5)  # half way down
    values = [lr_scale(p / 100, 0.3) for p in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never rises
    assert lr_scale(0.75, 0.3) == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi / 6)))


def test_a_run_follows_the_decay_over_its_steps(train_subject, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tmp_path / "run"
    train(TrainConfig(subject=str(train_subject), out=str(run), preset="tiny", progress=False, device="cpu",
                      max_steps=8, lr_decay=0.5, loss=["id_mrf=0", "cosine=0"]))
    rows = read_metrics(run)
    logged = [float(r["train/lr_factor"]) for r in rows if r.get("train/lr_factor") not in (None, "")]
    # Step k (0-based) runs at progress k / 8: constant for the first half, then down the cosine.
    assert logged == pytest.approx([lr_scale(k / 8, 0.5) for k in range(8)], abs=1e-6)
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    lr_g = ck["hyper_parameters"]["lr_g"]
    assert ck["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr_g * lr_scale(7 / 8, 0.5))
    assert float(ck["state_dict"]["train_seconds"]) > 0  # a resumed run continues the schedule from here
