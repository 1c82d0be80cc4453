"""Read and write still images: 8-bit RGB photos and 16-bit PNGs for float maps (UV images, masks).

Images in memory are RGB (OpenCV's BGR stays inside this file). Every write is atomic: a crash leaves either the
old file or the new one, never a truncated image.

16-bit PNGs store floats in [0, 1] as ``round(x * 65535)``, an error of at most 7.7e-6. PNG has grey (1 channel),
grey+alpha (2) and RGB (3) layouts, so a 2-channel UV map is stored as grey+alpha and read back as 2 channels.
OpenCV cannot write 2-channel images, so this module encodes those PNGs itself (zlib, "Up" row filter).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.utils.atomic import write_bytes_atomic

__all__ = ["read_image", "write_image", "read_png16", "write_png16", "png_problem"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE_FOR_CHANNELS = {1: 0, 2: 4, 3: 2}  # grey, grey+alpha, RGB
_CHANNELS_FOR_COLOR_TYPE = {0: 1, 4: 2, 2: 3, 6: 4}
_JPEG_SUFFIXES = {".jpg", ".jpeg"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as RGB, turned upright according to its EXIF orientation.

    Args:
        path: a PNG, JPEG, WebP, BMP or TIFF file. Grey and RGBA images are converted to RGB; 16-bit images are
            reduced to 8 bits.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        SelfieAvatarError: the file is missing or is not an image OpenCV can decode.
    """
    path = Path(path)
    data = _read_bytes(path)
    # imdecode rather than imread: it reads non-ASCII paths on every platform and still applies EXIF rotation.
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SelfieAvatarError(f"{path} is not an image OpenCV can read; pass a PNG or JPEG file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: str | os.PathLike, img: np.ndarray, jpeg_quality: int = 95, png_compression: int = 1) -> Path:
    """Write an 8-bit image atomically, PNG or JPEG by the file's suffix.

    Args:
        path: destination ending in ``.png``, ``.jpg`` or ``.jpeg``.
        img: (H, W, 3) uint8 RGB or (H, W) uint8 grey.
        jpeg_quality: JPEG quality 0-100 (ignored for PNG).
        png_compression: zlib level 0-9 for PNG; 1 is several times faster than OpenCV's default of 3 and only
            slightly larger, which suits per-frame writing.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: unsupported suffix, shape or dtype.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".png" and suffix not in _JPEG_SUFFIXES:
        raise ValueError(f"{path}: write_image writes .png, .jpg or .jpeg files, got suffix {path.suffix!r}")
    img = np.asarray(img)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"write_image needs (H, W, 3) or (H, W) uint8, got {img.shape} {img.dtype}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = ([cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if suffix in _JPEG_SUFFIXES
              else [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)])
    ok, encoded = cv2.imencode(".jpg" if suffix in _JPEG_SUFFIXES else ".png", img, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {img.shape} image for {path}")
    write_bytes_atomic(path, encoded.tobytes())
    return path


def write_png16(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """Store a float map in [0, 1] as a 16-bit PNG, atomically.

    Args:
        path: destination, normally ending in ``.png``.
        arr: (H, W) or (H, W, C) float with C in 1..3. Values within 1e-6 outside [0, 1] are clipped (rounding
            noise from upstream maths); anything further out, or NaN, is an error rather than silently clipped.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: wrong shape, non-float dtype, NaN/inf or values outside [0, 1].
    """
    path = Path(path)
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE_FOR_CHANNELS or min(arr.shape[:2]) < 1:
        raise ValueError(f"write_png16 needs (H, W) or (H, W, C) with C in 1..3, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"write_png16 needs floats in [0, 1], got dtype {arr.dtype}; scale integers first")
    if not np.isfinite(arr).all():
        raise ValueError(f"write_png16: the array for {path} contains NaN or inf")
    low, high = float(arr.min()), float(arr.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"write_png16 needs values in [0, 1], got [{low:.6g}, {high:.6g}] for {path}")
    quantised = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)
    if quantised.shape[2] == 2:  # OpenCV cannot write grey+alpha
        write_bytes_atomic(path, _encode_png16(np.ascontiguousarray(quantised)))
        return path
    # OpenCV's encoder is several times faster than zlib from Python; level 1 suits per-frame writing.
    ok, encoded = cv2.imencode(".png", quantised[..., ::-1] if quantised.shape[2] == 3 else quantised[..., 0],
                               [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {arr.shape} 16-bit image for {path}")
    write_bytes_atomic(path, encoded.tobytes())
    return path


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG written by :func:`write_png16` (or any 8/16-bit PNG) as floats in [0, 1].

    Args:
        path: a PNG file.

    Returns:
        float32 (H, W) for a grey PNG, (H, W, 2) for grey+alpha, (H, W, 3) for RGB, (H, W, 4) for RGBA.

    Raises:
        SelfieAvatarError: the file is missing or is not a PNG.
    """
    path = Path(path)
    data = _read_bytes(path)
    if data[:8].tobytes() != _PNG_SIGNATURE or data[12:16].tobytes() != b"IHDR":
        raise SelfieAvatarError(f"{path} is not a PNG file; read_png16 reads maps saved by write_png16")
    color_type = int(data[25])
    if color_type not in _CHANNELS_FOR_COLOR_TYPE:
        raise SelfieAvatarError(f"{path} is a palette PNG; read_png16 expects a grey or RGB map from write_png16")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise SelfieAvatarError(f"{path} is a damaged PNG; write it again")
    channels = _CHANNELS_FOR_COLOR_TYPE[color_type]
    if channels == 2 and decoded.ndim == 3 and decoded.shape[2] == 4:
        # OpenCV expands grey+alpha to BGRA with the grey copied into B, G and R.
        decoded = decoded[..., [0, 3]]
    elif decoded.ndim == 3 and decoded.shape[2] in (3, 4):
        decoded = decoded[..., [2, 1, 0, 3][: decoded.shape[2]]]
    scale = 65535.0 if decoded.dtype == np.uint16 else 255.0
    return decoded.astype(np.float32) / np.float32(scale)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk every complete PNG ends with


def png_problem(path: str | os.PathLike, size: tuple[int, int] | None = None) -> str | None:
    """What is wrong with a PNG file, judged from its first 24 and last 12 bytes only (no decoding), or None.

    Catches what a crash, a full disk or a stray copy leaves: a missing or empty file, another format, a file cut
    short (its IEND chunk is gone) and an image of the wrong size. It does not decode the pixels, so a file whose
    compressed data is corrupt in the middle passes; reading it reports that later.

    Args:
        path: the file.
        size: the expected (width, height), or None for any.

    Returns:
        None for a whole PNG, else a short reason such as ``"missing"`` or ``"cut short"``.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        length = os.fstat(fd).st_size
        head = os.pread(fd, 24, 0)
        tail = os.pread(fd, 12, max(length - 12, 0))
    finally:
        os.close(fd)
    if length == 0:
        return "empty"
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return "not a PNG file"
    if tail != _PNG_END:
        return "cut short (no end marker)"
    if size is not None:
        w, h = struct.unpack(">II", head[16:24])
        if (w, h) != tuple(size):
            return f"{w}x{h} pixels, expected {size[0]}x{size[1]}"
    return None


def _read_bytes(path: Path) -> np.ndarray:
    if not path.exists():
        raise SelfieAvatarError(f"{path} does not exist; check the image path")
    if not path.is_file():
        raise SelfieAvatarError(f"{path} is not a file; pass an image file such as a .png or .jpg")
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise SelfieAvatarError(f"{path} cannot be read ({error.strerror}); check its permissions") from error


def _encode_png16(img: np.ndarray) -> bytes:
    """Encode (H, W, C) uint16 as a 16-bit PNG with C = 1, 2 or 3 (grey, grey+alpha, RGB)."""
    height, width, channels = img.shape
    rows = img.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    # "Up" filter (each row minus the one above) makes smooth maps such as UV gradients compress several-fold.
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]
    scanlines = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOR_TYPE_FOR_CHANNELS[channels], 0, 0, 0)
    return b"".join([
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)),
        _png_chunk(b"IEND", b""),
    ])  # fmt: skip


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
