import json
import shutil

import pytest
import torch

from selfie_avatar.cli import main
from selfie_avatar.config import ReenactConfig
from selfie_avatar.errors import NoFaceError, SelfieAvatarError
from selfie_avatar.io.video import probe_video, read_video
from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.reenact.run import reenact
from selfie_avatar.training.checkpoint import open_run
from selfie_avatar.training.data import SubjectFrames
from tests.media_factory import make_clip, make_moving_square_frames


def test_renderer_reproduces_the_training_inputs(tiny_run):
    """The subject's own codes through AvatarRenderer give the I_R and I_UV that prepare wrote."""
    run = open_run(tiny_run, "last")
    subject = run.subject
    renderer = AvatarRenderer(run.avatar, subject.face_model(), subject.size)
    idx = subject.train_indices[:4]
    geo = renderer.geometry(subject.codes(idx))
    data = SubjectFrames(subject, idx, size=run.avatar.config.size, cache=False)
    ref = torch.stack([data[k]["render"] for k in range(len(idx))])
    ref_uv = torch.stack([data[k]["uv"] for k in range(len(idx))])
    assert renderer.size == subject.size  # the tiny preset trains at the fixture's 64 px, so no resampling
    # Rasterising the same mesh twice: only the odd edge pixel may differ (float32 vs the float32 of prepare).
    differ = (geo["render"] - ref).abs().amax(1) > 2 / 255
    assert differ.float().mean() < 0.01
    assert ((geo["uv"][:, 2] > 0.5) != (ref_uv[:, 2] > 0.5)).float().mean() < 0.01
    out = renderer(subject.codes(idx))
    assert out["image"].shape == (4, 3, renderer.size, renderer.size) and torch.isfinite(out["image"]).all()


def test_reenact_writes_videos_of_the_driver_length(tiny_run, driver_clip, tmp_path):
    out = tmp_path / "avatar.mp4"
    result = reenact(ReenactConfig(run_dir=str(tiny_run), driver=str(driver_clip), out=str(out), max_frames=20,
                                   device="cpu", progress=False, checkpoint="last"))
    drv = probe_video(driver_clip)
    info = probe_video(out)
    assert info.num_frames == 20 and info.fps == pytest.approx(drv.fps)
    assert info.has_audio == drv.has_audio  # the driver's sound is kept
    src = json.loads((tmp_path / "avatar.json").read_text())
    assert src["frames"] == 20 and src["pasted_back"] and src["driver_method"] == "tracked"
    # pasted into the subject's full-resolution frame
    subject = open_run(tiny_run, "last").subject
    assert (info.width, info.height) == (subject.meta["source"]["width"], subject.meta["source"]["height"])
    sbs = probe_video(result.side_by_side)
    assert sbs.num_frames == 20 and sbs.width > info.width
    frames, _ = read_video(out)
    assert frames.std(0).mean() > 0.5  # the avatar moves with the driver: frames are not all the same


def test_reenact_crop_only_and_modes(tiny_run, driver_clip, tmp_path):
    out = tmp_path / "crop.mp4"
    assert main(["reenact", str(tiny_run), "--driver", str(driver_clip), "--out", str(out), "--max-frames", "6",
                 "--no-paste-back", "--no-side-by-side", "--pose", "absolute", "--expression-scale", "0",
                 "--checkpoint", "last", "--device", "cpu", "--no-progress"]) == 0
    info = probe_video(out)
    size = open_run(tiny_run, "last").avatar.config.size
    assert (info.width, info.height, info.num_frames) == (size, size, 6)
    assert not (tmp_path / "crop_side_by_side.mp4").exists()


def test_driver_without_a_face_is_a_clear_error(tiny_run, tmp_path, capsys):
    video = make_clip(tmp_path / "noface.mp4", make_moving_square_frames(12, 96, 96), fps=12)
    with pytest.raises(NoFaceError, match="driving video shows no usable face"):
        reenact(ReenactConfig(run_dir=str(tiny_run), driver=str(video), out=str(tmp_path / "o.mp4"),
                              device="cpu", progress=False, checkpoint="last"))
    assert main(["reenact", str(tiny_run), "--driver", str(video), "--out", str(tmp_path / "o.mp4"),
                 "--device", "cpu", "--checkpoint", "last", "--no-progress"]) == 2
    assert "no usable face" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_checkpoint_from_another_preset_is_refused(tiny_run, driver_clip, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ckpt = run / "checkpoints" / "last.ckpt"
    ck = torch.load(ckpt, weights_only=True)
    ck["hyper_parameters"]["model"]["size"] = 128  # what the cpu preset trains at
    ck["hyper_parameters"]["model"]["unet_channel_max"] *= 2
    torch.save(ck, ckpt)
    with pytest.raises(SelfieAvatarError, match="another version or preset"):
        reenact(ReenactConfig(run_dir=str(run), driver=str(driver_clip), out=str(tmp_path / "o.mp4"),
                              device="cpu", progress=False, checkpoint="last", max_frames=4))


def test_moved_source_video_of_another_resolution_is_refused(tiny_run, driver_clip, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    record = json.loads((run / "config.json").read_text())
    subject = tmp_path / "subject"
    shutil.copytree(record["subject"], subject)
    meta = json.loads((subject / "meta.json").read_text())
    meta["source"]["width"] += 64  # as if the source file had been replaced by another export
    (subject / "meta.json").write_text(json.dumps(meta))
    record["subject"] = str(subject)
    (run / "config.json").write_text(json.dumps(record))
    with pytest.raises(SelfieAvatarError, match="--no-paste-back"):
        reenact(ReenactConfig(run_dir=str(run), driver=str(driver_clip), out=str(tmp_path / "o.mp4"),
                              device="cpu", progress=False, checkpoint="last", max_frames=4))
    assert not (tmp_path / "o.mp4").exists()


def test_fast_path_without_an_encoder_says_how_to_get_one(tiny_run, driver_clip, tmp_path):
    with pytest.raises(SelfieAvatarError, match="train-encoder"):
        reenact(ReenactConfig(run_dir=str(tiny_run), driver=str(driver_clip), out=str(tmp_path / "o.mp4"),
                              fast=True, device="cpu", progress=False, checkpoint="last"))
