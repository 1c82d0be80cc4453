"""Short trainings with the tiny preset: losses fall, resume continues, switches work, NaN stops cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from selfie_avatar.config import TrainConfig
from selfie_avatar.training.module import NonFiniteLossError
from selfie_avatar.training.run import read_metrics, train


def _metrics(run):
    return read_metrics(run)


def _series(rows, key):
    return [(int(float(r["step"])), float(r[key])) for r in rows if r.get(key) not in (None, "")]


def _cfg(subject, out, **kw):
    base = dict(subject=str(subject), out=str(out), preset="tiny", progress=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_learns_and_logs_everything(train_subject, offline_wandb):
    run = offline_wandb / "run"
    res = train(_cfg(train_subject, run, max_steps=16))
    assert res.steps == 16
    rec = _series(_metrics(run), "train/reconstruction")
    assert len(rec) == 16
    first = np.mean([v for _, v in rec[:4]])
    last = np.mean([v for _, v in rec[-4:]])
    assert last < first, f"reconstruction did not fall: {first:.4f} -> {last:.4f}"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["loss_weights"]["id_mrf"] > 0 and cfg["vgg_source"]
    assert cfg["model"]["face_is_foreground"] is True and cfg["resolved"]["rotate_deg"] == 0.0  # the tiny preset's
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert list((run / "images").glob("train_*.png")) and list((run / "images").glob("val_*.png"))
    # W&B wrote an offline run into the run folder, with the config in it
    runs = list((run / "wandb").glob("offline-run-*"))
    assert runs and any(p.name.endswith(".wandb") for p in runs[0].iterdir())
    for name in ("adversarial", "reconstruction", "id_mrf", "cosine"):
        assert _series(_metrics(run), f"train/{name}"), name
    assert _series(_metrics(run), "val/psnr")


def test_resume_continues_from_the_saved_step(train_subject, offline_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = offline_wandb / "run"
    train(_cfg(train_subject, run, max_steps=6))
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(ck["state_dict"]["step"]) == 6
    g_state = ck["optimizer_states"][0]["state"]
    assert all(int(v["step"]) == 6 for v in g_state.values() if "step" in v)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_cfg(train_subject, run, max_steps=9))
    res = train(_cfg(train_subject, run, max_steps=9, resume=True))
    assert res.steps == 9
    steps = [s for s, _ in _series(_metrics(run), "train/reconstruction")]
    assert steps == list(range(1, 10))  # both sessions' rows, the second continuing at step 7
    ck2 = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(ck2["state_dict"]["step"]) == 9
    adam_steps = {int(v["step"]) for v in ck2["optimizer_states"][0]["state"].values() if "step" in v}
    assert adam_steps == {6, 9}  # the face and background generators froze at step 6 (tiny preset), the rest ran on


def test_loss_switches(train_subject, offline_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = offline_wandb / "run"
    train(_cfg(train_subject, run, max_steps=2, loss=["id_mrf=0", "cosine=0", "adversarial=0"],
               face_foreground=False, rotate_deg=8.0, zoom=0.05))
    rows = _metrics(run)
    assert _series(rows, "train/reconstruction")
    for off in ("id_mrf", "cosine", "adversarial", "d_logistic"):
        assert not _series(rows, f"train/{off}")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["loss_weights"]["id_mrf"] == 0 and cfg["vgg_source"].startswith("none")
    assert cfg["model"]["face_is_foreground"] is False and cfg["model"]["use_background_plate"] is True
    assert cfg["resolved"]["rotate_deg"] == 8.0 and cfg["resolved"]["zoom"] == 0.05
    with pytest.raises(ValueError, match="idmrf"):
        train(_cfg(train_subject, offline_wandb / "bad", loss=["idmrf=1"]))


def test_nan_loss_stops_with_its_name_and_keeps_the_last_good_checkpoint(train_subject, offline_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    from selfie_avatar.losses import GeneratorLoss

    real_forward = GeneratorLoss.forward
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        total, terms = real_forward(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 8:
            terms = {**terms, "cosine": torch.tensor(float("nan"))}
        return total, terms

    monkeypatch.setattr(GeneratorLoss, "forward", poisoned)
    run = offline_wandb / "run"
    with pytest.raises(NonFiniteLossError, match=r"'cosine'.*step 7"):
        train(_cfg(train_subject, run, max_steps=12))
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(ck["state_dict"]["step"]) == 6  # saved at the last validation, before the NaN
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_two_process_ddp_on_cpu(train_subject, tmp_path):
    """Lightning's own DDP strategy (gloo on CPU) with two processes runs a few steps and writes a checkpoint."""
    env = {**os.environ, "WANDB_MODE": "disabled", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "selfie_avatar.cli", "train", str(train_subject), "--out", str(tmp_path / "ddp"),
           "--preset", "tiny", "--device", "cpu", "--devices", "2", "--strategy", "ddp", "--max-steps", "2",
           "--no-progress"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "ddp" / "checkpoints" / "last.ckpt").is_file()


def test_checkpoint_loads_for_inference_with_the_cache_only(train_subject, offline_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    from selfie_avatar.training.checkpoint import load_avatar
    from selfie_avatar.training.data import SubjectFrames
    from selfie_avatar.training.module import AvatarModule

    run = offline_wandb / "run"
    train(_cfg(train_subject, run, max_steps=8))  # the tiny preset freezes and caches at step 6
    path = run / "checkpoints" / "last.ckpt"
    avatar = load_avatar(path)
    assert avatar.step == 8 and avatar.face_texture.numel() > 0
    assert avatar.vgg_source == json.loads((run / "config.json").read_text())["vgg_source"]
    batch = torch.utils.data.default_collate([SubjectFrames(train_subject, [0, 1], size=avatar.config.size)[k]
                                              for k in range(2)])
    out = avatar.render(batch["render"], batch["uv"], batch["frame_index"])
    module = AvatarModule.load_from_checkpoint(path, weights_only=True).eval()
    with torch.no_grad():
        ref = module(batch, ema=True)
    assert torch.allclose(out["image"], ref["image"], atol=1e-5)
    bad = offline_wandb / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    from selfie_avatar.errors import SelfieAvatarError

    with pytest.raises(SelfieAvatarError, match="bad.ckpt"):
        load_avatar(bad)


def test_the_reference_bank_holds_training_frames_and_travels_in_the_checkpoint(tiny_run, train_subject,
                                                                                offline_wandb, monkeypatch):
    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.training.checkpoint import load_avatar
    from selfie_avatar.training.data import SubjectFrames

    subject = Subject(train_subject)
    avatar = load_avatar(tiny_run / "checkpoints" / "last.ckpt")
    bank = avatar.reference
    assert bank is not None and 0 < len(bank) <= avatar.config.reference_frames
    assert set(bank.frames.tolist()) <= set(subject.train_indices)  # never a validation or test frame
    for k, i in enumerate(bank.frames.tolist()):
        assert torch.equal(bank.images[k], torch.from_numpy(subject.frame(i)).permute(2, 0, 1))
    # The avatar uses it: other pictures in the bank give another image, outside the face.
    frames = subject.test_indices[:2]
    batch = torch.utils.data.default_collate([SubjectFrames(subject, frames)[k] for k in range(len(frames))])
    before = avatar.render(batch["render"], batch["uv"])["image"]
    bank.images = 255 - bank.images
    after = avatar.render(batch["render"], batch["uv"])["image"]
    assert (after - before).abs().max() > 1e-4
    # --no-reference trains the generator alone, and its checkpoint carries no bank.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = offline_wandb / "no_reference"
    train(_cfg(train_subject, run, max_steps=2, reference=False, loss=["id_mrf=0", "cosine=0"]))
    plain = load_avatar(run / "checkpoints" / "last.ckpt")
    assert plain.reference is None and plain.config.reference_frames == 0
    assert json.loads((run / "config.json").read_text())["model"]["reference_frames"] == 0


def test_the_photo_texture_is_unwrapped_from_the_training_frames_only(tiny_run, train_subject):
    from selfie_avatar.models import AvatarGenerator
    from selfie_avatar.models.config import ModelConfig
    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.training.data import SubjectFrames, fill_photo_texture

    ck = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    cfg = ModelConfig(**ck["hyper_parameters"]["model"])
    assert cfg.photo_texture
    saved = ck["state_dict"]["generator.photo_texture"]
    subject = Subject(train_subject)
    expected, every = AvatarGenerator(cfg), AvatarGenerator(cfg)
    fill_photo_texture(expected, SubjectFrames(subject, subject.train_indices, cfg.size))
    fill_photo_texture(every, SubjectFrames(subject, list(range(len(subject))), cfg.size))
    assert saved.abs().max() > 0.1
    torch.testing.assert_close(saved, expected.photo_texture)
    assert not torch.allclose(saved, every.photo_texture)      # the held-out frames would have changed it


def test_same_seed_same_run_on_cpu(train_subject, offline_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    series = []
    for k in range(2):
        run = offline_wandb / f"run{k}"
        train(_cfg(train_subject, run, max_steps=3, loss=["id_mrf=0"]))
        series.append(_series(_metrics(run), "train/reconstruction"))
    assert series[0] == series[1]


def test_prepare_still_works_after_training_in_the_same_process(train_subject, offline_wandb, monkeypatch):
    """Lightning's teardown used to reset MediaPipe's native SIGPROF handler, so a later prepare killed the process
    (a notebook kernel doing prepare -> train -> prepare)."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    import signal

    from selfie_avatar.config import PrepareConfig
    from selfie_avatar.prepare.pipeline import prepare
    from tests.prepare.conftest import build_short_sample

    before = signal.getsignal(signal.SIGPROF)
    train(_cfg(train_subject, offline_wandb / "run", max_steps=2, loss=["id_mrf=0", "cosine=0"]))
    assert signal.getsignal(signal.SIGPROF) == before
    clip = build_short_sample(offline_wandb / "clip.mp4", seconds=0.6)
    res = prepare(PrepareConfig(video=str(clip), out=str(offline_wandb / "subj"), size=64, write_video=False),
                  progress=False)
    assert res.num_valid == res.num_frames
