import json
import shutil

import numpy as np
import pytest
import torch

from selfie_avatar.cli import main
from selfie_avatar.config import LiveConfig, ReenactConfig, TrainEncoderConfig
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.io.video import probe_video
from selfie_avatar.reenact.inference import PATHS, TOLERANCES, BakedAvatar, check_path, make_path, path_supported
from selfie_avatar.reenact.live import live
from selfie_avatar.reenact.run import reenact
from selfie_avatar.training.checkpoint import open_run
from selfie_avatar.training.data import SubjectFrames


@pytest.fixture(scope="module")
def inputs(tiny_run):
    run = open_run(tiny_run, "last")
    data = SubjectFrames(run.subject, run.subject.train_indices[:2], size=run.avatar.config.size, cache=False)
    render = torch.stack([data[k]["render"] for k in range(2)])
    uv = torch.stack([data[k]["uv"] for k in range(2)])
    return run, render, uv


def test_baked_avatar_is_the_loaded_avatar(inputs):
    run, render, uv = inputs
    baked = BakedAvatar(run.avatar)
    with torch.no_grad():
        ref = run.avatar.render(render, uv)["image"]
        assert torch.allclose(baked(render, uv), ref, atol=1e-6)


@pytest.mark.parametrize("path", [p for p in PATHS if p != "eager"])
def test_every_path_matches_eager_fp32(inputs, path):
    run, render, uv = inputs
    device = torch.device("cpu")
    ok, why = path_supported(path, device)
    if not ok:
        with pytest.raises(ValueError, match="not available"):
            make_path(BakedAvatar(run.avatar), path, device)
        pytest.skip(why)
    check = check_path(BakedAvatar(run.avatar), path, render, uv, device)
    assert check.ok, check
    assert check.mean_abs_diff <= TOLERANCES[path]


def test_export_onnx_is_verified_with_onnxruntime(tiny_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "avatar.onnx"
    assert main(["export", str(tiny_run), "--onnx", str(out), "--checkpoint", "last"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.is_file() and report["max_abs_diff"] <= report["tolerance"]
    assert "onnxruntime vs PyTorch" in capsys.readouterr().out
    import onnxruntime as ort

    run = open_run(tiny_run, "last")
    s = run.avatar.config.size
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(["image"], {"render": np.zeros((1, 3, s, s), np.float32), "uv": np.zeros((1, 3, s, s), np.float32)})
    assert got[0].shape == (1, 3, s, s) and np.isfinite(got[0]).all()


def test_live_without_display_writes_the_video_and_figures(tiny_run, driver_clip, tmp_path):
    out = tmp_path / "live.mp4"
    result = live(LiveConfig(run_dir=str(tiny_run), source=str(driver_clip), out=str(out), display="no",
                             codes="landmarks", max_frames=8, device="cpu", checkpoint="last", progress=False))
    assert result.frames == 8 and result.frames_per_second > 0 and result.codes == "landmarks"
    assert probe_video(out).num_frames == 8
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["stage_ms_per_frame"]) == {"read", "codes", "render", "generator", "output"}


def test_live_refuses_a_missing_webcam_and_an_unavailable_path(tiny_run, driver_clip):
    with pytest.raises(SelfieAvatarError, match="webcam"):
        live(LiveConfig(run_dir=str(tiny_run), source="webcam:57", display="no", device="cpu", checkpoint="last"))
    with pytest.raises(SelfieAvatarError, match="fp16"):
        live(LiveConfig(run_dir=str(tiny_run), source=str(driver_clip), display="no", path="fp16", device="cpu",
                        checkpoint="last"))


def test_fast_path_with_a_trained_encoder(tiny_run, train_subject, driver_clip, tmp_path, monkeypatch):
    from selfie_avatar.training.encoder import train_encoder

    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    train_encoder(TrainEncoderConfig(subject=str(train_subject), out=str(run / "encoder"), size=32, width=8,
                                     max_steps=4, batch_size=8, device="cpu", progress=False))
    out = tmp_path / "fast.mp4"
    result = reenact(ReenactConfig(run_dir=str(run), driver=str(driver_clip), out=str(out), fast=True,
                                   max_frames=10, device="cpu", progress=False, checkpoint="last"))
    assert result.frames == 10 and probe_video(out).num_frames == 10
    assert json.loads(out.with_suffix(".json").read_text())["driver_method"] == "encoder"
    res = live(LiveConfig(run_dir=str(run), source=str(driver_clip), out=str(tmp_path / "l.mp4"), display="no",
                          max_frames=5, device="cpu", checkpoint="last", progress=False))
    assert res.codes == "encoder" and res.frames == 5
