"""face-alignment's FAN (68 iBUG points, 2D or 3D) behind the ``LandmarkDetector`` protocol.

``prepare --landmarks face-alignment`` (or ``face-alignment-3d``) uses it. Its weights load only from local
files: an explicit folder (``--face-alignment-weights DIR``) or the weights folders (``selfie-avatar weights``
lists them). face-alignment's own constructor downloads them from its authors' site on first use; here its
download function is replaced, for the duration of construction, by one that answers with the local file or stops
with :class:`AssetMissingError`, so nothing ever reaches the network.

Files (face-alignment 1.5's release names)::

    2DFAN4-11f355bf06.pth.tar   2D FAN, a plain state dict         --landmarks face-alignment
    3DFAN4-7835d9f11d.pth.tar   3D FAN, a plain state dict         --landmarks face-alignment-3d
    depth-2a464da4ea.pth.tar    ResNetDepth, {'state_dict': ...}   --landmarks face-alignment-3d
    s3fd-619a316812.pth         S3FD face detector                 only when no face box is given

When a face box is handed to :meth:`FaceAlignmentLandmarker.detect` (prepare hands it MediaPipe's, which it runs
anyway for the default face model's blendshape scores), S3FD is not needed and not loaded.

Points: (68, 3) in pixels of the frame, x right, y down; z is 0 for 2D, face-alignment's depth (pixels, relative)
for 3D.

Install: face-alignment depends on ``opencv-python``, which clashes with MediaPipe's ``opencv-contrib-python``
(both provide ``cv2``), so it is installed without its dependencies, beside numba (``make face-alignment``, or
``pip install numba && pip install --no-deps face-alignment==1.5.0``); MediaPipe's OpenCV serves it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from selfie_avatar.assets import resolve_asset
from selfie_avatar.errors import AssetMissingError, SelfieAvatarError
from selfie_avatar.prepare.landmarks import Detection, choose_face
from selfie_avatar.utils.log import get_logger

log = get_logger("prepare.face_alignment")

NUM_IBUG_POINTS = 68
MODES = ("2d", "3d")
# registry asset -> face-alignment's URL key (api.models_urls)
_NETWORKS = {"2d": {"face_alignment_2dfan4": "2DFAN-4"},
             "3d": {"face_alignment_3dfan4": "3DFAN-4", "face_alignment_depth": "depth"}}
INSTALL_HINT = ("install it without its dependencies (it wants opencv-python, which clashes with MediaPipe's "
                "OpenCV): `make face-alignment`, or `pip install numba && pip install --no-deps "
                "face-alignment==1.5.0`")


class FaceAlignmentMissingError(SelfieAvatarError):
    """The face-alignment package is not installed."""


def _import():
    try:
        import face_alignment
        from face_alignment import api
    except ImportError as exc:
        raise FaceAlignmentMissingError(f"--landmarks face-alignment needs the face-alignment package ({exc}); "
                                        f"{INSTALL_HINT}") from exc
    return face_alignment, api


def _check_tensors_only(path: Path) -> None:
    # face-alignment unpickles the depth network's file with weights_only=False; refuse anything that is more
    # than tensors before it gets there.
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AssetMissingError(f"{path} is not a plain tensor file, so it is not loaded: {exc}") from exc


@contextmanager
def _local_downloads(api, files: dict[str, Path]):
    """face-alignment's download function answering from ``files`` (url -> path) and refusing everything else."""
    original = api.load_file_from_url

    def local(url, *args, **kwargs):
        if url in files:
            return str(files[url])
        raise AssetMissingError(f"face-alignment asked to download {url}; this toolkit never downloads model files")

    api.load_file_from_url = local
    try:
        yield
    finally:
        api.load_file_from_url = original


def face_alignment_files(mode: str = "2d", folder: str | Path | None = None, detector: bool = True) -> dict[str, Path]:
    """The local files a :class:`FaceAlignmentLandmarker` of ``mode`` needs, by registry name.

    Raises:
        ValueError: an unknown mode.
        AssetMissingError: a file is not found (the message names it, where it was looked for and how to get it).
    """
    if mode not in MODES:
        raise ValueError(f"face-alignment mode must be one of {MODES}, got {mode!r}")
    names = list(_NETWORKS[mode]) + (["face_alignment_s3fd"] if detector else [])
    from selfie_avatar.assets.registry import ASSETS

    return {n: resolve_asset(n, Path(folder) / ASSETS[n].filename if folder else None) for n in names}


class FaceAlignmentLandmarker:
    """face-alignment's FAN as a :class:`~selfie_avatar.prepare.landmarks.LandmarkDetector`: 68 iBUG points.

    Args:
        mode: ``"2d"`` (2D-FAN: the visible contour) or ``"3d"`` (3D-FAN plus its depth network).
        folder: a folder holding the weight files under their release names (module docstring); None: the
            weights folders.
        device: torch device for the networks.
        detector: load S3FD so that :meth:`detect` can find faces itself; False: every call must pass a box.
        min_confidence: S3FD's score threshold.
        flip_input: also run the mirrored crop and average (face-alignment's default; twice the time).

    Raises:
        FaceAlignmentMissingError: the package is not installed.
        AssetMissingError: a weight file is missing, or is more than tensors.
    """

    num_landmarks = NUM_IBUG_POINTS
    has_blendshapes = False

    def __init__(self, mode: str = "2d", folder: str | Path | None = None, device: str | torch.device = "cpu",
                 detector: bool = True, min_confidence: float = 0.5, flip_input: bool = True) -> None:
        fa, api = _import()
        files = face_alignment_files(mode, folder, detector)
        if "face_alignment_depth" in files:  # the others face-alignment loads with weights_only=True itself
            _check_tensors_only(files["face_alignment_depth"])
        urls = {api.models_urls[key]: files[name] for name, key in _NETWORKS[mode].items()}
        kind = fa.LandmarksType.THREE_D if mode == "3d" else fa.LandmarksType.TWO_D
        kwargs = {"path_to_detector": str(files["face_alignment_s3fd"]), "filter_threshold": min_confidence} \
            if detector else {}
        with _local_downloads(api, urls):
            # 'folder' is face-alignment's detector for boxes found elsewhere: it loads nothing.
            self._fa = fa.FaceAlignment(kind, device=str(device), flip_input=flip_input,
                                        face_detector="sfd" if detector else "folder",
                                        face_detector_kwargs=kwargs, compile=False)
        self.mode, self.has_detector, self.files = mode, detector, files
        log.info("face-alignment %s FAN from %s", mode.upper(), ", ".join(str(p) for p in files.values()))

    def detect(self, frame: np.ndarray, timestamp_ms: int = 0, box: np.ndarray | None = None) -> Detection:
        """The 68 points of the largest, most central face of an RGB frame.

        Args:
            frame: (H, W, 3) uint8 RGB.
            timestamp_ms: unused (each frame is independent); there for the protocol.
            box: (4,) x0, y0, x1, y1 of the face in pixels; None: S3FD finds the faces.

        Returns:
            a :class:`Detection` with ``points`` (68, 3) float32 and no blendshape scores or rotation.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if box is None and not self.has_detector:
            raise ValueError("this landmarker was made without its face detector (detector=False): pass a box")
        # float64: face-alignment writes the box scale into torch tensors, which refuse numpy float32 scalars
        faces = None if box is None else [np.asarray(box, np.float64)[:4]]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No faces were detected." is an answer here, not a warning
            points, _, boxes = self._fa.get_landmarks_from_image(frame, detected_faces=faces, return_bboxes=True,
                                                                 return_landmark_score=True)
        if points is None or len(points) == 0:
            return Detection(None, None, None, 0)
        boxes = np.asarray([b[:4] for b in boxes], np.float64) if boxes is not None else \
            np.asarray([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in points])
        k = choose_face(boxes, frame.shape[1], frame.shape[0])
        p = np.asarray(points[k], np.float32)
        if p.shape[1] == 2:
            p = np.concatenate([p, np.zeros((len(p), 1), np.float32)], 1)
        return Detection(p, None, None, len(points))

    def close(self) -> None:
        self._fa = None

    def __enter__(self) -> "FaceAlignmentLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
