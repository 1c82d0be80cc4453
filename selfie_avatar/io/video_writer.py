"""Encode RGB frames to H.264 with PyAV, atomically, optionally carrying another file's audio along."""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from selfie_avatar.errors import VideoError
from selfie_avatar.io.video import decode_tolerant
from selfie_avatar.utils.atomic import atomic_path
from selfie_avatar.utils.log import get_logger

logger = get_logger("io")

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
        for frame in decode_tolerant(self._input, self._in_stream, errors):
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
