"""Synthetic FLAME files for tests, written in FLAME's own pickle format (no chumpy needed).

FLAME's ``generic_model.pkl`` is a Python-2 protocol-2 pickle of a dict whose ``shapedirs``/``v_template`` are
``chumpy.ch.Ch`` objects (the array under ``'x'`` in their state), whose ``J_regressor`` is a
``scipy.sparse.csc.csc_matrix`` and whose other entries are numpy arrays. :class:`Py2Pickler` writes exactly that
opcode stream: classes are named by the strings FLAME's file uses (the classes themselves never exist here), and
bytes go out as Python-2 ``str`` (BINSTRING), which Python 3 reads back with ``encoding='latin1'``.

The mesh is a subdivided icosahedron (162 vertices) stretched into a head-sized ellipsoid, in metres, with FLAME's
axes (y up, z towards the camera) and 5 joints (root, neck, jaw, two eyes). The jaw joint drives the lower front
of the head; each pose-corrective column only moves vertices skinned to its joint, so a jaw rotation leaves every
vertex without jaw weight exactly where it was.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

PARENTS = np.array([-1, 0, 1, 1, 1])
JOINTS = np.array([[0.0, -0.09, -0.02], [0.0, -0.06, -0.01], [0.0, -0.02, 0.0], [0.03, 0.03, 0.06],
                   [-0.03, 0.03, 0.06]])


def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: (V, 3) vertices and (T, 3) outward-wound triangles (162 / 320 for 2 subdivisions)."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
         (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
         (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, np.int64)


def synthetic_flame_arrays(seed: int = 0, num_shape: int = 300, num_expression: int = 100) -> dict[str, np.ndarray]:
    """A small random FLAME-like model (dict keyed like the real file)."""
    rng = np.random.default_rng(seed)
    unit, faces = icosphere(2)
    V = len(unit)
    v_template = unit * [0.075, 0.1, 0.09]  # head-sized ellipsoid, metres
    # Bases are smooth fields over the head (random low-order polynomials of position), like real blend shapes.
    feats = np.concatenate([unit, unit ** 2, unit[:, [0]] * unit[:, [1]], unit[:, [1]] * unit[:, [2]],
                            unit[:, [0]] * unit[:, [2]], np.ones((V, 1))], 1)  # (V, 10)
    K = num_shape + num_expression
    coef = rng.normal(size=(feats.shape[1], 3, K)) / np.sqrt(feats.shape[1])
    local = rng.normal(size=(V, 3, K)) * 0.3  # some per-vertex detail so bases are not all rank 10
    scale = np.r_[0.006 / np.sqrt(1 + np.arange(num_shape) / 10), 0.004 / np.sqrt(1 + np.arange(num_expression) / 5)]
    shapedirs = (np.einsum("vf,fck->vck", feats, coef) + local) * scale
    shapedirs = _without_similarity(shapedirs, v_template)
    # Skinning: the lower front is the jaw, around the eyes the eyes, the bottom the root, the rest the neck/head.
    y, z = v_template[:, 1], v_template[:, 2]
    jaw = np.clip((-0.01 - y) / 0.03, 0, 1) * np.clip(z / 0.04, 0, 1)
    root = np.clip((-0.07 - y) / 0.02, 0, 1) * (1 - jaw)
    eyes = [(np.linalg.norm(v_template - JOINTS[k], axis=1) < 0.025).astype(float) for k in (3, 4)]
    weights = np.zeros((V, 5))
    weights[:, 0], weights[:, 2], weights[:, 3], weights[:, 4] = root, jaw, eyes[0], eyes[1]
    weights[:, 3:] *= (1 - jaw - root)[:, None]
    weights[:, 1] = 1 - weights.sum(1)
    posedirs = rng.normal(size=(V, 3, 36)) * 0.002
    for j in range(1, 5):  # the corrective columns of joint j only move vertices that joint j skins
        posedirs[:, :, 9 * (j - 1): 9 * j] *= weights[:, j, None, None]
    # Joint regressor: each joint the mean of its nearest vertices (sparse, rows sum to 1), as in FLAME.
    J_reg = np.zeros((5, V))
    for j in range(5):
        near = np.argsort(np.linalg.norm(v_template - JOINTS[j], axis=1))[:4]
        J_reg[j, near] = 0.25
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64)
    return {
        "v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": J_reg,
        "kintree_table": kintree, "weights": weights, "f": faces.astype(np.uint32),
        "bs_style": "lbs", "bs_type": "lrotmin", "J": J_reg @ v_template,
    }


def _without_similarity(dirs: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Remove from each basis column its best-fitting small translation, rotation and scaling of the template.

    FLAME's bases are learnt from registered (rigidly aligned) scans, so they hold almost no rigid motion; without
    this, random smooth bases would hold head rotations and a fit could not tell pose from shape.
    """
    V = len(template)
    c = template - template.mean(0)
    T = np.zeros((V, 3, 7))
    T[:, [0, 1, 2], [0, 1, 2]] = 1.0
    for k, axis in enumerate(np.eye(3)):
        T[:, :, 3 + k] = np.cross(axis, c)
    T[:, :, 6] = c
    T = T.reshape(V * 3, 7)
    flat = dirs.reshape(V * 3, -1)
    return (flat - T @ np.linalg.lstsq(T, flat, rcond=None)[0]).reshape(dirs.shape)


# -- FLAME's pickle format ---------------------------------------------------------------------------------------

class _Named:
    """Base of stand-in classes that pickle under another module's name."""

    pickle_as: tuple[str, str] = ("", "")


def named_class(module: str, name: str) -> type:
    return type(name, (_Named,), {"pickle_as": (module, name)})


def named_instance(module: str, name: str, state: dict) -> _Named:
    """An object that pickles as an instance of ``module.name`` with ``state`` (protocol 2: NEWOBJ + BUILD)."""
    obj = named_class(module, name)()
    obj.__dict__.update(state)
    return obj


class Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes FLAME's class names and Python-2 byte strings."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, numpy_module: str = "numpy.core.multiarray") -> None:
        super().__init__(file, protocol=2)
        self.numpy_module = numpy_module

    def save_global(self, obj, name=None):
        if isinstance(obj, type) and issubclass(obj, _Named):
            module, qual = obj.pickle_as
        elif obj is _np_reconstruct:
            module, qual = self.numpy_module, "_reconstruct"
        else:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + module.encode() + b"\n" + qual.encode() + b"\n")
        self.memoize(obj)

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def chumpy_ch(array: np.ndarray) -> _Named:
    """What a ``chumpy.ch.Ch`` wrapping ``array`` pickles as (its __dict__ minus _parents and _cache)."""
    state = {"x": np.asarray(array), "_dirty_vars": set(), "_itr": None, "_depends_on_deps": {},
             "_make_dense": False, "_make_sparse": False}
    return named_instance("chumpy.ch", "Ch", state)


def sparse_csc(dense: np.ndarray, module: str = "scipy.sparse.csc") -> _Named:
    """What a ``scipy.sparse.csc_matrix`` pickles as (old scipy kept it in scipy.sparse.csc)."""
    import scipy.sparse as sp

    m = sp.csc_matrix(dense)
    state = {"_shape": m.shape, "data": m.data, "indices": m.indices, "indptr": m.indptr, "maxprint": 50,
             "format": "csc"}
    return named_instance(module, "csc_matrix", state)


def write_flame_pickle(path: Path, arrays: dict, sparse_module: str = "scipy.sparse.csc",
                       numpy_module: str = "numpy.core.multiarray") -> Path:
    """Write ``arrays`` the way FLAME's files hold them: chumpy template/bases, a sparse regressor."""
    data = dict(arrays)
    data["v_template"] = chumpy_ch(arrays["v_template"])
    data["shapedirs"] = chumpy_ch(arrays["shapedirs"])
    data["J_regressor"] = sparse_csc(arrays["J_regressor"], sparse_module)
    with open(path, "wb") as f:
        Py2Pickler(f, numpy_module).dump(data)
    return Path(path)


def synthetic_mediapipe_embedding(arrays: dict, num: int = 60, seed: int = 1) -> dict[str, np.ndarray]:
    """Random front-facing triangles with random barycentrics, tied to distinct MediaPipe landmark indices."""
    rng = np.random.default_rng(seed)
    v, f = arrays["v_template"], arrays["f"].astype(np.int64)
    centre = v[f].mean(1)
    front = np.flatnonzero((centre[:, 2] > 0.02) & (centre[:, 1] > -0.09))
    face_idx = rng.choice(front, size=min(num, len(front)), replace=False)
    bary = rng.dirichlet(np.ones(3) * 3, size=len(face_idx))
    lmk = np.sort(rng.choice(468, size=len(face_idx), replace=False))
    return {"lmk_face_idx": face_idx.astype(np.int64), "lmk_b_coords": bary, "landmark_indices": lmk}


def mediapipe_flame_arrays(landmarks: np.ndarray, rotation: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """A FLAME-format model on MediaPipe's face mesh, built from one frame's 468 landmarks.

    The template is that face, de-rotated and scaled to metres in FLAME's axes; below the mouth corners is the jaw;
    bases are random and smooth. With :func:`identity_mediapipe_embedding` a real video's MediaPipe landmarks can
    be fitted closely, which checks the FLAME path's axes, scales and camera end to end.

    Args:
        landmarks: (468, 3) MediaPipe mesh landmarks of one frame (pixels, the toolkit's axes).
        rotation: (3, 3) that frame's head rotation (model -> camera).
    """
    from selfie_avatar.face_model import mediapipe_triangles

    rng = np.random.default_rng(seed)
    c = (landmarks - landmarks.mean(0)) @ rotation  # undo the head rotation
    tmpl = c / np.ptp(c[:, 1]) * 0.2 * np.array([1.0, -1.0, -1.0])  # ~20 cm tall, FLAME axes
    V = len(tmpl)
    faces = mediapipe_triangles()
    mouth_y = tmpl[[61, 291], 1].mean()
    jaw = np.clip((mouth_y - tmpl[:, 1]) / 0.01 + 0.5, 0, 1)
    weights = np.zeros((V, 5))
    weights[:, 2], weights[:, 1] = jaw, 1 - jaw

    def near(p, k=4):
        row = np.zeros(V)
        row[np.argsort(np.linalg.norm(tmpl - p, axis=1))[:k]] = 1 / k
        return row

    centre = tmpl.mean(0)
    J = np.stack([near(centre + [0, -0.08, -0.05]), near(centre + [0, -0.05, -0.04]),
                  near(np.r_[0, mouth_y, tmpl[:, 2].min()]), near(tmpl[[33, 133]].mean(0)),
                  near(tmpl[[362, 263]].mean(0))])
    feats = np.c_[tmpl / 0.08, (tmpl / 0.08) ** 2, np.ones(V)]
    K = 400
    dirs = np.einsum("vf,fck->vck", feats, rng.normal(size=(feats.shape[1], 3, K))) * 0.002
    dirs = _without_similarity(dirs + rng.normal(size=(V, 3, K)) * 3e-4, tmpl)
    posedirs = rng.normal(size=(V, 3, 36)) * 5e-4
    for j in range(1, 5):
        posedirs[:, :, 9 * (j - 1): 9 * j] *= weights[:, j, None, None]
    return {"v_template": tmpl, "shapedirs": dirs, "posedirs": posedirs, "J_regressor": J,
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64), "weights": weights,
            "f": faces.astype(np.uint32)}


def identity_mediapipe_embedding(faces: np.ndarray) -> dict[str, np.ndarray]:
    """Embedding of each MediaPipe mesh vertex as itself (a corner of one of its triangles)."""
    face_idx, bary, index = [], [], []
    for i in range(int(faces.max()) + 1):
        tri = np.flatnonzero((faces == i).any(1))
        if len(tri):
            b = (faces[tri[0]] == i).astype(float)
            face_idx.append(tri[0])
            bary.append(b)
            index.append(i)
    return {"lmk_face_idx": np.array(face_idx), "lmk_b_coords": np.array(bary), "landmark_indices": np.array(index)}
