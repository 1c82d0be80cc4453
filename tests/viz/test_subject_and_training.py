"""Per-frame pictures and the 3D mesh of a prepared subject; a run's panels and an avatar's learned maps."""

import numpy as np
import pytest
import torch

from selfie_avatar.io.image import write_image
from selfie_avatar.models import AvatarGenerator, ModelConfig
from selfie_avatar.prepare import Subject
from selfie_avatar.training.checkpoint import LoadedAvatar
from selfie_avatar.viz.subject import frame_panels, pick_frames, subject_mesh
from selfie_avatar.viz.training import avatar_frames, avatar_maps, run_panels


def test_frame_panels_and_pick_frames(train_subject):
    subject = Subject(train_subject)
    picks = pick_frames(subject, 3)
    assert len(picks) == 3 and set(picks) <= set(subject.train_indices) and picks == sorted(picks)
    panels = frame_panels(subject, picks[0])
    assert list(panels)[0] == "frame" and "matte" in panels and "background plate" in panels
    assert all(p.shape == (subject.size, subject.size, 3) and p.dtype == np.uint8 for p in panels.values())
    with pytest.raises(IndexError, match="outside"):
        frame_panels(subject, len(subject))


def test_subject_mesh_lines_up_with_the_landmarks(train_subject):
    subject = Subject(train_subject)
    i = subject.train_indices[0]
    verts, faces = subject_mesh(subject, i)
    model = subject.face_model()
    assert verts.shape == (model.num_vertices, 3) and faces.shape[1] == 3 and faces.max() < len(verts)
    landmarks = subject.tracking["landmarks"][i, : len(verts), :2]
    err = np.linalg.norm(verts[:, :2] - landmarks, axis=1).mean()
    assert err < 0.05 * subject.size, err  # the posed mesh sits on the detected landmarks, in crop pixels
    neutral, _ = subject_mesh(subject, i, posed=False)
    assert not np.allclose(neutral, verts)


def test_run_panels_reads_the_latest_in_step_order(tmp_path):
    (tmp_path / "images").mkdir()
    for step in (12, 6, 100):
        write_image(tmp_path / "images" / f"val_{step:07d}.png", np.full((4, 10, 3), step, np.uint8))
    write_image(tmp_path / "images" / "train_0000006.png", np.zeros((4, 10, 3), np.uint8))
    got = run_panels(tmp_path, "val", last=2)
    assert [s for s, _ in got] == [12, 100] and got[1][1][0, 0, 0] == 100
    assert len(run_panels(tmp_path, "val", last=None)) == 3 and run_panels(tmp_path, "train", last=0) == []
    with pytest.raises(FileNotFoundError):
        run_panels(tmp_path / "absent")


def _untrained_avatar() -> LoadedAvatar:
    cfg = ModelConfig.preset("tiny", reference_frames=0)
    gen = AvatarGenerator(cfg).eval()
    cache = gen.compute_cache()
    plate = torch.zeros(1, 3, cfg.size, cfg.size)
    return LoadedAvatar(cfg, gen.image_generator, cache["face_texture"], cache["bg_canvas"], 0, {}, None, plate)


def test_avatar_maps_and_frames(train_subject):
    avatar = _untrained_avatar()
    maps = avatar_maps(avatar)
    assert list(maps) == ["face texture (RGB view)", "face texture (features 3-5)", "background canvas (RGB view)"]
    assert maps["face texture (RGB view)"].shape == (64, 64, 3)
    assert maps["background canvas (RGB view)"].shape[0] == avatar.config.bg_canvas_size
    subject = Subject(train_subject)
    idx = subject.test_indices[:2]
    shown = avatar_frames(avatar, subject, idx)
    assert len(shown["real"]) == len(shown["generated"]) == len(idx)
    assert shown["generated"][0].shape == (64, 64, 3) and not np.array_equal(shown["real"][0], shown["generated"][0])
    assert torch.is_tensor(avatar.face_texture)
    with pytest.raises(ValueError, match="at least one"):
        avatar_frames(avatar, subject, [])
