"""Read and write videos with PyAV: probe, stream frames at display geometry, encode H.264 atomically.

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

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np
from tqdm.auto import tqdm

from selfie_avatar.errors import VideoError
from selfie_avatar.utils.atomic import atomic_path
from selfie_avatar.utils.log import get_logger

__all__ = ["VideoInfo", "probe_video", "iter_frames", "read_video", "VideoWriter", "write_video"]

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


class VideoWriter:
    """Encode RGB frames to H.264 (yuv420p, BT.709) and move the file into place only when writing succeeds.

    Frames are encoded into a temporary file beside ``path``; leaving the ``with`` block normally renames it onto
    ``path``, and leaving it through an exception deletes it, so ``path`` never holds a half-written video.
    Frames with an odd width or height are padded by repeating their last column or row (H.264 4:2:0 needs even
    sizes), never scaled, so the output is at most one pixel larger.

    Example:
        >>> with VideoWriter("out.mp4", fps=30, audio_from="selfie.mp4") as writer:
        ...     writer.write(frame)

    Args:
        path: output file (``.mp4`` recommended; the container follows the suffix).
        fps: frame rate.
        audio_from: a video whose first audio stream is copied (re-encoded to AAC, cut where the video ends); a
            file without audio gives a silent output.
        crf: x264 constant rate factor: 0 is lossless, 18 is visually lossless, 23 is x264's default.
        preset: x264 speed/size trade-off (``ultrafast`` ... ``veryslow``).

    Raises:
        ValueError: ``fps`` or ``crf`` is out of range.
        VideoError: ``audio_from`` does not exist or is not a readable media file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        crf: int = 18,
        *,
        preset: str = "medium",
    ) -> None:
        if not (isinstance(fps, (int, float, Fraction, np.number)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        if audio_from is not None and not Path(audio_from).is_file():
            raise VideoError(f"{audio_from} does not exist; pass the original video as audio_from or None")
        self.path, self.fps, self.crf, self.preset = Path(path), fps, int(crf), preset
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.frames_written = 0
        self._rate = _rate_fraction(fps)
        self._stack: ExitStack | None = None
        self._container = self._stream = self._audio = None
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given to write()

    def __enter__(self) -> "VideoWriter":
        self._stack = ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            options = {"movflags": "faststart"} if tmp.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
            self._container = self._stack.enter_context(av.open(str(tmp), "w", options=options))
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame.

        Args:
            frame: (H, W, 3) uint8 RGB; every frame must have the first frame's size.

        Raises:
            RuntimeError: called outside the ``with`` block.
            ValueError: wrong shape, dtype or size.
        """
        if self._container is None:
            raise RuntimeError("VideoWriter.write() must be called inside a 'with VideoWriter(...)' block")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._start(frame.shape[0], frame.shape[1])
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, but the video is "
                             f"{self._size[1]}x{self._size[0]}; resize frames before writing")
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            # Replicating the edge keeps the padding from bleeding a dark line into the 2x2 chroma blocks.
            frame = cv2.copyMakeBorder(frame, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # Convert ourselves so the matrix matches the BT.709 tag players will read.
        av_frame = av_frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        av_frame.pts = self.frames_written
        av_frame.time_base = self._stream.codec_context.time_base
        for packet in self._stream.encode(av_frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.mux_until(self.frames_written / self._rate)

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                self._finish()
        except BaseException as error:
            # Unwinding with the error deletes the temporary file; then the error propagates.
            self._container = None
            stack.__exit__(type(error), error, error.__traceback__)
            raise
        self._container = None
        return bool(stack.__exit__(exc_type, exc, tb))

    def _start(self, height: int, width: int) -> None:
        self._size = (height, width)
        stream = self._container.add_stream(
            "libx264", rate=self._rate, options={"crf": str(self.crf), "preset": self.preset}
        )
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = 1 / self._rate
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1  # BT.709, limited range
        self._stream = stream
        # Streams must all exist before the first packet is muxed (that writes the header).
        if self.audio_from is not None:
            audio = _AudioCopier(self.audio_from, self._container)
            self._stack.callback(audio.close)
            self._audio = audio if audio.present else None

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise VideoError(f"no frames were written to {self.path}; nothing to save")
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.mux_until(self.frames_written / self._rate)
            self._audio.flush()
        # Closing writes the index (and runs the faststart pass) before atomic_path renames the file.
        self._container.close()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
) -> Path:
    """Encode an iterable of (H, W, 3) uint8 RGB frames with :class:`VideoWriter`.

    Args:
        path: output file.
        frames: the frames, consumed one at a time (a generator keeps memory flat).
        fps: frame rate.
        audio_from: video whose audio to copy, or ``None``.
        crf: x264 quality.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        VideoError: ``frames`` is empty or ``audio_from`` is missing.
        ValueError: as :meth:`VideoWriter.write`.
    """
    with VideoWriter(path, fps, audio_from=audio_from, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


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
    for frame in _decode_tolerant(container, stream, errors=[]):
        return _clockwise(frame.rotation)
    raise VideoError(f"{path}: no video frame could be decoded; the file is corrupt or truncated "
                     "(an interrupted copy or recording?). Copy or export it again")


def _decode_tolerant(container, stream, errors: list) -> Iterator:
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
        for frame in _decode_tolerant(container, stream, errors):
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


# ---------------------------------------------------------------------------------------------------- writing


def _rate_fraction(fps: float) -> Fraction:
    """A rational rate for the encoder: 25.0 -> 25, 12.5 -> 25/2, 29.97002997 (NTSC) -> 30000/1001."""
    simple = Fraction(float(fps)).limit_denominator(1001)
    if abs(simple - float(fps)) < 1e-6:
        return simple
    return Fraction(float(fps)).limit_denominator(100_000)


class _AudioCopier:
    """Re-encode the first audio stream of ``source`` as AAC into ``output``, in step with the video.

    :meth:`mux_until` is called after each video frame so audio and video packets interleave in the file, and
    audio stops where the video stops.
    """

    def __init__(self, source: Path, output) -> None:
        try:
            self._input = av.open(str(source))
        except av.FFmpegError as error:
            raise VideoError(f"cannot read audio from {source} ({error}); pass a readable video as audio_from "
                             "or None") from error
        self.source, self._output = source, output
        self.present = bool(self._input.streams.audio)
        if not self.present:
            logger.info("%s has no audio stream; writing the video without sound", source)
            return
        self._in_stream = self._input.streams.audio[0]
        in_ctx = self._in_stream.codec_context
        layout = "mono" if in_ctx.layout.nb_channels == 1 else "stereo"  # AAC-LC: keep it simple, downmix more
        self._rate = in_ctx.sample_rate or 48000
        self._out = output.add_stream("aac", rate=self._rate)
        self._out.layout = layout
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self._rate, frame_size=1024)
        self._frames = self._resampled()
        self._samples = 0

    def _resampled(self) -> Iterator:
        errors: list = []
        for frame in _decode_tolerant(self._input, self._in_stream, errors):
            frame.pts = None  # timing comes from the sample count; source timestamps may start anywhere
            yield from self._resampler.resample(frame)
        yield from self._resampler.resample(None)
        if errors:
            logger.warning("%s: %d audio packets could not be decoded; the audio may have gaps", self.source,
                           len(errors))

    def mux_until(self, seconds: Fraction) -> None:
        """Encode and mux the audio frames that start before ``seconds``."""
        while self._samples < seconds * self._rate:
            frame = next(self._frames, None)
            if frame is None:
                return
            frame.pts, frame.time_base = self._samples, Fraction(1, self._rate)
            self._samples += frame.samples
            for packet in self._out.encode(frame):
                self._output.mux(packet)

    def flush(self) -> None:
        for packet in self._out.encode(None):
            self._output.mux(packet)

    def close(self) -> None:
        self._input.close()
