"""The trivial baselines: built from training frames only, scored on exactly the avatar's crops and metrics."""

import json

import cv2
import numpy as np
import pytest
import torch

from selfie_avatar.config import EvaluateConfig
from selfie_avatar.evaluate.baselines import TrivialBaselines, nearest_training_frames
from selfie_avatar.evaluate.metrics import frame_metrics
from selfie_avatar.evaluate.run import checkpoint_selection, evaluate
from selfie_avatar.tracking.subject import Subject


def test_nearest_codes_finds_the_frame_with_the_same_codes():
    rng = np.random.default_rng(0)
    n = 30
    tracking = {"expression": rng.normal(size=(n, 56)), "euler_deg": rng.normal(size=(n, 3)) * 10,
                "translation": rng.normal(size=(n, 3)) * 5, "scale": 1 + rng.random(n)}
    train, query = list(range(20)), [20, 21]
    for q, t in zip(query, (3, 17)):  # make each query a near copy of one training frame
        for k in tracking:
            tracking[k][q] = tracking[k][t] + 1e-3
    assert nearest_training_frames(tracking, train, query) == [3, 17]


def test_baselines_use_training_frames_only(train_subject):
    s = Subject(train_subject)
    b = TrivialBaselines(s, 32)
    src = b.sources(s.test_indices)
    assert set(src["nearest_codes"]) <= set(s.train_indices) and src["last_frame"][0] == s.train_indices[-1]
    mean = np.mean([cv2.resize(s.frame(i), (32, 32), interpolation=cv2.INTER_AREA) for i in s.train_indices], 0)
    assert torch.allclose(b.predict(s.test_indices[:1])["mean_frame"][0], torch.from_numpy(mean / 255).float()
                          .permute(2, 0, 1), atol=1e-5)


def test_evaluate_scores_baselines_on_the_avatars_crops(tiny_run, tmp_path):
    evaluate(EvaluateConfig(run_dir=str(tiny_run), checkpoint="last", out=str(tmp_path / "eval"), device="cpu"),
             progress=False)
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    s = Subject(json.loads((tiny_run / "config.json").read_text())["subject"])
    assert m["frames"] == s.test_indices and not set(m["frames"]) & set(s.train_indices + s.validation_indices)
    size = m["model"]["size"]

    def load(i):  # the evaluation crops, read independently of the evaluation code
        return torch.from_numpy(s.frame(i)).permute(2, 0, 1)[None].float() / 255

    real = torch.cat([load(i) for i in m["frames"]])
    matte = torch.from_numpy(np.stack([s.matte(i) for i in m["frames"]]))[:, None]
    assert real.shape[-1] == size
    last = load(s.train_indices[-1]).expand_as(real)
    expected = frame_metrics(last, real, matte)
    got = m["baselines"]["last_frame"]["per_frame"]
    for k in ("l1", "psnr", "ssim", "fg_psnr"):
        assert got[k] == pytest.approx(expected[k].tolist(), rel=1e-4, abs=1e-5), k
    for name in ("nearest_codes", "mean_frame", "last_frame", "untrained"):
        assert set(m["baselines"][name]["per_frame"]) == set(m["per_frame"])
    g = m["margin"]["psnr"]
    best = max(m["baselines"][b]["mean"]["psnr"] for b in ("nearest_codes", "mean_frame", "last_frame"))
    assert g["baseline_mean"] == pytest.approx(best)
    assert g["improvement"] == pytest.approx(m["mean"]["psnr"] - best, abs=1e-6)
    assert (tmp_path / "eval" / "baselines.png").is_file()


def test_a_best_checkpoint_chosen_before_the_validation_split_is_not_reported():
    assert checkpoint_selection({}, "best")[0] == "last"  # chosen on what are now the test frames
    assert checkpoint_selection({"checkpoint_selection": "on validation"}, "best") == ("best", "on validation")
