"""Read videos with PyAV: probe, and stream frames at display geometry (writing: ``video_writer.py``).

Phone footage is rarely stored the way it is shown: portrait clips are usually landscape frames plus a rotation
in the container's display matrix, and some cameras store non-square pixels (a sample aspect ratio other than
1). Everything downstream assumes upright frames with square pixels, so :func:`iter_frames` applies both and
:class:`VideoInfo` reports the size frames will actually have.

Conventions:
    * Frames are RGB ``uint8`` arrays of shape (H, W, 3).
    * :attr:`VideoInfo.rotation` is the clockwise turn needed to show the stored frames upright (the meaning of
      the legacy ``rotate`` tag; FFmpeg's ``autorotate`` and OpenCV's ``CAP_PROP_ORIENTATION_META`` agree).
      PyAV's ``VideoFrame.rotation`` is the *counter-clockwise* angle, so ``rotation = -frame.rotation mod 360``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
from tqdm.auto import tqdm

from selfie_avatar.errors import VideoError
from selfie_avatar.utils.log import get_logger

__all__ = ["VideoInfo", "probe_video", "iter_frames", "read_video"]

logger = get_logger("io")

# FFmpeg opens stills through its image demuxers; naming them lets us tell the user "that is a photo".
_STILL_IMAGE_FORMATS = {"image2", "image2pipe"}
# FFmpeg's "tty" demuxer renders any text file as ANSI art video, so a .txt would otherwise look like a video.
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
# Packets that may fail to decode in a row before the rest of the stream is given up as corrupt.
_MAX_BAD_PACKETS = 64
_CV2_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class VideoInfo:
    """What :func:`probe_video` learns about a video without decoding it all.

    Attributes:
        path: the file.
        width: display width in pixels: what :func:`iter_frames` yields, after the sample aspect ratio and the
            rotation are applied.
        height: display height in pixels.
        coded_width: width of the frames as stored.
        coded_height: height of the frames as stored.
        fps: average frame rate.
        num_frames: frame count from the container, estimated from duration x fps where the container has no
            count, or ``None`` where neither is known. A truncated file may decode fewer.
        duration: seconds, or ``None`` where unknown.
        rotation: clockwise degrees (0, 90, 180 or 270) to turn the stored frames to show them upright.
        sample_aspect_ratio: width of one stored pixel over its height (1.0 where unset).
        has_audio: the container has at least one audio stream.
        codec: the video codec's FFmpeg name (``h264``, ``hevc``, ...).
    """

    path: Path
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: float
    num_frames: int | None
    duration: float | None
    rotation: int
    sample_aspect_ratio: float
    has_audio: bool
    codec: str


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's geometry, rate and length, decoding only its first frame (to read the rotation).

    Args:
        path: a video file.

    Returns:
        The :class:`VideoInfo`.

    Raises:
        VideoError: the file is missing, is not a video (random bytes, text, a still image), has no video stream,
            or not one frame of it decodes.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        rotation = _first_frame_rotation(container, stream, path)
        return _describe(container, stream, path, rotation)


def iter_frames(
    path: str | os.PathLike, max_frames: int | None = None, progress: bool = False
) -> Iterator[np.ndarray]:
    """Stream a video's frames upright and with square pixels, one at a time.

    The file is checked (see :func:`probe_video`) when this is called; frames are then decoded lazily as the
    returned generator is consumed, so memory does not grow with the video's length.

    A truncated or corrupt file yields every frame that decodes and logs a warning naming the file and how many
    frames were read; it is only an error where no frame decodes at all.

    Args:
        path: a video file.
        max_frames: stop after this many frames (``None`` for all).
        progress: show a tqdm progress bar.

    Returns:
        A generator of (H, W, 3) uint8 RGB frames, H and W as in :func:`probe_video`'s ``height`` and ``width``.

    Raises:
        VideoError: as :func:`probe_video`.
        ValueError: ``max_frames`` is not a positive integer.
    """
    _check_max_frames(max_frames)
    return _stream_frames(probe_video(path), max_frames, progress)


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole (short) video into one array, for tests and notebooks.

    This holds every frame in memory (a minute of 1080p is ~11 GB); use :func:`iter_frames` for real footage.

    Args:
        path: a video file.
        max_frames: stop after this many frames.

    Returns:
        (N, H, W, 3) uint8 RGB frames at display geometry, and the file's :class:`VideoInfo`.

    Raises:
        VideoError: as :func:`iter_frames`.
    """
    _check_max_frames(max_frames)
    info = probe_video(path)
    return np.stack(list(_stream_frames(info, max_frames, progress=False))), info


# ---------------------------------------------------------------------------------------------------- reading


def _check_max_frames(max_frames: int | None) -> None:
    if max_frames is not None and (not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")


def _open_input(path: Path):
    if not path.exists():
        raise VideoError(f"{path} does not exist; check the path to your selfie video")
    if not path.is_file():
        raise VideoError(f"{path} is not a file; pass a video file such as an .mp4 or .mov")
    try:
        return av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error.__class__.__name__
        raise VideoError(
            f"{path} is not a readable video (FFmpeg: {reason}): it is not a video, or it is incomplete "
            "(an interrupted recording or copy). Pass an .mp4/.mov/.mkv recording, or copy/export it again"
        ) from error


def _video_stream(container, path: Path):
    format_names = set(container.format.name.split(","))
    streams = list(container.streams.video)
    if format_names & _STILL_IMAGE_FORMATS or any(name.endswith("_pipe") for name in format_names):
        raise VideoError(f"{path} is a still image, not a video; prepare needs a video of your face "
                         "(a few seconds turning your head), e.g. an .mp4 from your phone")
    if not streams:
        raise VideoError(f"{path} has no video stream (audio or data only); pass a file that contains video")
    if streams[0].codec_context.name in _TEXT_CODECS:
        raise VideoError(f"{path} looks like a text file, not a video; pass an .mp4/.mov recording")
    # Some MP4s carry a cover picture as an extra "video" stream; prefer the real one.
    attached = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    for stream in streams:
        if attached is None or not (stream.disposition & attached):
            return stream
    return streams[0]


def _first_frame_rotation(container, stream, path: Path) -> int:
    # PyAV 18 exposes the display matrix on decoded frames only, so decode one.
    for frame in decode_tolerant(container, stream, errors=[]):
        return _clockwise(frame.rotation)
    raise VideoError(f"{path}: no video frame could be decoded; the file is corrupt or truncated "
                     "(an interrupted copy or recording?). Copy or export it again")


def decode_tolerant(container, stream, errors: list) -> Iterator:
    """Decode ``stream``, skipping packets that fail and stopping (not raising) where the file ends early.

    Decode and demux errors are appended to ``errors`` so the caller can report them once.
    """
    if stream.type == "video":
        stream.codec_context.thread_type = "AUTO"
    bad_in_a_row = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as error:
            # Demuxing past the end of a truncated file: flush what the decoder still holds, then stop.
            errors.append(error)
            try:
                yield from stream.codec_context.decode(None)
            except av.FFmpegError as flush_error:
                errors.append(flush_error)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as error:
            errors.append(error)
            bad_in_a_row += 1
            if bad_in_a_row > _MAX_BAD_PACKETS:
                return
            continue
        bad_in_a_row = 0
        yield from frames


def _describe(container, stream, path: Path, rotation: int) -> VideoInfo:
    ctx = stream.codec_context
    coded_w, coded_h = ctx.width, ctx.height
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    sar = float(sar) if sar else 1.0  # FFmpeg uses 0/1 for "unknown", which means square
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    fps = float(rate) if rate else (stream.frames / duration if stream.frames and duration else 0.0)
    if stream.frames:
        num_frames = int(stream.frames)
    elif duration and fps:
        num_frames = max(1, int(round(duration * fps)))
    else:
        num_frames = None
    width, height = _display_size(coded_w, coded_h, sar, rotation)
    return VideoInfo(
        path=path, width=width, height=height, coded_width=coded_w, coded_height=coded_h, fps=fps,
        num_frames=num_frames, duration=duration, rotation=rotation, sample_aspect_ratio=sar,
        has_audio=len(container.streams.audio) > 0, codec=ctx.name,
    )  # fmt: skip


def _display_size(coded_w: int, coded_h: int, sar: float, rotation: int) -> tuple[int, int]:
    width = max(1, int(round(coded_w * sar)))
    return (coded_h, width) if rotation in (90, 270) else (width, coded_h)


def _clockwise(counter_clockwise: float) -> int:
    clockwise = -float(counter_clockwise) % 360
    degrees = int(round(clockwise / 90)) % 4 * 90
    off = abs(clockwise - degrees) % 360
    if min(off, 360 - off) > 1:
        logger.warning("rotation of %.1f degrees is not a multiple of 90; using %d", clockwise, degrees)
    return degrees


def _stream_frames(info: VideoInfo, max_frames: int | None, progress: bool) -> Iterator[np.ndarray]:
    total = info.num_frames if max_frames is None else min(max_frames, info.num_frames or max_frames)
    errors: list = []
    count, reached_max = 0, False
    with _open_input(info.path) as container, tqdm(
        total=total, desc=info.path.name, unit="frame", disable=not progress, leave=False
    ) as bar:
        stream = _video_stream(container, info.path)
        # A count the container states is exact; one estimated from the duration gets some slack.
        slack = 0 if stream.frames else max(2, int(0.02 * (info.num_frames or 0)))
        for frame in decode_tolerant(container, stream, errors):
            yield _to_display(frame, info)
            count += 1
            bar.update(1)
            if max_frames is not None and count >= max_frames:
                reached_max = True
                break
    if count == 0:
        raise VideoError(f"{info.path}: no video frame could be decoded; the file is corrupt or truncated. "
                         "Copy or export it again")
    expected = info.num_frames
    if errors or (not reached_max and expected is not None and count < expected - slack):
        logger.warning(
            "%s looks truncated or corrupt: read %d of %s frames (%s); continuing with the frames that decoded",
            info.path, count, expected if expected is not None else "?",
            f"{len(errors)} decode errors, first: {errors[0]}" if errors else "the stream ended early",
        )  # fmt: skip


def _to_display(frame, info: VideoInfo) -> np.ndarray:
    """Convert a decoded frame to upright RGB with square pixels at ``info``'s display size."""
    rgb = frame.to_ndarray(format="rgb24")
    # Size after SAR but before rotation; fixed from the probe so a mid-stream resolution change keeps N,H,W,3.
    target_w, target_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    h, w = rgb.shape[:2]
    if (w, h) != (target_w, target_h):
        shrink = target_w * target_h < w * h
        rgb = cv2.resize(rgb, (target_w, target_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    # The first frame's rotation applies to all: a per-frame value could change the shape mid-stream.
    if info.rotation:
        rgb = cv2.rotate(rgb, _CV2_ROTATE[info.rotation])
    return np.ascontiguousarray(rgb)
