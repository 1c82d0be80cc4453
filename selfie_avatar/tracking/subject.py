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

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from selfie_avatar.errors import SelfieAvatarError, SubjectError
from selfie_avatar.face_model import FaceModel, load_face_model
from selfie_avatar.io.image import png_problem, read_image, read_png16, write_image, write_png16
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.utils.atomic import read_json

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


#: Fraction of valid frames, just before the test tail, kept for validation when a folder's meta.json has no
#: validation split (folders prepared before the split existed).
DEFAULT_VALIDATION_FRACTION = 0.05


@dataclass(frozen=True)
class Split:
    """The three disjoint frame sets of a subject, in frame order.

    Attributes:
        train: frames the avatar is trained on.
        validation: a short slice just before the test tail, never trained on; the only frames that choose anything
            (``best.ckpt``, early stopping, tuning).
        test: the last frames, used only for reporting.
        derived: True when ``validation`` was carved out of an older folder's training frames at read time.
    """

    train: list[int]
    validation: list[int]
    test: list[int]
    derived: bool = False


def split_frames(valid: np.ndarray, test_fraction: float,
                 validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> Split:
    """Train / validation / test frame indices over the frames with a face (``valid``).

    The last ``test_fraction`` of valid frames are the test set (at least one when there are at least two valid
    frames); the ``validation_fraction`` before them the validation set (at least one when at least two frames
    remain for training and validation); the rest train. Frames are never shared between the sets.
    """
    for name, f in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    idx = np.flatnonzero(valid).tolist()
    n = len(idx)
    n_test = min(max(int(np.ceil(n * test_fraction)), 1), n - 1) if n >= 2 and test_fraction > 0 else 0
    rest = n - n_test
    n_val = min(max(int(np.ceil(n * validation_fraction)), 1), rest - 1) if rest >= 2 and validation_fraction > 0 else 0
    cut_val, cut_test = rest - n_val, n - n_test
    return Split(idx[:cut_val], idx[cut_val:cut_test], idx[cut_test:])


#: Per-frame arrays of tracking.npz that every later stage reads.
TRACKING_KEYS = ("status", "rotation", "scale", "translation", "euler_deg", "expression", "landmarks")


@dataclass
class Subject:
    """Read access to a subject folder, checked when opened (see :meth:`check`).

    Args:
        root: the folder ``selfie-avatar prepare`` wrote.
        check: look for damage up front (default). Off only for code that repairs or inspects a damaged folder.

    Raises:
        FileNotFoundError: no folder or no meta.json.
        SubjectError: another format version, or a damaged folder (one line: what is damaged and how to redo it).
    """

    root: Path
    check: bool = True

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        meta = self.root / "meta.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{self.root} is not a subject folder (no meta.json); run `selfie-avatar prepare`")
        m = self.meta
        if m.get("format") != FORMAT_NAME or m.get("format_version") != FORMAT_VERSION:
            raise SubjectError(
                f"{self.root}: subject format {m.get('format')!r} v{m.get('format_version')} is not "
                f"{FORMAT_NAME} v{FORMAT_VERSION}; prepare it again with this version"
            )
        if self.check:
            self.verify()

    @cached_property
    def meta(self) -> dict:
        try:
            meta = read_json(self.root / "meta.json", self._redo)
        except SelfieAvatarError as exc:
            raise SubjectError(str(exc)) from exc
        if not isinstance(meta, dict):
            raise SubjectError(f"{self.root / 'meta.json'} does not hold a JSON object; {self._redo}")
        return meta

    @cached_property
    def tracking(self) -> dict[str, np.ndarray]:
        path = self.root / "tracking.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise SubjectError(f"{path} cannot be read ({exc}); {self._redo}") from exc

    def codes(self, indices=None) -> HeadCodes:
        """The tracked head codes of the given frames (all by default), the one typed form every stage uses."""
        return HeadCodes.from_tracking(self.tracking, indices)

    @property
    def _redo(self) -> str:
        # The source video from meta.json once it has been read (cached_property keeps it in __dict__); while
        # meta.json itself is being read, or is the damage, the hint names no file rather than reading it again.
        meta = self.__dict__.get("meta")
        src = meta.get("source", {}).get("path", "VIDEO") if isinstance(meta, dict) else "VIDEO"
        return f"prepare it again: `selfie-avatar prepare {src} --out {self.root} --overwrite`"

    def verify(self) -> None:
        """Check the whole folder without decoding any image: meta.json's fields, tracking.npz's arrays, the face
        model, and every frame file present with a whole PNG of the right size (its first and last bytes; about
        0.1 s for a thousand frames). Training never starts on a folder that would fail minutes in.

        Raises:
            SubjectError: one line naming what is damaged (the first few files and every affected frame) and how
                to redo it.
        """
        m = self.meta
        missing = [k for k in ("num_frames", "size", "split") if k not in m]
        if missing:
            raise SubjectError(f"{self.root / 'meta.json'} lacks {', '.join(missing)}; {self._redo}")
        n, size = int(m["num_frames"]), int(m["size"])
        tracking = self.tracking
        bad = [k for k in TRACKING_KEYS if k not in tracking or len(tracking[k]) != n]
        if bad:
            raise SubjectError(f"{self.root / 'tracking.npz'} does not hold {n} frames of {', '.join(bad)}; "
                               f"{self._redo}")
        split = self.split
        out_of_range = [i for i in (*split.train, *split.validation, *split.test) if not 0 <= i < n]
        if out_of_range:
            raise SubjectError(f"{self.root / 'meta.json'}: split names frames {out_of_range[:5]} of a {n}-frame "
                               f"subject; {self._redo}")
        if not zipfile.is_zipfile(self.root / "face_model.npz"):
            raise SubjectError(f"{self.root / 'face_model.npz'} is missing or damaged; {self._redo}")
        problems: list[str] = []
        frames: list[int] = []
        why = png_problem(self.root / "background.png", (size, size))
        if why:
            problems.append(f"background.png is {why}")
        for i in range(n):
            for d in FRAME_DIRS:
                why = png_problem(self.root / d / frame_name(i), (size, size))
                if why:
                    problems.append(f"{d}/{frame_name(i)} is {why}")
                    if not frames or frames[-1] != i:
                        frames.append(i)
        if problems:
            shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
            where = f" (frames {', '.join(map(str, frames[:20]))}{', ...' if len(frames) > 20 else ''})" if frames else ""
            raise SubjectError(f"{self.root} is damaged: {shown}{where}; {self._redo}")

    def face_model(self) -> FaceModel:
        return load_face_model(self.root / "face_model.npz")

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def __len__(self) -> int:
        return int(self.meta["num_frames"])

    @cached_property
    def split(self) -> Split:
        """The train / validation / test frames (see :class:`Split`).

        Folders written before the validation split existed hold only ``train`` and ``heldout``: their held-out
        tail stays the test set and the last :data:`DEFAULT_VALIDATION_FRACTION` of valid frames before it becomes
        validation (``derived`` is then True), so checkpoints are never chosen on test frames there either.
        """
        sp = self.meta["split"]
        if "test" in sp:
            return Split(list(sp["train"]), list(sp["validation"]), list(sp["test"]))
        train, test = list(sp["train"]), list(sp["heldout"])
        n_valid = len(train) + len(test)
        n_val = min(max(int(np.ceil(n_valid * DEFAULT_VALIDATION_FRACTION)), 1), len(train) - 1) if len(train) >= 2 else 0
        return Split(train[:len(train) - n_val], train[len(train) - n_val:], test, derived=True)

    @property
    def train_indices(self) -> list[int]:
        return list(self.split.train)

    @property
    def validation_indices(self) -> list[int]:
        return list(self.split.validation)

    @property
    def test_indices(self) -> list[int]:
        return list(self.split.test)

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
