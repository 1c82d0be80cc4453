"""Tests for selfie_avatar.io.image: 8-bit photos and 16-bit float maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.io import read_image, read_png16, write_image, write_png16
from tests.media_factory import write_garbage


def test_png_round_trip_is_exact(tmp_path, astronaut):
    path = write_image(tmp_path / "face.png", astronaut)
    assert np.array_equal(read_image(path), astronaut)
    # Channel order on disk is the usual one: other tools see red where we wrote red.
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], astronaut)


def test_jpeg_round_trip_is_close(tmp_path, astronaut):
    path = write_image(tmp_path / "face.jpg", astronaut)
    decoded = read_image(path)
    assert decoded.shape == astronaut.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(np.int16) - astronaut).mean() < 3


def test_grey_image_is_read_back_as_rgb(tmp_path, astronaut):
    grey = astronaut[..., 1].copy()
    decoded = read_image(write_image(tmp_path / "grey.png", grey))
    assert decoded.shape == (*grey.shape, 3)
    assert all(np.array_equal(decoded[..., c], grey) for c in range(3))


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, astronaut):
    write_image(tmp_path / "a.png", astronaut)
    write_image(tmp_path / "a.png", astronaut[::2, ::2])  # overwrite in place
    write_png16(tmp_path / "uv.png", np.zeros((4, 4, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "uv.png"]
    assert read_image(tmp_path / "a.png").shape == (256, 256, 3)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(SelfieAvatarError, match="missing.png.*does not exist"):
        read_image(tmp_path / "missing.png")
    garbage = write_garbage(tmp_path / "garbage.jpg", 2000)
    with pytest.raises(SelfieAvatarError, match="garbage.jpg"):
        read_image(garbage)


def test_write_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "a.gif", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(33, 47), (33, 47, 1), (33, 47, 2), (33, 47, 3)])
def test_png16_round_trip_precision(tmp_path, shape):
    values = np.random.default_rng(0).random(shape)
    values.flat[:2] = [0.0, 1.0]  # the ends of the range must survive exactly
    decoded = read_png16(write_png16(tmp_path / "map.png", values))
    assert decoded.dtype == np.float32
    expected_shape = shape[:2] if len(shape) == 2 or shape[2] == 1 else shape
    assert decoded.shape == expected_shape
    assert np.abs(decoded - values.reshape(expected_shape)).max() < 1e-4
    assert decoded.flat[0] == 0.0 and decoded.flat[1] == 1.0


def test_png16_is_a_standard_16_bit_png(tmp_path):
    yy, xx = np.mgrid[0:64, 0:80] / np.array([63.0, 79.0])[:, None, None]
    rgb = np.stack([xx, yy, np.full_like(xx, 0.25)], axis=-1)
    path = write_png16(tmp_path / "rgb.png", rgb)
    other = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert other.dtype == np.uint16 and other.shape == (64, 80, 3)
    assert np.abs(other[..., ::-1] / 65535.0 - rgb).max() < 1e-4
    # A smooth UV-like map compresses well thanks to the row filter.
    assert path.stat().st_size < rgb.size * 2 / 4


def test_read_png16_accepts_8_bit_png(tmp_path):
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    cv2.imwrite(str(tmp_path / "grey8.png"), img)
    assert np.allclose(read_png16(tmp_path / "grey8.png"), img / 255.0)


def test_png16_rejects_bad_input(tmp_path):
    for bad, match in [
        (np.full((4, 4), 1.5), r"\[0, 1\]"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((4, 4), np.uint16), "floats"),
        (np.zeros((4, 4, 4)), "C in 1..3"),
    ]:
        with pytest.raises(ValueError, match=match):
            write_png16(tmp_path / "bad.png", bad)
    assert list(tmp_path.iterdir()) == []
    # Rounding noise just outside the range is clipped, not an error.
    assert read_png16(write_png16(tmp_path / "ok.png", np.full((2, 2), 1 + 1e-9))).max() == 1.0
    with pytest.raises(SelfieAvatarError, match="not a PNG"):
        read_png16(write_garbage(tmp_path / "garbage.png", 100))
    with pytest.raises(SelfieAvatarError, match="does not exist"):
        read_png16(tmp_path / "missing.png")
