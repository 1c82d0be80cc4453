"""Landmark embeddings: which point of a face mesh each detected landmark is (triangle index + barycentrics).

Formats read (the files come with FLAME and the projects around it; none is shipped or downloaded here):

- ``mediapipe_landmark_embedding.npz`` (FLAME website, MICA / metrical-tracker): ``lmk_face_idx`` (L,),
  ``lmk_b_coords`` (L, 3), ``landmark_indices`` (L,) -- which of MediaPipe's 478 landmarks each one is;
- ``flame_static_embedding.pkl`` (FLAME website, RingNet): ``lmk_face_idx`` (51,), ``lmk_b_coords`` (51, 3), the
  68-point iBUG scheme without its 17 contour points (so iBUG points 17..67);
- DECA's ``landmark_embedding.npy``: a pickled dict with ``static_lmk_faces_idx`` / ``static_lmk_bary_coords``
  (51 points, iBUG 17..67) and ``full_lmk_faces_idx`` / ``full_lmk_bary_coords`` (all 68), plus dynamic contour
  tables this loader does not need.

The toolkit's landmarker is MediaPipe (478 points). A 68-point embedding is matched to it through
:data:`IBUG68_TO_MEDIAPIPE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfie_avatar.face_model.safe_pickle import load_pickle, load_pickled_npy

__all__ = ["LandmarkEmbedding", "load_landmark_embedding", "IBUG68_TO_MEDIAPIPE", "merge_ibug68", "MEDIAPIPE", "IBUG68"]

MEDIAPIPE, IBUG68 = "mediapipe", "ibug68"

# iBUG 68-point index -> one or two MediaPipe face-mesh indices (two: the point lies between them; their mean is
# used). After the correspondence table of Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (2024),
# https://github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks, written here as pairs (a single index is repeated).
# Order: jaw 0-16 (the subject's right to left), brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner 60-67.
IBUG68_TO_MEDIAPIPE = np.array([
    (127, 127), (234, 234), (93, 93), (132, 58), (58, 172), (136, 136), (150, 150), (176, 176), (152, 152),
    (400, 400), (379, 379), (365, 365), (397, 288), (361, 361), (323, 323), (454, 454), (356, 356),
    (156, 156), (63, 63), (105, 105), (66, 66), (107, 107),
    (336, 336), (296, 296), (334, 334), (293, 293), (383, 383),
    (168, 6), (197, 195), (5, 5), (4, 4), (98, 98), (97, 97), (2, 2), (326, 326), (327, 327),
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),
    (321, 321), (314, 314), (17, 17), (84, 84), (91, 91),
    (78, 78), (82, 82), (13, 13), (312, 312), (308, 308), (317, 317), (14, 14), (87, 87),
], dtype=np.int64)
assert IBUG68_TO_MEDIAPIPE.shape == (68, 2)


def _merge_operator() -> tuple[np.ndarray, np.ndarray]:
    # The table's MediaPipe vertices, and the least-norm map from iBUG residuals to their displacements: some
    # vertices serve two iBUG points (58 is the mean partner of both 3 and 4), so the 68 equations are solved
    # together rather than point by point.
    used = np.unique(IBUG68_TO_MEDIAPIPE)
    col = {v: k for k, v in enumerate(used)}
    a = np.zeros((68, len(used)))
    for i, (p, q) in enumerate(IBUG68_TO_MEDIAPIPE):
        a[i, col[p]] += 0.5
        a[i, col[q]] += 0.5
    return used, np.linalg.pinv(a)


def merge_ibug68(mediapipe: np.ndarray, ibug: np.ndarray) -> np.ndarray:
    """MediaPipe's landmarks with 68 iBUG points (face-alignment's) put in through :data:`IBUG68_TO_MEDIAPIPE`.

    The table's MediaPipe vertices are moved, in x and y, by the smallest displacement that puts each iBUG point's
    MediaPipe position (the mean of its pair) exactly on the given point; every other vertex, and every depth,
    stays MediaPipe's (the 68-point detectors' depth has another scale). A 68-point embedding then reads the
    given points back exactly (:meth:`LandmarkEmbedding.targets_from_mediapipe`).

    Shape:
        - mediapipe: :math:`(..., 478, 3)`
        - ibug: :math:`(..., 68, C)`, :math:`C \\ge 2`
        - output: like ``mediapipe``

    Raises:
        ValueError: shapes that do not match.
    """
    if mediapipe.shape[-2] < 478 or mediapipe.shape[-1] < 2:
        raise ValueError(f"expected MediaPipe's 478 landmarks on axis -2, got {mediapipe.shape}")
    if ibug.shape[-2] != 68 or ibug.shape[-1] < 2 or ibug.shape[:-2] != mediapipe.shape[:-2]:
        raise ValueError(f"expected 68 iBUG points per MediaPipe set {mediapipe.shape[:-2]}, got {ibug.shape}")
    used, pinv = _merge_operator()
    pairs = IBUG68_TO_MEDIAPIPE
    current = 0.5 * (mediapipe[..., pairs[:, 0], :2] + mediapipe[..., pairs[:, 1], :2])
    shift = np.einsum("vi,...ic->...vc", pinv, np.asarray(ibug[..., :2], np.float64) - current)
    out = np.array(mediapipe, copy=True)
    out[..., used, :2] += shift.astype(out.dtype)
    return out


@dataclass
class LandmarkEmbedding:
    """Where each tracked landmark sits on the mesh, and which detected landmark it is.

    Attributes:
        face_idx: (L,) int64 triangle index per landmark.
        bary: (L, 3) float32 barycentric coordinates in that triangle.
        source_index: (L,) int64 index of the landmark in ``scheme`` (MediaPipe's 478, or iBUG's 68).
        scheme: ``"mediapipe"`` or ``"ibug68"``.
        source: the file it came from (for records).
    """

    face_idx: np.ndarray
    bary: np.ndarray
    source_index: np.ndarray
    scheme: str
    source: str = ""

    def __post_init__(self) -> None:
        self.face_idx = np.asarray(self.face_idx).astype(np.int64).ravel()
        self.bary = np.asarray(self.bary, np.float32).reshape(-1, 3)
        self.source_index = np.asarray(self.source_index).astype(np.int64).ravel()
        L = len(self.face_idx)
        if self.bary.shape != (L, 3) or self.source_index.shape != (L,):
            raise ValueError(f"landmark embedding: face_idx ({L},), bary {self.bary.shape} and source_index "
                             f"{self.source_index.shape} disagree")
        limit = {MEDIAPIPE: 478, IBUG68: 68}.get(self.scheme)
        if limit is None:
            raise ValueError(f"landmark embedding: unknown scheme {self.scheme!r} (mediapipe or ibug68)")
        if L and (self.source_index.min() < 0 or self.source_index.max() >= limit):
            raise ValueError(f"landmark embedding: source indices must lie in [0, {limit}) for {self.scheme}")

    def __len__(self) -> int:
        return len(self.face_idx)

    @property
    def mediapipe_pairs(self) -> np.ndarray:
        """(L, 2) MediaPipe landmark indices whose mean is each landmark's detected position."""
        if self.scheme == MEDIAPIPE:
            return np.stack([self.source_index, self.source_index], 1)
        return IBUG68_TO_MEDIAPIPE[self.source_index]

    def targets_from_mediapipe(self, landmarks: np.ndarray) -> np.ndarray:
        """Detected positions of the embedded landmarks from MediaPipe's landmarks.

        Shape:
            - landmarks: :math:`(..., 478, C)`
            - output: :math:`(..., L, C)`
        """
        if landmarks.shape[-2] < 478:
            raise ValueError(f"expected MediaPipe's 478 landmarks on axis -2, got {landmarks.shape}")
        pairs = self.mediapipe_pairs
        return 0.5 * (landmarks[..., pairs[:, 0], :] + landmarks[..., pairs[:, 1], :])

    def check_mesh(self, num_faces: int) -> None:
        """Raise ValueError when a triangle index does not exist in a mesh of ``num_faces`` triangles."""
        if len(self) and (self.face_idx.min() < 0 or self.face_idx.max() >= num_faces):
            raise ValueError(f"landmark embedding {self.source or ''}: triangle indices reach "
                             f"{int(self.face_idx.max())}, the mesh has {num_faces} triangles; "
                             "is it an embedding for this model?")

    def to_arrays(self, prefix: str = "lmk_") -> dict[str, np.ndarray]:
        return {f"{prefix}face_idx": self.face_idx, f"{prefix}bary": self.bary,
                f"{prefix}source_index": self.source_index, f"{prefix}scheme": np.array(self.scheme)}

    @classmethod
    def from_arrays(cls, data, prefix: str = "lmk_", source: str = "") -> "LandmarkEmbedding":
        return cls(data[f"{prefix}face_idx"], data[f"{prefix}bary"], data[f"{prefix}source_index"],
                   str(data[f"{prefix}scheme"]), source)


def _ibug_indices(n: int, where: str) -> np.ndarray:
    if n == 68:
        return np.arange(68)
    if n == 51:  # the static embeddings leave out the 17 contour points, whose mesh position depends on pose
        return np.arange(17, 68)
    raise ValueError(f"{where}: {n} landmarks; a 68-point embedding has 68 (full) or 51 (no contour)")


def load_landmark_embedding(path: str | os.PathLike, contour: bool = True) -> LandmarkEmbedding:
    """Read a landmark embedding in any of the formats in the module docstring.

    Args:
        path: the embedding file (.npz, .pkl or .npy).
        contour: for DECA's file, use the full 68 points (True) or the 51 without the face contour (False).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is none of the known formats.
        UnsafePickleError: a pickled file names anything but arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark embedding {path} does not exist")
    src = str(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        if "lmk_face_idx" not in d or "lmk_b_coords" not in d:
            raise ValueError(f"{path}: expected lmk_face_idx and lmk_b_coords, found {sorted(d)}")
        if "landmark_indices" in d:
            return LandmarkEmbedding(d["lmk_face_idx"], d["lmk_b_coords"], d["landmark_indices"], MEDIAPIPE, src)
        n = len(np.ravel(d["lmk_face_idx"]))
        return LandmarkEmbedding(d["lmk_face_idx"], d["lmk_b_coords"], _ibug_indices(n, src), IBUG68, src)
    if path.suffix == ".pkl":
        d = load_pickle(path)
        if not isinstance(d, dict) or "lmk_face_idx" not in d or "lmk_b_coords" not in d:
            raise ValueError(f"{path}: expected a dict with lmk_face_idx and lmk_b_coords")
        n = len(np.ravel(d["lmk_face_idx"]))
        return LandmarkEmbedding(d["lmk_face_idx"], d["lmk_b_coords"], _ibug_indices(n, src), IBUG68, src)
    if path.suffix == ".npy":
        d = load_pickled_npy(path)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a pickled dict (DECA's landmark_embedding.npy)")
        key = "full" if contour and "full_lmk_faces_idx" in d else "static"
        if f"{key}_lmk_faces_idx" not in d:
            raise ValueError(f"{path}: expected static_lmk_faces_idx / full_lmk_faces_idx, found {sorted(d)}")
        faces, bary = d[f"{key}_lmk_faces_idx"], d[f"{key}_lmk_bary_coords"]
        return LandmarkEmbedding(faces, bary, _ibug_indices(len(np.ravel(faces)), src), IBUG68, src)
    raise ValueError(f"{path}: unknown landmark embedding format (expected .npz, .pkl or .npy)")
