"""The tracking floor: one head-code form with a torch view, and one codes-to-pixels path that reproduces the subject
folder prepare wrote with it."""

import numpy as np
import torch

from selfie_avatar.render import MeshRenderer, project
from selfie_avatar.tracking import Subject
from selfie_avatar.tracking.pose import posed_landmarks, posed_vertices, render_codes
from selfie_avatar.tracking.status import MISSING


def test_codes_torch_view_matches_the_arrays(train_subject):
    s = Subject(train_subject)
    codes = s.codes([0, 3])
    t = codes.torch()
    assert t.rotation.shape == (2, 3, 3) and t.scale.shape == (2,) and t.translation.shape == (2, 2)
    assert np.array_equal(t.expression.numpy(), codes.expression)


def test_posed_vertices_are_the_model_posed_by_the_camera(train_subject):
    s = Subject(train_subject)
    model, codes = s.face_model(), s.codes([1])
    t = codes.torch()
    want = project(model(t.expression), t.rotation, t.scale, t.translation)
    assert torch.allclose(posed_vertices(model, t), want)
    lmk = posed_landmarks(model, t, 10)
    assert lmk.shape == (1, 10, 2)


def test_landmarks_are_differentiable_in_the_codes(train_subject):
    s = Subject(train_subject)
    t = s.codes([1]).torch()
    t.expression.requires_grad_(True)
    posed_landmarks(s.face_model(), t).sum().backward()
    assert t.expression.grad is not None and t.expression.grad.abs().sum() > 0


def test_render_codes_reproduces_the_subject_folders_i_r(train_subject):
    """prepare wrote render/NNNNNN.png through this same path: rendering the tracked codes again gives them back."""
    s = Subject(train_subject)
    frames = [i for i in range(len(s)) if s.tracking["status"][i] != MISSING][:3]
    model = s.face_model()
    renderer = MeshRenderer((s.size, s.size), model.faces, model.uv)
    out = render_codes(renderer, model, s.codes(frames))
    mine = out["render"].permute(0, 2, 3, 1).mul(255).round().clamp(0, 255).byte().numpy()
    for k, i in enumerate(frames):
        stored = s.render(i)
        assert np.abs(mine[k].astype(int) - stored.astype(int)).max() <= 1, i
