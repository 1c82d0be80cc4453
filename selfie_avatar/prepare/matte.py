"""Soft foreground mattes: MediaPipe's selfie segmenter, and a face-hull fallback when its file is absent.

A matte is a float32 array in [0, 1], 1 on the person. :class:`SelfieSegmenter` runs MediaPipe's
``selfie_segmentation.tflite`` (general model, 256x256 input) with LiteRT; :func:`hull_matte` builds a matte
from the convex hull of the tracked face landmarks, which covers the face but not hair, neck or shoulders.
:func:`create_matter` returns a segmenter, or ``None`` so that the caller can fall back to the hull and record
that it did (``source`` names which one made a matte).

Example:
    >>> matter = create_matter()
    >>> if matter is not None:
    ...     with matter:
    ...         mattes, source = matter(frames), matter.source
    ... else:
    ...     mattes, source = hull_matte(points[..., :2], h, w), HULL_SOURCE
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from scipy.special import ndtr

from selfie_avatar.assets import resolve_asset
from selfie_avatar.errors import AssetMissingError
from selfie_avatar.utils.log import get_logger
from selfie_avatar.utils.native_log import quiet_native_logs

log = get_logger("prepare.matte")

SEGMENTER_SOURCE = "mediapipe_selfie_segmentation"
HULL_SOURCE = "landmark_hull"


class SelfieSegmenter:
    """Person matte from MediaPipe's selfie segmentation model (LiteRT, CPU).

    Frames are stretched to the network's 256x256 input without keeping the aspect ratio, as MediaPipe's own
    selfie-segmentation graph does, and the probability map is resized back bilinearly.

    Args:
        model_path: the ``.tflite`` file; ``None`` looks it up with
            :func:`~selfie_avatar.assets.resolve_asset` (env folder, install folder, cache).
        num_threads: CPU threads for the interpreter.

    Raises:
        AssetMissingError: the model file was not found.
        ValueError: ``num_threads`` < 1, or the model does not have one (1, H, W, 3) float input and one
            (1, H, W, 1) output.

    Example:
        >>> with SelfieSegmenter() as seg:
        ...     matte = seg(frame)  # (H, W) float32 in [0, 1]
    """

    source = SEGMENTER_SOURCE

    def __init__(self, model_path: str | os.PathLike | None = None, num_threads: int = 2) -> None:
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.model_path = resolve_asset("selfie_segmentation", model_path)
        # Imported here so that the hull fallback works where the LiteRT runtime is not installed.
        from ai_edge_litert.interpreter import Interpreter

        with quiet_native_logs("LiteRT selfie segmenter"):
            self._interp = Interpreter(model_path=str(self.model_path), num_threads=int(num_threads))
            self._interp.allocate_tensors()
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.model_path}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        in_shape, out_shape = tuple(inputs[0]["shape"]), tuple(outputs[0]["shape"])
        if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] != 3 or inputs[0]["dtype"] != np.float32:
            raise ValueError(f"{self.model_path}: expected a (1, H, W, 3) float32 input, got {in_shape}")
        if len(out_shape) != 4 or out_shape[0] != 1 or out_shape[3] != 1:
            raise ValueError(f"{self.model_path}: expected a (1, H, W, 1) output, got {out_shape}")
        self.input_size = (int(in_shape[1]), int(in_shape[2]))  # (height, width)
        self._in_index = inputs[0]["index"]
        self._out_index = outputs[0]["index"]
        log.debug("selfie segmenter %s, input %s, %d threads", self.model_path, self.input_size, num_threads)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Mattes for one frame or a batch.

        Args:
            frames: RGB uint8 frames.

        Returns:
            float32 person probability in [0, 1] at the input resolution.

        Shape:
            - frames: :math:`(H, W, 3)` or :math:`(N, H, W, 3)`
            - output: :math:`(H, W)` or :math:`(N, H, W)`
        """
        if self._interp is None:
            raise RuntimeError("SelfieSegmenter is closed")
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"frames must be RGB uint8, got dtype {frames.dtype}")
        if frames.ndim not in (3, 4) or frames.shape[-1] != 3 or 0 in frames.shape[-3:-1]:
            raise ValueError(f"frames must be (H, W, 3) or (N, H, W, 3) with H, W > 0, got {frames.shape}")
        if frames.ndim == 3:
            return self._one(frames)
        out = np.empty(frames.shape[:3], np.float32)
        for i, frame in enumerate(frames):
            out[i] = self._one(frame)
        return out

    def _one(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        ih, iw = self.input_size
        # INTER_AREA when shrinking: bilinear would alias fine texture (hair, stripes) into the network input.
        interp = cv2.INTER_AREA if (h > ih or w > iw) else cv2.INTER_LINEAR
        x = cv2.resize(frame, (iw, ih), interpolation=interp).astype(np.float32) * (1.0 / 255.0)
        self._interp.set_tensor(self._in_index, x[None])
        self._interp.invoke()
        prob = self._interp.get_tensor(self._out_index)[0, :, :, 0]
        if (h, w) != (ih, iw):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0).astype(np.float32, copy=False)

    def close(self) -> None:
        """Free the interpreter; calling the segmenter afterwards raises ``RuntimeError``."""
        self._interp = None

    def __enter__(self) -> "SelfieSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_matter(model_path: str | os.PathLike | None = None, num_threads: int = 2) -> SelfieSegmenter | None:
    """A :class:`SelfieSegmenter`, or ``None`` when it cannot be made, so that the caller falls back.

    The reason (which file is missing, where it was looked for, how to get it) is logged as a warning; the
    caller should then use :func:`hull_matte` and record :data:`HULL_SOURCE` as the matte source.

    Args:
        model_path: explicit ``.tflite`` path, or ``None`` for the usual search.
        num_threads: CPU threads for the interpreter.

    Returns:
        the segmenter, or ``None`` if the model file or the LiteRT runtime is missing.
    """
    try:
        return SelfieSegmenter(model_path, num_threads=num_threads)
    except AssetMissingError as err:
        log.warning("%s", err)
    except ImportError as err:
        log.warning("the LiteRT runtime (ai_edge_litert) is not importable (%s); the selfie segmenter is off", err)
    return None


def hull_matte(points: np.ndarray, height: int, width: int, dilate: float = 0.08,
               feather: float = 0.04) -> np.ndarray:
    """Fallback matte from the convex hull of 2D face landmarks.

    The hull is grown by ``dilate * size`` and given a Gaussian edge of standard deviation
    ``feather * size``, where ``size`` is the larger side of the hull's bounding box, so the matte scales with
    the face. The edge is computed from the signed distance to the hull, which for a convex region equals
    blurring the dilated mask with a Gaussian (exactly along straight edges), without its cost growing with
    the blur radius.

    Frames whose points are not all finite (no face tracked) get an all-zero matte.

    Args:
        points: landmarks in pixel coordinates (x right, y down); extra trailing coordinates (z) are ignored.
        height: output height in pixels.
        width: output width in pixels.
        dilate: growth of the hull as a fraction of its size (>= 0).
        feather: Gaussian edge width (sigma) as a fraction of the hull size (>= 0; 0 gives a hard edge).

    Returns:
        float32 matte in [0, 1].

    Shape:
        - points: :math:`(P, D)` or :math:`(N, P, D)`, :math:`D \\ge 2`, :math:`P \\ge 3`
        - output: :math:`(H, W)` or :math:`(N, H, W)`
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim not in (2, 3) or points.shape[-1] < 2 or points.shape[-2] < 3:
        raise ValueError(f"points must be (P, >=2) or (N, P, >=2) with P >= 3, got {points.shape}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    if not (dilate >= 0 and feather >= 0):
        raise ValueError(f"dilate and feather must be >= 0, got dilate={dilate}, feather={feather}")
    if points.ndim == 2:
        return _hull_matte_one(points[:, :2], int(height), int(width), dilate, feather)
    out = np.empty((len(points), int(height), int(width)), np.float32)
    for i, p in enumerate(points):
        out[i] = _hull_matte_one(p[:, :2], int(height), int(width), dilate, feather)
    return out


# Fixed-point bits for cv2.fillConvexPoly, so the hull edge is placed to 1/16 pixel rather than rounded.
_SHIFT = 4
# Beyond this many sigmas past the grown hull the matte is below 3e-5: treated as 0.
_TAIL = 4.0
_FAR = 1e6


def _hull_matte_one(p: np.ndarray, h: int, w: int, dilate: float, feather: float) -> np.ndarray:
    if not np.isfinite(p).all():
        return np.zeros((h, w), np.float32)
    size = float(np.max(p.max(0) - p.min(0)))
    if size <= 0:
        raise ValueError("landmarks are all at one point; cannot build a hull matte")
    reach, sigma = dilate * size, feather * size
    # Rasterise on a canvas padded by the matte's reach: a hull partly outside the frame then still has its
    # true distance field inside the frame, and parts beyond the padding cannot affect the frame. The cap only
    # bites for hulls several times the frame's size, where the edge is far outside the frame anyway.
    pad = int(min(np.ceil(reach + _TAIL * sigma), max(h, w))) + 2
    hp, wp = h + 2 * pad, w + 2 * pad
    # Clipping keeps fixed-point coordinates well inside int32; at 1e6 px it cannot visibly bend a hull edge.
    q = np.clip(p + pad, -_FAR, _FAR)
    hull = cv2.convexHull(np.round(q * (1 << _SHIFT)).astype(np.int32))
    inside = np.zeros((hp, wp), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    if not inside.any():
        return np.zeros((h, w), np.float32)
    # Precise L2 distance (px) from each pixel to the nearest pixel of the other set.
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Half a pixel moves the zero level from pixel centres onto the boundary between the two sets.
    signed = np.where(inside > 0, 0.5 - d_in, d_out - 0.5)[pad:pad + h, pad:pad + w]
    margin = signed - reach
    if sigma <= 0:
        return (margin <= 0).astype(np.float32)
    return ndtr(-margin / sigma).astype(np.float32)


def smooth_mattes(prev: np.ndarray | None, cur: np.ndarray, alpha: float = 0.7,
                  uncertainty_weighted: bool = True) -> np.ndarray:
    """Blend a matte with the previous frame's to reduce flicker.

    With ``uncertainty_weighted`` (default), only uncertain pixels of ``cur`` lean on ``prev``, as MediaPipe's
    segmentation smoothing does: the weight of ``prev`` is ``alpha * u``, with ``u`` the binary entropy of
    ``cur`` (1 at 0.5, 0 at 0 and 1). Confident pixels follow ``cur`` at once, so a moving head leaves no
    ghost, while soft edges that flip between frames are steadied. Without it, it is a plain exponential
    moving average, ``alpha * prev + (1 - alpha) * cur``, which also lags behind motion.

    Run it causally over a clip, feeding back its own output: ``prev = smooth_mattes(prev, matte)``.

    Args:
        prev: the previous smoothed matte, or ``None`` for the first frame (``cur`` is returned).
        cur: the current raw matte in [0, 1].
        alpha: weight of the previous matte, in [0, 1) (0 turns smoothing off).
        uncertainty_weighted: scale the weight by the uncertainty of ``cur``.

    Returns:
        float32 matte in [0, 1].

    Shape:
        - prev, cur, output: :math:`(H, W)` (or any shape, the same for both)
    """
    cur = np.asarray(cur, dtype=np.float32)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    if prev is None:
        return cur.copy()
    prev = np.asarray(prev, dtype=np.float32)
    if prev.shape != cur.shape:
        raise ValueError(f"prev and cur must have the same shape, got {prev.shape} and {cur.shape}")
    weight = np.float32(alpha)
    if uncertainty_weighted:
        c = np.clip(cur, 1e-6, 1.0 - 1e-6)
        weight = weight * (-(c * np.log2(c) + (1.0 - c) * np.log2(1.0 - c)))
    return (cur + weight * (prev - cur)).astype(np.float32, copy=False)
