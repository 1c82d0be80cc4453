"""Face model files: one ``.npz`` of plain arrays (no pickles) for every model kind.

It sits above the model classes so that they do not need each other: the reader picks the class by the file's
``kind`` array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.face_model.blendshape import BlendshapeFaceModel
from selfie_avatar.face_model.flame_face_model import FlameFaceModel


def save_face_model(model: FaceModel, path: str | Path) -> None:
    from selfie_avatar.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **model.to_arrays())


def load_face_model(path: str | Path) -> FaceModel:
    """Load a face model file written by :func:`save_face_model` (plain arrays only; no pickles).

    The ``kind`` array says which class reads the rest (``blendshape`` or ``flame``).
    """
    with np.load(path, allow_pickle=False) as data:
        kind = str(data["kind"])
        if kind == BlendshapeFaceModel.name:
            return BlendshapeFaceModel.from_arrays(data)
        if kind == "flame":
            return FlameFaceModel.from_arrays(data)
    raise ValueError(f"{path}: unknown face model kind {kind!r}")
