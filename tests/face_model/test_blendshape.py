import numpy as np
import pytest
import torch

from selfie_avatar.face_model import (BLENDSHAPE_GROUPS, BLENDSHAPE_NAMES, BlendshapeFaceModel, load_face_model,
                                      mediapipe_triangles, save_face_model)
from selfie_avatar.face_model.blendshape import _rigid_projector
from selfie_avatar.face_model.uv import frontal_uv


def test_triangles_cover_the_mesh():
    tri = mediapipe_triangles()
    assert tri.shape == (852, 3)
    assert set(np.unique(tri)) == set(range(468))
    assert len({tuple(sorted(t)) for t in tri.tolist()}) == len(tri)


def test_groups_partition_the_names():
    grouped = [n for g in BLENDSHAPE_GROUPS.values() for n in g]
    assert sorted(grouped) == sorted(n for n in BLENDSHAPE_NAMES if n != "_neutral")


def _rigid_free(neutral, fields):
    """Remove from displacement fields (K, V, 3) any similarity motion of ``neutral`` (the fit does the same)."""
    P = _rigid_projector(neutral, None)
    flat = fields.reshape(len(fields), -1)
    return (flat - flat @ P.T).reshape(fields.shape)


def _random_rig(rng, V=60, F=400, K=0):
    neutral = rng.normal(0, 10, (V, 3))
    basis = _rigid_free(neutral, rng.normal(0, 2, (52, V, 3)))
    scores = rng.uniform(0, 1, (F, 52))
    return neutral, basis, scores


def test_fit_recovers_a_linear_rig_without_rigid_parts():
    rng = np.random.default_rng(1)
    neutral, basis, scores = _random_rig(rng)
    pts = neutral + np.einsum("fk,kvc->fvc", scores, basis)
    tri = np.array([[0, 1, 2]])
    model, coeffs = BlendshapeFaceModel.fit(pts, scores, tri, ridge=1e-6, num_pca=0)
    assert np.abs(model.basis.numpy() - basis).max() < 1e-2
    assert np.abs(model.template.numpy() - neutral).max() < 1e-2
    assert coeffs.shape == (len(scores), 0)
    pred = model(torch.from_numpy(scores).float()).numpy()
    assert np.abs(pred - pts).max() < 1e-2


def test_basis_holds_no_rigid_motion():
    rng = np.random.default_rng(2)
    neutral, _, scores = _random_rig(rng)
    basis = rng.normal(0, 2, (52,) + neutral.shape)  # with rigid parts in it
    pts = neutral + np.einsum("fk,kvc->fvc", scores, basis)
    model, _ = BlendshapeFaceModel.fit(pts, scores, np.array([[0, 1, 2]]), ridge=1e-3, num_pca=0)
    P = _rigid_projector(model.template.numpy().astype(np.float64), None)
    b = model.basis.numpy().reshape(52, -1).astype(np.float64)
    assert np.linalg.norm(b @ P.T) < 1e-3 * np.linalg.norm(b)


def test_pca_captures_what_scores_miss():
    rng = np.random.default_rng(3)
    # Many frames: the hidden motion acts as noise on the score regression, whose error falls as 1/sqrt(F).
    neutral, basis, scores = _random_rig(rng, F=4000)
    hidden = rng.normal(0, 1, (len(scores), 2))
    dirs = _rigid_free(neutral, rng.normal(0, 3, (2,) + neutral.shape))
    pts = neutral + np.einsum("fk,kvc->fvc", scores, basis) + np.einsum("fk,kvc->fvc", hidden, dirs)
    tri = np.array([[0, 1, 2]])
    m0, _ = BlendshapeFaceModel.fit(pts, scores, tri, ridge=1e-6, num_pca=0)
    m2, c2 = BlendshapeFaceModel.fit(pts, scores, tri, ridge=1e-6, num_pca=2)
    e0 = np.abs(m0(torch.from_numpy(scores).float()).numpy() - pts).mean()
    codes = torch.from_numpy(np.concatenate([scores, c2], 1)).float()
    e2 = np.abs(m2(codes).numpy() - pts).mean()
    assert m2.expression_names[-2:] == ["pca_0", "pca_1"]
    assert e2 < 0.1 * e0


def test_wrong_code_shape_is_refused():
    rng = np.random.default_rng(4)
    neutral, basis, _ = _random_rig(rng, F=10)
    m = BlendshapeFaceModel(neutral, basis, np.array([[0, 1, 2]]), frontal_uv(neutral))
    with pytest.raises(ValueError, match=r"\(B, 52\)"):
        m(torch.zeros(1, 51))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    neutral, basis, scores = _random_rig(rng, F=80)
    pts = neutral + np.einsum("fk,kvc->fvc", scores, basis) + rng.normal(0, 0.5, (80,) + neutral.shape)
    model, coeffs = BlendshapeFaceModel.fit(pts, scores, np.array([[0, 1, 2]]), num_pca=3)
    save_face_model(model, tmp_path / "fm.npz")
    back = load_face_model(tmp_path / "fm.npz")
    codes = torch.from_numpy(np.concatenate([scores, coeffs], 1)).float()
    assert torch.allclose(model(codes), back(codes))
    assert back.expression_names == model.expression_names


def test_frontal_uv_is_square_and_inside():
    pts = np.array([[0, 0, 0], [10, 0, 1], [10, 5, 0], [0, 5, 3]], float)
    uv = frontal_uv(pts)
    assert uv.min() >= 0 and uv.max() <= 1
    # aspect ratio kept: the u span is twice the v span
    span = uv.max(0) - uv.min(0)
    assert span[0] == pytest.approx(2 * span[1], rel=1e-5)
