"""FLAME: loading FLAME's own file format, the forward pass, the subject model, landmark embeddings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from selfie_avatar.face_model import (FLAME, FlameFaceModel, LandmarkEmbedding, load_face_model, load_flame_arrays,
                                      load_landmark_embedding, save_face_model, uv_from_texture_space)
from selfie_avatar.face_model.landmark_embedding import IBUG68, IBUG68_TO_MEDIAPIPE, MEDIAPIPE
from tests.flame_factory import (Py2Pickler, synthetic_flame_arrays, synthetic_mediapipe_embedding,
                                 write_flame_pickle)


@pytest.fixture(scope="module")
def flame_file(tmp_path_factory):
    arrays = synthetic_flame_arrays()
    return write_flame_pickle(tmp_path_factory.mktemp("flame") / "generic_model.pkl", arrays), arrays


@pytest.fixture(scope="module")
def embedding(flame_file):
    e = synthetic_mediapipe_embedding(flame_file[1])
    return LandmarkEmbedding(e["lmk_face_idx"], e["lmk_b_coords"], e["landmark_indices"], MEDIAPIPE)


def _reference_lbs(a: dict, shape, expr, pose) -> np.ndarray:
    """Textbook FLAME in numpy, one joint and one vertex at a time (scipy's rotations)."""
    S = shape.shape[0]
    dirs = a["shapedirs"]
    v = a["v_template"] + dirs[:, :, :S] @ shape + dirs[:, :, 300:300 + len(expr)] @ expr
    J = a["J_regressor"] @ v
    R = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
    feat = (R[1:] - np.eye(3)).ravel()
    v = v + a["posedirs"] @ feat
    parents = [-1, 0, 1, 1, 1]
    G = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = J[j] - (J[parents[j]] if j else 0)
        G.append(local if j == 0 else G[parents[j]] @ local)
    out = np.zeros_like(v)
    for i in range(len(v)):
        T = sum(a["weights"][i, j] * (G[j] @ np.r_[np.c_[np.eye(3), -J[j]], [[0, 0, 0, 1]]]) for j in range(5))
        out[i] = (T @ np.r_[v[i], 1])[:3]
    return out


def test_flame_file_loads_as_plain_arrays(flame_file, tmp_path):
    path, a = flame_file
    got = load_flame_arrays(path)
    assert np.allclose(got["v_template"], a["v_template"]) and got["faces"].dtype == np.int64
    assert got["shapedirs"].shape[2] == 300 and got["exprdirs"].shape[2] == 100  # FLAME 2020/2023 split
    assert np.allclose(got["J_regressor"], a["J_regressor"]) and got["parents"].tolist() == [-1, 0, 1, 1, 1]
    # FLAME 2023 style: posedirs flattened, J_regressor under scipy's newer module name, numpy 2 names.
    b = dict(a, posedirs=a["posedirs"].reshape(-1, 36))
    p2 = write_flame_pickle(tmp_path / "flame2023.pkl", b, "scipy.sparse._csc", "numpy._core.multiarray")
    assert np.allclose(load_flame_arrays(p2)["posedirs"], a["posedirs"])
    bad = {k: v for k, v in a.items() if k != "weights"}
    with pytest.raises(ValueError, match="weights"):
        load_flame_arrays(write_flame_pickle(tmp_path / "bad.pkl", bad))


def test_rest_pose_reproduces_the_template(flame_file):
    path, a = flame_file
    flame = FLAME.from_file(path, num_shape=10, num_expression=10)
    assert torch.allclose(flame()[0], torch.as_tensor(a["v_template"], dtype=torch.float32), atol=1e-6)
    shape = torch.randn(1, 10)
    shaped = a["v_template"] + a["shapedirs"][:, :, :10] @ shape[0].numpy()
    assert np.allclose(flame(shape=shape)[0].numpy(), shaped, atol=1e-6)


def test_jaw_rotation_moves_only_jaw_weighted_vertices(flame_file):
    path, a = flame_file
    flame = FLAME.from_file(path, num_shape=10, num_expression=10)
    rest = flame()[0]
    opened = flame(jaw_pose=torch.tensor([[0.3, 0.05, 0.0]]))[0]
    moved = (opened - rest).norm(dim=1) > 1e-7
    jaw = torch.as_tensor(a["weights"][:, 2] > 0)
    assert moved.sum() > 10 and torch.equal(moved, jaw)
    # it opens downwards (FLAME's y is up): the jaw's lowest points go lower
    assert opened[jaw, 1].min() < rest[jaw, 1].min()


def test_full_forward_matches_a_reference_implementation(flame_file):
    path, a = flame_file
    flame = FLAME.from_file(path, num_shape=8, num_expression=6)
    rng = np.random.default_rng(3)
    shape, expr, pose = rng.normal(size=8), rng.normal(size=6), rng.normal(0, 0.3, 15)
    t = lambda x: torch.as_tensor(x[None], dtype=torch.float32)  # noqa: E731
    got = flame(t(shape), t(expr), t(pose[:3]), t(pose[3:6]), t(pose[6:9]), t(pose[9:]))[0].numpy()
    assert np.allclose(got, _reference_lbs(a, shape, expr, pose), atol=2e-6)
    ids = torch.tensor([5, 0, 77, 161])
    part = flame(t(shape), t(expr), t(pose[:3]), t(pose[3:6]), t(pose[6:9]), t(pose[9:]), vertex_ids=ids)[0]
    assert np.allclose(part.numpy(), got[ids.numpy()], atol=1e-6)
    with pytest.raises(ValueError, match="expression must be"):
        flame(expression=torch.zeros(1, 7))


def test_subject_model_codes_axes_landmarks_and_round_trip(flame_file, embedding, tmp_path):
    path, a = flame_file
    flame = FLAME.from_file(path, num_shape=10, num_expression=20)
    shape = torch.randn(10)
    model = FlameFaceModel.from_flame(flame, embedding, shape, num_expression=12)
    names = model.expression_names
    assert names[:2] == ["exp_0", "exp_1"] and names[-3:] == ["jaw_x", "jaw_y", "jaw_z"]
    assert model.num_expression == 15 and model.num_identity == 0
    code = torch.randn(3, 15) * 0.5
    verts = model(code)
    expected = flame(shape.expand(3, -1), torch.cat([code[:, :12], torch.zeros(3, 8)], 1), jaw_pose=code[:, 12:])
    # model axes: y down, z away (FLAME: y up, z towards the camera)
    assert torch.allclose(verts, expected * torch.tensor([1.0, -1.0, -1.0]), atol=1e-6)
    assert torch.allclose(model.template, model(model.neutral_expression())[0], atol=1e-6)
    lm = model.landmarks(verts)
    f = model.faces[torch.as_tensor(embedding.face_idx)]
    manual = (verts[:, f] * torch.as_tensor(embedding.bary)[None, :, :, None]).sum(2)
    assert lm.shape == (3, len(embedding), 3) and torch.allclose(lm, manual, atol=1e-6)
    assert model.uv.min() >= 0 and model.uv.max() <= 1 and model.uv.shape == (model.num_vertices, 2)
    save_face_model(model, tmp_path / "face_model.npz")
    with np.load(tmp_path / "face_model.npz", allow_pickle=False) as z:
        assert str(z["kind"]) == "flame"
    back = load_face_model(tmp_path / "face_model.npz")
    assert isinstance(back, FlameFaceModel) and back.expression_names == model.expression_names
    assert torch.allclose(back(code), verts, atol=1e-6) and torch.allclose(back.landmarks(verts), lm)
    assert torch.allclose(back.identity_shape, shape) and torch.equal(back.uv, model.uv)
    with pytest.raises(ValueError, match=r"\(B, 15\)"):
        model(torch.zeros(1, 12))


def test_landmark_embedding_formats(flame_file, tmp_path):
    _, a = flame_file
    e = synthetic_mediapipe_embedding(a)
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", **e)
    mp = load_landmark_embedding(tmp_path / "mediapipe_landmark_embedding.npz")
    assert mp.scheme == MEDIAPIPE and np.array_equal(mp.source_index, e["landmark_indices"]) and len(mp) == 60
    # FLAME's static embedding: a Python-2 pickle, 51 iBUG points (17..67)
    faces51, bary51 = np.arange(51) * 3, np.full((51, 3), 1 / 3)
    with open(tmp_path / "flame_static_embedding.pkl", "wb") as f:
        Py2Pickler(f).dump({"lmk_face_idx": faces51.astype(np.uint32), "lmk_b_coords": bary51})
    st = load_landmark_embedding(tmp_path / "flame_static_embedding.pkl")
    assert st.scheme == IBUG68 and st.source_index.tolist() == list(range(17, 68))
    assert np.array_equal(st.face_idx, faces51)
    # DECA: np.save of a dict with static (51) and full (68) tables, dynamic ones as torch tensors
    deca = {"static_lmk_faces_idx": faces51, "static_lmk_bary_coords": bary51,
            "full_lmk_faces_idx": np.arange(68)[None], "full_lmk_bary_coords": np.full((1, 68, 3), 1 / 3),
            "dynamic_lmk_faces_idx": torch.zeros(79, 17, dtype=torch.long),
            "dynamic_lmk_bary_coords": torch.zeros(79, 17, 3)}
    np.save(tmp_path / "landmark_embedding.npy", deca, allow_pickle=True)
    full = load_landmark_embedding(tmp_path / "landmark_embedding.npy")
    assert full.scheme == IBUG68 and len(full) == 68 and full.source_index.tolist() == list(range(68))
    static = load_landmark_embedding(tmp_path / "landmark_embedding.npy", contour=False)
    assert len(static) == 51 and static.source_index[0] == 17
    # 68-point landmarks are measured on MediaPipe's 478 through the documented table (pairs averaged)
    mp_points = np.random.default_rng(0).normal(size=(2, 478, 3))
    tgt = full.targets_from_mediapipe(mp_points)
    k = 28  # iBUG 28 (nose bridge) lies between MediaPipe 197 and 195
    assert tuple(IBUG68_TO_MEDIAPIPE[k]) == (197, 195)
    assert np.allclose(tgt[:, k], (mp_points[:, 197] + mp_points[:, 195]) / 2)
    assert np.allclose(tgt[:, 30], mp_points[:, 4])  # nose tip
    with pytest.raises(ValueError, match="triangle indices"):
        LandmarkEmbedding([0, 999], np.full((2, 3), 1 / 3), [1, 2], MEDIAPIPE).check_mesh(320)


def test_texture_space_uv(flame_file, tmp_path):
    _, a = flame_file
    faces = a["f"].astype(np.int64)
    vt = np.random.default_rng(0).random((len(a["v_template"]), 2))
    np.savez(tmp_path / "FLAME_texture.npz", vt=vt, ft=faces)
    uv = uv_from_texture_space(tmp_path / "FLAME_texture.npz", faces, len(a["v_template"]))
    assert np.allclose(uv[:, 0], vt[:, 0], atol=1e-6) and np.allclose(uv[:, 1], 1 - vt[:, 1], atol=1e-6)


FLAME_PATH = os.environ.get("SELFIE_AVATAR_FLAME")


@pytest.mark.skipif(not (FLAME_PATH and os.path.isfile(FLAME_PATH)),
                    reason="set SELFIE_AVATAR_FLAME to a FLAME 2020/2023 file (generic_model.pkl / flame2023.pkl)")
def test_real_flame_file():
    a = load_flame_arrays(FLAME_PATH)
    assert a["v_template"].shape == (5023, 3) and a["faces"].shape == (9976, 3)
    assert a["shapedirs"].shape[2] == 300 and a["exprdirs"].shape[2] >= 50 and a["parents"].tolist() == [-1, 0, 1, 1, 1]
    flame = FLAME.from_arrays(a, 100, 50)
    assert torch.allclose(flame()[0], torch.as_tensor(a["v_template"], dtype=torch.float32), atol=1e-6)
    opened = flame(jaw_pose=torch.tensor([[0.3, 0.0, 0.0]]))[0]
    moved = (opened - flame()[0]).norm(dim=1)
    assert 0.005 < float(moved.max()) < 0.1  # metres: the chin drops by centimetres
    for name in ("mediapipe_landmark_embedding.npz", "landmark_embedding.npy", "flame_static_embedding.pkl"):
        emb_path = os.path.join(os.path.dirname(FLAME_PATH), name)
        if os.path.isfile(emb_path):
            model = FlameFaceModel.from_flame(flame, load_landmark_embedding(emb_path), num_expression=50)
            lm = model.landmarks(model(model.neutral_expression()))
            assert torch.isfinite(lm).all()
