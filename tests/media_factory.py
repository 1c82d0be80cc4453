"""Generate small video, image and broken-file inputs for tests, with PyAV and no external tools.

Everything here writes into a folder the caller owns (``tmp_path``); nothing is downloaded. Clips are encoded with
libx264 ``ultrafast`` at high quality so that tests run in well under a second per clip on two cores.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

_AUDIO_RATE = 44100
_AUDIO_FRAME = 1024


def make_clip(
    path: str | os.PathLike,
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float = 25,
    sar: tuple[int, int] | float | Fraction | None = None,
    rotation: int | None = None,
    audio: bool = False,
    *,
    faststart: bool = True,
    crf: int = 10,
    codec: str = "libx264",
) -> Path:
    """Encode RGB frames into an H.264 clip, optionally with non-square pixels, rotation metadata and audio.

    Args:
        path: output file; the container follows the suffix (``.mp4``, ``.mov``, ``.mkv``).
        frames: (N, H, W, 3) uint8 RGB, H and W even, as *coded* (stored) pixels.
        fps: frame rate.
        sar: sample (pixel) aspect ratio written to the stream, e.g. ``(2, 1)`` or ``4 / 3``; ``None`` for square.
        rotation: degrees *clockwise* a player must turn the stored frames to show them upright (the convention of
            the legacy ``rotate`` tag and of :attr:`VideoInfo.rotation`). Written as a display matrix, which is
            what phones write and what FFmpeg (and so PyAV and OpenCV) read.
        audio: add a mono AAC stream with a 440 Hz tone as long as the video.
        faststart: for MP4/MOV put the index before the data, so that a truncated copy still opens and decodes
            its first part (without it, truncation loses the index and nothing decodes).
        crf: x264 quality (lower is better).
        codec: ``libx264`` (H.264), or ``libvpx-vp9`` for a ``.webm`` (VP9; ``crf`` ignored).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: frames are not (N, H, W, 3) uint8 with even H and W, or rotation is not a multiple of 90.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be (N, H, W, 3) uint8 with N >= 1, got {frames.shape} {frames.dtype}")
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"make_clip needs even frame sizes for yuv420p, got {w}x{h}")
    if rotation is not None and rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "faststart"} if faststart and path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), "w", options=options) as container:
        opts = {"preset": "ultrafast", "crf": str(crf)} if codec == "libx264" else {"deadline": "realtime"}
        stream = container.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if sar is not None:
            ratio = Fraction(*sar) if isinstance(sar, tuple) else Fraction(sar).limit_denominator(1000)
            stream.codec_context.sample_aspect_ratio = ratio
        if rotation:
            # PyAV takes counter-clockwise degrees here, the convention of VideoFrame.rotation.
            stream.set_display_rotation(-rotation)
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=_AUDIO_RATE)
            audio_stream.layout = "mono"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _encode_tone(container, audio_stream, seconds=n / float(rate))
    return path


def make_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> Path:
    """Write a media file with a tone and no video stream (``.m4a`` or ``.mp4``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=_AUDIO_RATE)
        stream.layout = "mono"
        _encode_tone(container, stream, seconds)
    return path


def _encode_tone(container: av.container.OutputContainer, stream, seconds: float) -> None:
    total = int(round(seconds * _AUDIO_RATE))
    t = np.arange(total, dtype=np.float64) / _AUDIO_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    for start in range(0, total, _AUDIO_FRAME):
        chunk = tone[start : start + _AUDIO_FRAME]
        chunk = np.pad(chunk, (0, _AUDIO_FRAME - len(chunk)))  # the AAC encoder wants whole frames
        frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
        frame.sample_rate = _AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, _AUDIO_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def make_moving_square_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic clip: a colour gradient with a soft-edged square sliding across it.

    Smooth content keeps the H.264 round-trip error small and predictable, while the motion makes consecutive
    frames differ (so frame order and frame count are observable).

    Args:
        n: number of frames.
        h: height in pixels.
        w: width in pixels.
        seed: picks the square's colour, size and path.

    Returns:
        (n, h, w, 3) uint8 RGB.
    """
    if n < 1 or h < 2 or w < 2:
        raise ValueError(f"need n >= 1 and a frame of at least 2x2, got n={n}, {w}x{h}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    background = np.stack([40 + 120 * xx / w, 60 + 100 * yy / h, 140 - 60 * (xx + yy) / (w + h)], axis=-1)
    colour = rng.uniform(180, 250, size=3).astype(np.float32)
    side = max(2.0, rng.uniform(0.15, 0.3) * min(h, w))
    start = rng.uniform(0, 1, size=2) * [w - side, h - side]
    end = rng.uniform(0, 1, size=2) * [w - side, h - side]
    soft = max(1.0, side / 8)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        x0, y0 = start + (end - start) * (i / max(n - 1, 1))
        # A product of two logistic ramps gives a square with a soft edge: no ringing after compression.
        inside_x = 1 / (1 + np.exp(-(xx - x0) / soft)) * 1 / (1 + np.exp((xx - x0 - side) / soft))
        inside_y = 1 / (1 + np.exp(-(yy - y0) / soft)) * 1 / (1 + np.exp((yy - y0 - side) / soft))
        alpha = (inside_x * inside_y)[..., None]
        out[i] = np.clip(background * (1 - alpha) + colour * alpha, 0, 255).round().astype(np.uint8)
    return out


def truncate_file(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``, like an interrupted download or copy.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_garbage(path: str | os.PathLike, nbytes: int = 4096, seed: int = 0) -> Path:
    """Write ``nbytes`` of seeded random bytes: a file whose name says video but whose content is not.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size=nbytes, dtype=np.uint8).tobytes())
    return path
