"""The subject folder: everything later stages need about one person, one video. Format documented in
``data/README.md``; this module is its single reader and writer.

    SUBJECT/
      meta.json          source, fps, crop box, size, split, figures, versions, config
      frames/NNNNNN.png  RGB crop (size x size), one per decoded frame
      render/NNNNNN.png  I_R: grey shaded render of the fitted mesh (black where the frame has no face)
      uv/NNNNNN.png      I_UV: 16-bit PNG, channels (u, v, coverage mask)
      matte/NNNNNN.png   8-bit soft foreground matte
      background.png     clean background plate (temporal median, holes inpainted)
      tracking.npz       per-frame pose, codes, landmarks, validity, errors
      face_model.npz     the subject's face model (plain arrays)
      preview.png        contact sheet: landmarks, render, UV, matte for a few frames
      tracking.mp4       frames | render over frame | matte, side by side
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from selfie_avatar.face_model import FaceModel, load_face_model
from selfie_avatar.io.image import read_image, read_png16, write_image, write_png16

FORMAT_NAME = "selfie_avatar.subject"
FORMAT_VERSION = 1
FRAME_DIRS = ("frames", "render", "uv", "matte")


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


def write_frame_images(root: Path, index: int, frame: np.ndarray, render: np.ndarray, uv: np.ndarray,
                       matte: np.ndarray) -> None:
    """Write one frame's four images.

    Args:
        frame: (S, S, 3) uint8 RGB crop.
        render: (S, S, 3) uint8 shaded render.
        uv: (S, S, 3) float in [0, 1]: u, v, mask.
        matte: (S, S) float in [0, 1].
    """
    name = frame_name(index)
    write_image(root / "frames" / name, frame)
    write_image(root / "render" / name, render)
    write_png16(root / "uv" / name, uv)
    write_image(root / "matte" / name, (np.clip(matte, 0, 1) * 255 + 0.5).astype(np.uint8))


def split_frames(valid: np.ndarray, held_out_fraction: float) -> tuple[list[int], list[int]]:
    """Train / held-out frame indices: the last ``held_out_fraction`` of valid frames are held out (at least one
    when there are at least two valid frames)."""
    idx = np.flatnonzero(valid)
    n_hold = int(np.ceil(len(idx) * held_out_fraction)) if len(idx) >= 2 else 0
    n_hold = min(n_hold, len(idx) - 1) if len(idx) >= 2 else 0
    cut = len(idx) - n_hold
    return idx[:cut].tolist(), idx[cut:].tolist()


@dataclass
class Subject:
    """Read access to a subject folder.

    Raises:
        FileNotFoundError / ValueError: the folder is missing, incomplete or of another format version.
    """

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        meta = self.root / "meta.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{self.root} is not a subject folder (no meta.json); run `selfie-avatar prepare`")
        m = self.meta
        if m.get("format") != FORMAT_NAME or m.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.root}: subject format {m.get('format')!r} v{m.get('format_version')} is not "
                f"{FORMAT_NAME} v{FORMAT_VERSION}; prepare it again with this version"
            )

    @cached_property
    def meta(self) -> dict:
        return json.loads((self.root / "meta.json").read_text())

    @cached_property
    def tracking(self) -> dict[str, np.ndarray]:
        with np.load(self.root / "tracking.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def face_model(self) -> FaceModel:
        return load_face_model(self.root / "face_model.npz")

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def __len__(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def train_indices(self) -> list[int]:
        return list(self.meta["split"]["train"])

    @property
    def heldout_indices(self) -> list[int]:
        return list(self.meta["split"]["heldout"])

    def frame(self, i: int) -> np.ndarray:
        return read_image(self.root / "frames" / frame_name(i))

    def render(self, i: int) -> np.ndarray:
        return read_image(self.root / "render" / frame_name(i))

    def uv(self, i: int) -> np.ndarray:
        return read_png16(self.root / "uv" / frame_name(i))

    def matte(self, i: int) -> np.ndarray:
        return read_image(self.root / "matte" / frame_name(i))[..., 0].astype(np.float32) / 255.0

    @cached_property
    def background(self) -> np.ndarray:
        return read_image(self.root / "background.png")
