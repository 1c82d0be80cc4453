"""FLAME tracking: Jacobians, recovery of known codes on synthetic sequences, and prepare --face-model flame."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from selfie_avatar.config import PrepareConfig
from selfie_avatar.errors import AssetMissingError
from selfie_avatar.face_model import FLAME, FlameFaceModel, LandmarkEmbedding
from selfie_avatar.face_model.landmark_embedding import IBUG68, IBUG68_TO_MEDIAPIPE, MEDIAPIPE
from selfie_avatar.prepare.flame_fit import _Frames, fit_flame_tracking
from selfie_avatar.prepare.flame_landmarks import FlameLandmarks, rotation_derivative
from selfie_avatar.prepare.flame_setup import ENV_FLAME, resolve_flame_files
from selfie_avatar.prepare.least_squares import autodiff_jacobians
from selfie_avatar.tracking.status import INTERPOLATED, MISSING
from selfie_avatar.render.camera import project
from selfie_avatar.geometry.rotation import axis_angle_to_matrix
from tests.flame_factory import (identity_mediapipe_embedding, mediapipe_flame_arrays, synthetic_flame_arrays,
                                 synthetic_mediapipe_embedding, write_flame_pickle)

NUM_SHAPE, NUM_EXPR = 20, 10


@pytest.fixture(scope="module")
def flame_assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("flame")
    arrays = synthetic_flame_arrays()
    path = write_flame_pickle(d / "generic_model.pkl", arrays)
    e = synthetic_mediapipe_embedding(arrays)
    np.savez(d / "mediapipe_landmark_embedding.npz", **e)
    emb = LandmarkEmbedding(e["lmk_face_idx"], e["lmk_b_coords"], e["landmark_indices"], MEDIAPIPE)
    return path, arrays, emb


def _angle_deg(Ra, Rb):
    c = (np.trace(np.swapaxes(Ra, -1, -2) @ Rb, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def _sequence(flame, emb, N=40, noise=0.3, seed=0):
    """MediaPipe-like landmarks (crop pixels) of the synthetic FLAME with known identity, codes and pose."""
    rng = np.random.default_rng(seed)
    shape = torch.tensor(rng.normal(0, 1, NUM_SHAPE), dtype=torch.float32)
    expr = rng.normal(0, 1, (N, NUM_EXPR))
    jaw = np.c_[rng.uniform(0, 0.3, N), rng.normal(0, 0.03, (N, 2))]
    code = torch.tensor(np.c_[expr, jaw], dtype=torch.float32)
    truth = FlameFaceModel.from_flame(flame, emb, shape, NUM_EXPR)
    R = Rotation.from_euler("yxz", np.c_[rng.normal(0, 15, N), rng.normal(0, 10, N), rng.normal(0, 5, N)],
                            degrees=True).as_matrix()
    s, t = rng.uniform(700, 800, N), np.c_[rng.normal(128, 5, N), rng.normal(128, 5, N)]
    with torch.no_grad():
        Y = project(truth.landmarks(truth(code)), torch.tensor(R, dtype=torch.float32),
                    torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)).numpy()
    Y[..., :2] += rng.normal(0, noise, Y[..., :2].shape)
    return Y, code.numpy(), R, shape.numpy()


def _mediapipe_array(Y: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(N, 478, 3) MediaPipe-shaped landmarks holding Y at each landmark's MediaPipe index (both of a pair)."""
    lm = np.repeat(Y.mean(1, keepdims=True), 478, axis=1).astype(np.float32)
    lm[:, pairs[:, 0]] = Y
    lm[:, pairs[:, 1]] = Y
    return lm


def test_landmark_values_and_jacobians_match_autodiff(flame_assets):
    path, _, emb = flame_assets
    flame = FLAME.from_file(path, NUM_SHAPE, NUM_EXPR)
    m = FlameLandmarks(flame, emb, NUM_EXPR)
    shape, expr, jaw = torch.randn(1, NUM_SHAPE), torch.randn(4, NUM_EXPR), torch.randn(4, 3) * 0.3
    full = FlameFaceModel.from_flame(flame, emb, shape, NUM_EXPR)
    assert torch.allclose(m(shape, expr, jaw), full.landmarks(full(torch.cat([expr, jaw], 1))), atol=1e-6)
    w = torch.randn(5, 3)
    w[0] = 0
    dR = rotation_derivative(w)
    ref = torch.func.vmap(lambda e: torch.func.jvp(axis_angle_to_matrix, (w,), (e.expand(5, 3),))[1])(torch.eye(3))
    assert torch.allclose(dR, ref, atol=1e-5)
    B = 4
    fr = _Frames(m, torch.randn(B, len(emb), 2) * 50 + 128, torch.rand(B, len(emb)), torch.full((B,), 140.0),
                 axis_angle_to_matrix(torch.randn(B, 3) * 0.3), torch.full((B,), 750.0), torch.full((B, 2), 128.0),
                 1e-3, 2e-3)
    theta = torch.zeros(B, fr.num_params)
    theta[:, :NUM_EXPR + 3] = torch.cat([expr, jaw], 1)
    for shared in (shape[0], torch.zeros(0)):
        fr.fixed_shape = shape[0]
        Ja, Sa = fr.jacobian(theta, shared)
        Jb, Sb = autodiff_jacobians(fr.residual, theta, shared)
        assert torch.allclose(Ja, Jb, atol=1e-6) and torch.allclose(Sa, Sb, atol=1e-6)


def test_fit_recovers_known_pose_identity_and_codes(flame_assets):
    path, _, emb = flame_assets
    flame = FLAME.from_file(path, NUM_SHAPE, NUM_EXPR)
    Y, code, R, shape = _sequence(flame, emb)
    lm = _mediapipe_array(Y, emb.mediapipe_pairs)
    res = fit_flame_tracking(lm, np.zeros(len(Y), np.int8), flame, emb, num_expression=NUM_EXPR, shape_weight=1e-7,
                             expression_weight=1e-7, jaw_weight=1e-7, keyframes=16, chunk=16)
    err = _angle_deg(R, res.codes.rotation)
    expr_err = np.abs(res.codes.expression[:, :NUM_EXPR] - code[:, :NUM_EXPR]).mean()
    jaw_err = np.degrees(np.abs(res.codes.expression[:, NUM_EXPR:] - code[:, NUM_EXPR:]).mean())
    print(f"FLAME fit recovery: pose {err.mean():.2f} deg mean, {err.max():.2f} max; landmarks "
          f"{res.landmark_error_px:.3f} px (noise 0.3 px per axis); expression |err| {expr_err:.3f}; "
          f"jaw {jaw_err:.2f} deg")
    # Measured: pose 0.40 deg mean, 1.12 max; landmarks 0.344 px; expression 0.051; jaw 0.21 deg.
    assert err.mean() < 1.0 and err.max() < 3.0
    assert res.landmark_error_px < 0.45
    assert expr_err < 0.15 and jaw_err < 0.6
    assert np.abs(res.model.identity_shape.numpy() - shape).mean() < 0.05
    assert isinstance(res.model, FlameFaceModel) and res.codes.expression.shape == (len(Y), NUM_EXPR + 3)
    assert res.model.num_expression == NUM_EXPR + 3 and np.allclose(np.linalg.det(res.codes.rotation), 1, atol=1e-5)


def test_fit_with_a_68_point_embedding_and_gaps(flame_assets):
    path, arrays, _ = flame_assets
    flame = FLAME.from_file(path, NUM_SHAPE, NUM_EXPR)
    e = synthetic_mediapipe_embedding(arrays, num=51, seed=4)
    emb = LandmarkEmbedding(e["lmk_face_idx"], e["lmk_b_coords"], np.arange(17, 68), IBUG68)
    assert np.array_equal(emb.mediapipe_pairs, IBUG68_TO_MEDIAPIPE[17:])
    Y, code, R, _ = _sequence(flame, emb, N=24, noise=0.2, seed=1)
    lm = _mediapipe_array(Y, emb.mediapipe_pairs)
    status = np.zeros(24, np.int8)
    status[[5, 6]] = MISSING
    status[12] = INTERPOLATED
    lm[[5, 6]] = np.nan
    res = fit_flame_tracking(lm, status, flame, emb, num_expression=NUM_EXPR, shape_weight=1e-7,
                             expression_weight=1e-7, jaw_weight=1e-7, keyframes=8, chunk=10, smooth_sigma=0)
    ok = status != MISSING
    assert _angle_deg(R[ok], res.codes.rotation[ok]).mean() < 1.5 and res.landmark_error_px < 0.5
    assert np.isnan(res.error_px[[5, 6, 12]]).all() and (res.confidence[[5, 6]] == 0).all()
    assert 0 < res.confidence[12] <= 0.5
    assert np.allclose(res.codes.rotation[5], np.eye(3)) and not res.codes.expression[5].any()
    with pytest.raises(ValueError, match="at least 2"):
        fit_flame_tracking(lm[:2], np.array([0, MISSING], np.int8), flame, emb, num_expression=NUM_EXPR)


def test_missing_flame_file_says_where_to_get_it(tmp_path, monkeypatch, sample_clip):
    from selfie_avatar.prepare.pipeline import prepare

    monkeypatch.delenv(ENV_FLAME, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("selfie_avatar.assets.registry.default_install_dir", lambda: tmp_path / "none")
    with pytest.raises(AssetMissingError) as e:
        resolve_flame_files()
    assert "https://flame.is.tue.mpg.de" in str(e.value) and "--face-model blendshape" in str(e.value)
    lone = tmp_path / "lone" / "flame2023.pkl"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    monkeypatch.setenv(ENV_FLAME, str(lone))
    with pytest.raises(AssetMissingError, match="mediapipe_landmark_embedding.npz") as e:
        resolve_flame_files()  # the model is there, its embedding is not
    assert "--face-model blendshape" in str(e.value)
    (tmp_path / "emb.npz").write_bytes(b"x")
    assert resolve_flame_files(landmark_embedding=str(tmp_path / "emb.npz")) == (lone, tmp_path / "emb.npz")
    # Beside the model: MediaPipe's embedding first, or the 68-point one first for face-alignment's points.
    for name in ("mediapipe_landmark_embedding.npz", "landmark_embedding.npy"):
        (lone.parent / name).write_bytes(b"x")
    assert resolve_flame_files()[1].name == "mediapipe_landmark_embedding.npz"
    assert resolve_flame_files(prefer_ibug68=True)[1].name == "landmark_embedding.npy"
    cfg = PrepareConfig(video=str(sample_clip), out=str(tmp_path / "subj"), face_model="flame",
                        flame=str(tmp_path / "nope.pkl"), device="cpu")
    with pytest.raises(AssetMissingError, match="nope.pkl"):
        prepare(cfg, progress=False)  # stops before the landmark pass
    assert not (tmp_path / "subj").exists()


def test_prepare_with_flame_end_to_end(sample_clip, tmp_path, monkeypatch):
    """prepare --face-model flame on the sample clip, with a FLAME-format model built on MediaPipe's mesh: the
    fit must be as tight as the landmarks allow and the head turn must be tracked, so axes and scales are right."""
    from selfie_avatar.cli import build_parser
    from selfie_avatar.config import config_from_args
    from selfie_avatar.prepare.pipeline import prepare
    from selfie_avatar.tracking.subject import Subject
    from selfie_avatar.prepare.track_clip import track_clip

    first = track_clip(PrepareConfig(video=str(sample_clip), out="-", size=64, max_frames=2), progress=False)
    arrays = mediapipe_flame_arrays(first.landmarks_crop[0, :468].astype(np.float64),
                                    first.sequence.rotation[0].astype(np.float64))
    flame_dir = tmp_path / "FLAME2020"
    flame_dir.mkdir()
    path = write_flame_pickle(flame_dir / "generic_model.pkl", arrays)
    np.savez(flame_dir / "mediapipe_landmark_embedding.npz", **identity_mediapipe_embedding(arrays["f"]))
    out = tmp_path / "subj"
    args = build_parser().parse_args(["prepare", str(sample_clip), "--out", str(out), "--face-model", "flame",
                                      "--size", "64", "--max-frames", "8", "--device", "cpu", "--flame-expression",
                                      "20", "--no-write-video"])
    cfg = config_from_args(PrepareConfig, args)
    monkeypatch.setenv(ENV_FLAME, str(path))  # and the embedding is found beside the FLAME file
    assert cfg.flame is None and cfg.face_model == "flame"
    result = prepare(cfg, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    fm = meta["face_model"]
    assert fm["kind"] == "flame" and fm["num_expression"] == 23 and fm["expression_names"][-1] == "jaw_z"
    assert fm["topology"] == "FLAME head mesh" and fm["num_vertices"] == 468 and meta["config"]["face_model"] == "flame"
    print(f"FLAME prepare (8 frames, 64 px): landmark error {result.landmark_error_px:.2f} px "
          f"= {100 * result.landmark_error_rel:.2f}% of face size")
    assert meta["landmark_error_rel"] < 0.02  # measured 0.22% (60 frames at 128 px: 0.65%; default model 0.18%)
    s = Subject(out)
    assert isinstance(s.face_model(), FlameFaceModel) and s.tracking["expression"].shape == (8, 23)
    cover = s.uv(0)[..., 2] > 0.5
    assert 0.05 < cover.mean() < 0.6 and s.render(0)[cover].mean() > 40
