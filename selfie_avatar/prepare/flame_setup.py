"""``prepare --face-model flame``: find the user's FLAME files, load them, and fit.

FLAME file, first found wins: ``--flame`` -> ``$SELFIE_AVATAR_FLAME`` -> ``flame2023.pkl`` then
``generic_model.pkl`` in the weights folders (:mod:`selfie_avatar.assets`).
Landmark embedding: ``--landmark-embedding`` -> a known embedding file beside the FLAME file -> the weights
folders. Nothing is downloaded: a missing file stops prepare with where to get it and the fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from selfie_avatar.assets import asset_status, weights_dirs
from selfie_avatar.config import PrepareConfig
from selfie_avatar.errors import AssetMissingError
from selfie_avatar.prepare.tracking import TrackingResult
from selfie_avatar.utils.log import get_logger

log = get_logger("prepare.flame")

__all__ = ["ENV_FLAME", "resolve_flame_files", "fit_flame_for_config", "FIT_SHAPE_COMPONENTS"]

ENV_FLAME = "SELFIE_AVATAR_FLAME"
# Identity components fitted from landmarks: more are not determined by ~100 2D points (DECA also uses 100).
FIT_SHAPE_COMPONENTS = 100
_FLAME_ASSETS = ("flame2023", "flame2020")
_EMBEDDING_ASSETS = ("flame_mediapipe_embedding", "flame_landmark_embedding")
_EMBEDDING_FILES = ("mediapipe_landmark_embedding.npz", "landmark_embedding.npy", "flame_static_embedding.pkl")
_FALLBACK = "Without FLAME, prepare with the default model: --face-model blendshape."


def _explicit(path: str | os.PathLike, what: str, flag: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise AssetMissingError(f"{what} {p} (from {flag}) does not exist. {_FALLBACK}")
    return p


def resolve_flame_files(flame: str | None = None, landmark_embedding: str | None = None,
                        prefer_ibug68: bool = False) -> tuple[Path, Path]:
    """Paths of the FLAME model file and of its landmark embedding.

    Args:
        prefer_ibug68: look for a 68-point (iBUG) embedding first, for face-alignment's points (``prepare
            --landmarks face-alignment``); else MediaPipe's embedding comes first.

    Raises:
        AssetMissingError: either is not found; the message says where it was looked for, how to obtain it and
            what the fallback is.
    """
    looked = ", ".join(str(d) for d in weights_dirs())
    if flame:
        model = _explicit(flame, "FLAME model file", "--flame")
    elif os.environ.get(ENV_FLAME):
        model = _explicit(os.environ[ENV_FLAME], "FLAME model file", f"${ENV_FLAME}")
    else:
        found = [st.path for st in (asset_status(a) for a in _FLAME_ASSETS) if st.found]
        if not found:
            raise AssetMissingError(
                f"FLAME model file not found (no --flame, no ${ENV_FLAME}; looked for flame2023.pkl and "
                f"generic_model.pkl in {looked}). FLAME needs a free registration: download FLAME 2020 or 2023 from "
                f"https://flame.is.tue.mpg.de and pass --flame PATH (or set {ENV_FLAME}). {_FALLBACK}")
        model = found[0]
    if landmark_embedding:
        return model, _explicit(landmark_embedding, "landmark embedding", "--landmark-embedding")
    files, assets = _EMBEDDING_FILES, _EMBEDDING_ASSETS
    if prefer_ibug68:  # the 68-point files first: they read face-alignment's points back exactly
        files, assets = files[1:] + files[:1], assets[::-1]
    for name in files:
        if (model.parent / name).is_file():
            return model, model.parent / name
    for a in assets:
        st = asset_status(a)
        if st.found:
            return model, st.path
    raise AssetMissingError(
        f"no FLAME landmark embedding found (no --landmark-embedding; looked beside {model} and in {looked} for "
        f"{', '.join(_EMBEDDING_FILES)}). Download the 'Mediapipe landmark embedding' "
        "(mediapipe_landmark_embedding.npz) from https://flame.is.tue.mpg.de, or use DECA's landmark_embedding.npy, "
        f"and pass --landmark-embedding PATH. {_FALLBACK}")


def fit_flame_for_config(cfg: PrepareConfig, landmarks_crop: np.ndarray, status: np.ndarray,
                         files: tuple[Path, Path] | None = None) -> TrackingResult:
    """Load FLAME and its embedding as ``cfg`` says and fit them to the clip's landmarks (crop pixels).

    Uses ``cfg.flame``, ``landmark_embedding``, ``flame_expression``, ``smooth_sigma`` and ``device``.
    """
    from selfie_avatar.face_model import FLAME, load_flame_arrays, load_landmark_embedding
    from selfie_avatar.prepare.flame_fit import fit_flame_tracking
    from selfie_avatar.utils.device import resolve_device

    model_path, emb_path = files or resolve_flame_files(cfg.flame, cfg.landmark_embedding)
    arrays = load_flame_arrays(model_path)
    have = arrays["exprdirs"].shape[2]
    if not 0 < cfg.flame_expression <= have:
        raise ValueError(f"--flame-expression must be in [1, {have}] for {model_path}, got {cfg.flame_expression}")
    flame = FLAME.from_arrays(arrays, min(FIT_SHAPE_COMPONENTS, arrays["shapedirs"].shape[2]), cfg.flame_expression,
                              str(model_path))
    embedding = load_landmark_embedding(emb_path)
    log.info("FLAME: %s (%d vertices), landmarks: %s (%d, %s)", model_path, flame.num_vertices, emb_path,
             len(embedding), embedding.scheme)
    return fit_flame_tracking(landmarks_crop, status, flame, embedding, num_expression=cfg.flame_expression,
                              smooth_sigma=cfg.smooth_sigma, device=resolve_device(cfg.device))
