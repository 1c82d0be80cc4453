"""Static background plate of a clip: per-pixel temporal median of what the matte says is not the person.

The camera is assumed still (or the frames already stabilised, e.g. in a fixed crop). Each frame contributes
the pixels outside its (dilated) foreground; the plate is their per-pixel median, which ignores the person
passing through as long as a pixel shows background in more than half of its kept samples. Pixels that never
showed background (usually behind the head the whole clip) are inpainted and flagged in ``seen``.

Frames are streamed: :class:`BackgroundEstimator` keeps at most ``max_samples`` of them, spread evenly over the
whole clip without knowing its length in advance, so memory is bounded by ``max_samples * H * W * 4`` bytes.

Example:
    >>> est = BackgroundEstimator(h, w)
    >>> for frame, matte in zip(frames, mattes):
    ...     est.add(frame, matte)
    >>> plate, seen = est.result()
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from selfie_avatar.utils.log import get_logger

log = get_logger("prepare.background")

# Sort key that places foreground observations after every real value (0..255) of a pixel.
_MISSING = np.uint16(0xFFFF)
# Fill colour where no pixel anywhere was ever background: nothing to inpaint from.
_NO_DATA_GREY = 127
_BLOCK_ELEMS = 1 << 23


class BackgroundEstimator:
    """Streaming background plate from frames and their mattes.

    Sampling: frame ``i`` (counting from 0 over all frames added) is kept when ``i % k == 0``. ``k`` starts
    at ``stride``; when the buffer is full and another frame is due, ``k`` doubles and the kept frames that
    are no longer multiples of it are dropped. The kept frames are therefore always every ``k``-th frame from
    the first, between ``max_samples / 2`` and ``max_samples`` of them, spanning the whole clip so far.

    Args:
        height: frame height in pixels.
        width: frame width in pixels.
        max_samples: most frames kept (>= 2).
        stride: initial sampling stride (>= 1); e.g. the frame rate to start at one sample a second.
        fg_threshold: matte value from which a pixel counts as the person.
        dilate_px: foreground grown by this many pixels before it is excluded, because soft matte edges,
            hair and motion blur carry a mix of person and background.
        inpaint_radius: ``cv2.inpaint`` (Telea) neighbourhood radius for never-seen pixels; ``None`` picks
            ``max(3, round(0.01 * max(height, width)))``.

    Attributes:
        stride: the current sampling stride ``k`` (grows as the buffer fills).

    Raises:
        ValueError: a bad size or parameter.
    """

    def __init__(self, height: int, width: int, max_samples: int = 120, stride: int = 1,
                 fg_threshold: float = 0.5, dilate_px: int = 4, inpaint_radius: float | None = None) -> None:
        if int(height) < 1 or int(width) < 1:
            raise ValueError(f"height and width must be >= 1, got {height}x{width}")
        if int(max_samples) < 2:
            raise ValueError(f"max_samples must be >= 2, got {max_samples}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not 0.0 < fg_threshold <= 1.0:
            raise ValueError(f"fg_threshold must be in (0, 1], got {fg_threshold}")
        if int(dilate_px) < 0:
            raise ValueError(f"dilate_px must be >= 0, got {dilate_px}")
        if inpaint_radius is not None and inpaint_radius <= 0:
            raise ValueError(f"inpaint_radius must be > 0, got {inpaint_radius}")
        self.height, self.width = int(height), int(width)
        self.max_samples = int(max_samples)
        self.stride = int(stride)
        self.fg_threshold = float(fg_threshold)
        self.dilate_px = int(dilate_px)
        self.inpaint_radius = (max(3.0, round(0.01 * max(self.height, self.width))) if inpaint_radius is None
                               else float(inpaint_radius))
        self._kernel = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.dilate_px + 1,) * 2)
                        if self.dilate_px > 0 else None)
        # np.empty only reserves address space; pages are touched as samples arrive.
        self._frames = np.empty((self.max_samples, self.height, self.width, 3), np.uint8)
        self._bg = np.empty((self.max_samples, self.height, self.width), bool)
        self._indices: list[int] = []
        self._count = 0

    @property
    def num_added(self) -> int:
        """Frames passed to :meth:`add` so far."""
        return self._count

    @property
    def sample_indices(self) -> list[int]:
        """Indices (in order of :meth:`add`) of the frames currently kept."""
        return list(self._indices)

    def add(self, frame: np.ndarray, matte: np.ndarray, face_mask: np.ndarray | None = None) -> bool:
        """Offer one frame.

        Args:
            frame: RGB (or any 3-channel) uint8 frame.
            matte: person matte in [0, 1] (float or bool).
            face_mask: pixels known to be the person (e.g. a landmark hull), or ``None``.

        Returns:
            whether the frame was kept as a sample.

        Shape:
            - frame: :math:`(H, W, 3)`
            - matte: :math:`(H, W)`
            - face_mask: :math:`(H, W)`
        """
        frame, matte, face_mask = self._check(frame, matte, face_mask)
        index = self._count
        self._count += 1
        if index % self.stride:
            return False
        if len(self._indices) == self.max_samples:
            self._thin()
            if index % self.stride:
                return False
        fg = matte >= self.fg_threshold
        if face_mask is not None:
            fg |= face_mask
        if self._kernel is not None:
            fg = cv2.dilate(fg.view(np.uint8), self._kernel).view(bool)
        slot = len(self._indices)
        self._frames[slot] = frame
        np.logical_not(fg, out=self._bg[slot])
        self._indices.append(index)
        return True

    def _check(self, frame, matte, face_mask):
        frame, matte = np.asarray(frame), np.asarray(matte)
        hw = (self.height, self.width)
        if frame.shape != hw + (3,):
            raise ValueError(f"frame must be {hw + (3,)}, got {frame.shape}")
        if frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8, got {frame.dtype}")
        if matte.shape != hw:
            raise ValueError(f"matte must be {hw}, got {matte.shape}")
        if matte.dtype.kind not in "fb":
            # An integer matte is almost always 0..255; comparing it with a [0, 1] threshold would be wrong.
            raise ValueError(f"matte must be float in [0, 1] or bool, got {matte.dtype} (divide uint8 by 255)")
        if face_mask is not None:
            face_mask = np.asarray(face_mask, dtype=bool)
            if face_mask.shape != hw:
                raise ValueError(f"face_mask must be {hw}, got {face_mask.shape}")
        return frame, matte, face_mask

    def _thin(self) -> None:
        self.stride *= 2
        keep = [j for j, i in enumerate(self._indices) if i % self.stride == 0]
        # keep is increasing and keep[n] >= n, so moving rows forward in order never overwrites one still needed.
        for n, j in enumerate(keep):
            if n != j:
                self._frames[n] = self._frames[j]
                self._bg[n] = self._bg[j]
        self._indices = [self._indices[j] for j in keep]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The background plate from the kept samples.

        Each pixel is the median of its background observations (for an even count, the mean of the two
        middle values, rounded). Pixels never observed as background are filled by Telea inpainting from the
        seen ones around them.

        Returns:
            ``(background, seen)``: uint8 plate and a bool map, False where the plate was inpainted.

        Shape:
            - background: :math:`(H, W, 3)`
            - seen: :math:`(H, W)`

        Raises:
            ValueError: no frame was kept.
        """
        n = len(self._indices)
        if n == 0:
            raise ValueError("no frames were added to the background estimator")
        bg = self._bg[:n]
        seen = bg.any(0)
        plate = np.zeros((self.height, self.width, 3), np.uint8)
        # Row blocks bound the temporary (16-bit, samples-last copy) to about _BLOCK_ELEMS values.
        rows = max(1, _BLOCK_ELEMS // (self.width * 3 * n))
        for y in range(0, self.height, rows):
            plate[y:y + rows] = _masked_median(self._frames[:n, y:y + rows], bg[:, y:y + rows])
        plate[~seen] = 0
        if not seen.any():
            log.warning("no pixel was ever background in %d samples; the plate is flat grey", n)
            plate[:] = _NO_DATA_GREY
        elif not seen.all():
            hole = (~seen).view(np.uint8)
            plate = cv2.inpaint(plate, hole, self.inpaint_radius, cv2.INPAINT_TELEA)
            log.debug("background: %.1f%% of pixels never seen, inpainted", 100.0 * hole.mean())
        return plate, seen


def _masked_median(frames: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Per-pixel median over samples of (n, h, w, 3) uint8 ``frames`` where (n, h, w) ``bg`` is True.

    Sort-based: foreground samples get a key above 255, so after sorting along the sample axis the ``c``
    background values of a pixel come first and its median sits at ``(c-1)//2`` and ``c//2`` (mean of the
    two, half-way values rounded up). Pixels with no background sample come out as garbage; the caller masks
    them.
    """
    vals = np.ascontiguousarray(np.moveaxis(frames, 0, -1), dtype=np.uint16)  # (h, w, 3, n)
    bg_t = np.moveaxis(bg, 0, -1)[:, :, None, :]  # (h, w, 1, n)
    np.copyto(vals, _MISSING, where=~bg_t)
    vals.sort(axis=-1)
    c = np.maximum(bg_t.sum(-1, dtype=np.intp, keepdims=True), 1)
    c = np.broadcast_to(c, vals.shape[:-1] + (1,))
    lo = np.take_along_axis(vals, (c - 1) // 2, axis=-1)[..., 0]
    hi = np.take_along_axis(vals, c // 2, axis=-1)[..., 0]
    return ((lo.astype(np.uint32) + hi + 1) // 2).astype(np.uint8)


def estimate_background(frames: np.ndarray | Iterable[np.ndarray], mattes: np.ndarray | Iterable[np.ndarray],
                        face_masks: np.ndarray | Iterable[np.ndarray] | None = None,
                        **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Background plate of a whole clip; see :class:`BackgroundEstimator`.

    Args:
        frames: uint8 frames, an array or an iterable of arrays (e.g. a video reader).
        mattes: one person matte per frame.
        face_masks: one bool mask per frame, or ``None``.
        **kwargs: :class:`BackgroundEstimator` options (``max_samples``, ``stride``, ``fg_threshold``,
            ``dilate_px``, ``inpaint_radius``).

    Returns:
        ``(background, seen)`` as :meth:`BackgroundEstimator.result`.

    Shape:
        - frames: :math:`(N, H, W, 3)`
        - mattes: :math:`(N, H, W)`
        - face_masks: :math:`(N, H, W)`
        - background: :math:`(H, W, 3)`; seen: :math:`(H, W)`

    Raises:
        ValueError: shapes disagree, the counts of frames, mattes and masks differ, or there are no frames.
    """
    est: BackgroundEstimator | None = None
    masks = iter(face_masks) if face_masks is not None else None
    mattes = iter(mattes)
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if est is None:
            if frame.ndim != 3:
                raise ValueError(f"each frame must be (H, W, 3), got {frame.shape}")
            est = BackgroundEstimator(frame.shape[0], frame.shape[1], **kwargs)
        matte = next(mattes, None)
        if matte is None:
            raise ValueError(f"fewer mattes than frames ({i})")
        mask = None
        if masks is not None:
            mask = next(masks, None)
            if mask is None:
                raise ValueError(f"fewer face masks than frames ({i})")
        est.add(frame, matte, mask)
    if est is None:
        raise ValueError("no frames given")
    if next(mattes, None) is not None:
        raise ValueError(f"more mattes than frames ({est.num_added})")
    if masks is not None and next(masks, None) is not None:
        raise ValueError(f"more face masks than frames ({est.num_added})")
    return est.result()
