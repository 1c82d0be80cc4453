"""The 3DMM encoder's training: augmentation keeps image and targets together, it learns pose from pixels, the
output folder and checkpoint, ``load_encoder``, the command line."""

from __future__ import annotations

import dataclasses
import json
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from selfie_avatar.cli import build_parser, main
from selfie_avatar.config import TrainEncoderConfig, config_from_args
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.models.encoder import EncoderNetConfig
from selfie_avatar.tracking.subject import Subject
from selfie_avatar.training.encoder import EncoderModule, load_encoder, train_encoder
from selfie_avatar.geometry.similarity import similarity_matrix, warp_images
from selfie_avatar.training.encoder_data import AugmentSettings, EncoderFrames, augment_batch, load_codes
from selfie_avatar.tracking.codes import TorchCodes
from selfie_avatar.training.encoder_report import code_errors, constant_mean, model_landmarks, predict_relative
from selfie_avatar.training.run import keep_native_signal_handlers


@pytest.fixture
def one_thread():
    """Train on one CPU thread: on a shared 2-core machine two threads waiting on each other's barriers are
    many times slower (measured 10x and more under load), and one thread is at most 2x slower when idle."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def subject(train_subject) -> Subject:
    return Subject(train_subject)


@pytest.fixture(scope="module")
def codes(subject) -> dict[str, torch.Tensor]:
    return load_codes(subject, subject.train_indices + subject.test_indices)


def _landmark_residual(face_model, batch) -> torch.Tensor:
    """Per-frame mean distance between the tracked landmarks and the model reprojected with the batch's codes."""
    lm = model_landmarks(face_model, TorchCodes.of(batch), batch["landmarks"].shape[1])
    return (lm - batch["landmarks"]).norm(dim=-1).mean(-1)


def test_load_codes_are_relative_to_the_crop(subject, codes):
    tr, s = subject.tracking, subject.size
    idx = codes["frame_index"].numpy()
    assert codes["image"].dtype == torch.uint8 and codes["image"].shape == (len(idx), 3, s, s)
    assert np.allclose(codes["translation"].numpy() * s, tr["translation"][idx, :2], atol=1e-4)
    half = load_codes(subject, subject.train_indices[:3], size=s // 2)
    assert half["image"].shape[-1] == s // 2
    assert torch.allclose(half["landmarks"], codes["landmarks"][:3])  # relative targets do not change with size


def test_geometric_augmentation_moves_the_targets_with_the_landmarks(subject, codes):
    """With the warped pose, the model lands on the warped landmarks exactly as well as before (scaled by k)."""
    fm = subject.face_model()
    before = _landmark_residual(fm, codes)
    assert before.mean() * subject.size < 0.5  # the tracked codes explain the landmarks to begin with
    settings = AugmentSettings(scale=0.3, shift=0.1, rotate_deg=40)
    aug = augment_batch(codes, torch.Generator().manual_seed(0), settings, photometric=False)
    k = aug["scale"] / codes["scale"]
    assert (k - 1).abs().max() > 0.1  # the draw really zoomed ...
    angle = torch.atan2(aug["rotation"][:, 1, 0] - codes["rotation"][:, 1, 0], torch.ones(len(k)))
    moved = (aug["landmarks"] - codes["landmarks"]).norm(dim=-1).mean(-1) * subject.size
    assert moved.min() > 1.0 and angle.abs().max() > 0  # ... and moved every face by more than a pixel
    after = _landmark_residual(fm, aug)
    assert torch.allclose(after, before * k, atol=1e-5)
    # Rotation stays a rotation and expression codes are untouched.
    eye = torch.eye(3).expand_as(aug["rotation"])
    assert torch.allclose(aug["rotation"] @ aug["rotation"].transpose(1, 2), eye, atol=1e-5)
    assert torch.equal(aug["expression"], codes["expression"])


def test_geometric_augmentation_moves_the_image_with_the_landmarks(codes):
    """Blobs drawn at three landmarks (one per colour channel) are found, after the warp, where the warped
    landmarks say: the image transform and the target transform are the same map, to sub-pixel accuracy."""
    s, picks = 64, (1, 33, 263)  # nose tip, right and left outer eye corners
    ramp = (torch.arange(s) + 0.5) / s
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    pts = codes["landmarks"][:, picks]  # (N, 3, 2) relative
    sigma = 2.0 / s
    blobs = torch.exp(-((xx - pts[..., 0, None, None]) ** 2 + (yy - pts[..., 1, None, None]) ** 2) / (2 * sigma**2))
    batch = {**codes, "image": blobs}
    settings = AugmentSettings(scale=0.3, shift=0.1, rotate_deg=40)
    aug = augment_batch(batch, torch.Generator().manual_seed(0), settings, photometric=False)
    img = (aug["image"] + 1) / 2
    want = aug["landmarks"][:, picks]
    # Look in a window around where the blob should be (a rotated, zoomed-out view also shows mirror images of the
    # blobs from the reflection padding, far away in the corners); the blob's whole mass, k^2 times the original,
    # must be there, centred on the warped landmark.
    near = ((xx - want[..., 0, None, None]) ** 2 + (yy - want[..., 1, None, None]) ** 2) < (6 * sigma) ** 2
    mass = (img * near).sum((-1, -2))
    k2 = (aug["scale"] / codes["scale"])[:, None] ** 2
    inside = ((want - 0.5).abs() < 0.5 - 4 * sigma).all(-1)  # blobs warped off the border are cut: skip those
    assert inside.float().mean() > 0.75
    assert torch.allclose(mass[inside], (blobs.sum((-1, -2)) * k2)[inside], rtol=0.03)
    w = img * near / mass[..., None, None]
    found = torch.stack([(w * xx).sum((-1, -2)), (w * yy).sum((-1, -2))], -1)
    err_px = (found - want).norm(dim=-1) * s
    assert err_px[inside].max() < 0.25, err_px[inside].max()
    # Had the image moved the other way round (inverse transform), the blobs would be far off.
    assert ((pts - aug["landmarks"][:, picks]).norm(dim=-1) * s).max() > 2.0


def test_warp_images_identity_and_photometric_leave_targets(codes):
    x = codes["image"][:4].float() / 255
    A, shift = similarity_matrix(torch.ones(4), torch.zeros(4), torch.zeros(4, 2))
    assert torch.allclose(warp_images(x, A, shift), x, atol=1e-5)
    sub = {k: v[:4] for k, v in codes.items()}
    aug = augment_batch(sub, torch.Generator().manual_seed(3), geometric=False)
    for key in ("rotation", "scale", "translation", "landmarks", "expression"):
        assert torch.equal(aug[key], sub[key]), key
    assert aug["image"].min() >= -1 and aug["image"].max() <= 1
    assert (aug["image"] - (x * 2 - 1)).abs().mean() > 0.01  # the colours did change


def _posed_dataset(codes, indices, copies, seed):
    """Fixed, strongly varied poses made from real crops: the same warp applied to image and targets."""
    rep = torch.tensor(indices).repeat(copies)
    base = {k: v[rep] for k, v in codes.items()}
    wide = AugmentSettings(scale=0.25, shift=0.12, rotate_deg=35)
    out = augment_batch(base, torch.Generator().manual_seed(seed), wide, photometric=False)
    out["image"] = ((out["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return out


def test_training_learns_pose_from_pixels_and_beats_the_constant_mean(subject, codes, one_thread):
    """A 24-frame clip barely moves, so its own held-out frames cannot tell an encoder from a constant. Here the
    poses vary strongly (known warps of real crops, targets moved alike) and the held-out *source frames* are
    never seen in training: the encoder must read pose off the pixels to beat the constant-mean predictor."""
    torch.manual_seed(0)
    n_train = len(subject.train_indices)
    train_idx, test_idx = list(range(n_train)), list(range(n_train, len(codes["image"])))
    train = _posed_dataset(codes, train_idx, 12, seed=1)
    test = _posed_dataset(codes, test_idx, 16, seed=2)
    net = EncoderNetConfig(size=64, width=16, stages=4, scale_ref=float(train["scale"].median()))
    module = EncoderModule(dataclasses.asdict(net), subject.face_model(), lr=3e-3, max_steps=150, warmup_steps=20,
                           seed=0)
    loader = DataLoader(EncoderFrames(train), batch_size=16, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=150, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    keep_native_signal_handlers(trainer)  # a bare Trainer's teardown would disarm MediaPipe's SIGPROF handler
    trainer.fit(module, train_dataloaders=loader)
    fm = subject.face_model()
    enc = code_errors(predict_relative(module.encoder, test["image"], torch.device("cpu")), test, fm, 64)
    const = code_errors(constant_mean(train, len(test["image"])), test, fm, 64)
    # Measured ratios (seeds 0, 1): rotation 0.17-0.19, translation 0.25-0.30, landmarks 0.26-0.31.
    for key in ("rotation_deg", "translation_px", "landmark_px"):
        assert enc[key].mean() < 0.5 * const[key].mean(), (key, enc[key].mean(), const[key].mean())
    # Expression does not vary in this clip: the encoder must not make it worse than its mean by much.
    assert enc["expression_mae"].mean() < const["expression_mae"].mean() + 0.03


def test_train_encoder_writes_a_loadable_folder(train_subject, tmp_path, one_thread):
    out = tmp_path / "enc"
    cfg = TrainEncoderConfig(subject=str(train_subject), out=str(out), size=32, width=8, max_steps=6, batch_size=8,
                             device="cpu", progress=False, max_minutes=None)
    res = train_encoder(cfg)
    assert res.steps == 6 and sorted(p.name for p in out.iterdir() if p.is_file()) == \
        ["config.json", "encoder.ckpt", "metrics.json"]
    ck = torch.load(out / "encoder.ckpt", map_location="cpu", weights_only=True)
    assert ck["format"] == "selfie_avatar.encoder" and len(ck["expression_names"]) == 52
    assert ck["network"]["size"] == 32 and ck["subject"] == str(train_subject.resolve())
    m = json.loads((out / "metrics.json").read_text())
    for pred in ("encoder", "constant_mean"):
        assert set(m["heldout"][pred]) == {"rotation_deg", "scale_pct", "translation_px", "expression_mae",
                                           "landmark_px"}
        assert all(math.isfinite(v) for v in m["heldout"][pred].values())
    assert m["heldout"]["tracker"]["landmark_px"] >= 0 and m["speed"]["encoder_frames_per_second"] > 0
    assert m["speed"]["tracker_frames_per_second"] > 0 and "held-out" in res.summary()
    with pytest.raises(FileExistsError, match="overwrite"):
        train_encoder(cfg)

    # load_encoder: codes in tracking.npz conventions, in pixels of whatever size goes in.
    loaded = load_encoder(out, "cpu")
    subject = Subject(train_subject)
    crops = torch.stack([torch.from_numpy(subject.frame(i)).permute(2, 0, 1) for i in subject.test_indices])
    x = crops.float() / 127.5 - 1
    p64 = loaded.predict(x)
    assert isinstance(p64, TorchCodes) and p64.translation.shape == (len(x), 2)
    rel = loaded.encoder.forward_relative(torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear",
                                                                          antialias=True, align_corners=False))
    assert torch.allclose(p64.translation, rel.translation * 64, atol=1e-4)
    assert torch.allclose(p64.scale, rel.scale * 64, rtol=1e-5)
    assert p64.expression.shape == (len(x), 52) and p64.rotation.shape == (len(x), 3, 3)
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        loaded.predict(x[:, :2])


def test_load_encoder_refuses_missing_garbage_and_foreign_files(tmp_path):
    with pytest.raises(SelfieAvatarError, match="does not exist"):
        load_encoder(tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(SelfieAvatarError, match=r"can read safely \(Unsupported"):
        load_encoder(garbage)
    foreign = tmp_path / "avatar.ckpt"
    torch.save({"state_dict": {"ema.w": torch.zeros(1)}, "hyper_parameters": {}}, foreign)
    with pytest.raises(SelfieAvatarError, match="not a selfie_avatar encoder checkpoint"):
        load_encoder(foreign)


def test_cli_train_encoder_help_and_bad_subject(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train-encoder", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--size", "--max-steps", "--max-minutes", "--batch-size", "--lr", "--device"):
        assert flag in text
    args = build_parser().parse_args(["train-encoder", "subj", "--out", "o", "--size", "96", "--max-minutes", "1.5",
                                      "--no-augment", "--batch-size", "8"])
    cfg = config_from_args(TrainEncoderConfig, args)
    assert (cfg.subject, cfg.out, cfg.size, cfg.max_minutes, cfg.augment, cfg.batch_size, cfg.width) == \
        ("subj", "o", 96, 1.5, False, 8, 32)
    assert main(["train-encoder", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not a subject folder" in capsys.readouterr().err
