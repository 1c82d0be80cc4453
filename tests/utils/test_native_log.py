"""Native log lines are kept out of stderr by default, shown on request, and nothing else written is swallowed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from selfie_avatar.utils import native_log

NATIVE = "W0000 00:00:1796136241.195355   25825 face_landmarker_graph.cc:181] Sets acceleration"


def _native_write(text: str) -> None:
    os.write(2, text.encode())  # beneath sys.stderr, as C++ code writes


def test_native_lines_become_debug_records_and_the_rest_is_written_back(capfd, caplog, monkeypatch):
    monkeypatch.setattr(native_log, "_show", False)
    caplog.set_level(logging.DEBUG, logger="selfie_avatar")
    with native_log.quiet_native_logs("test lib"):
        _native_write(NATIVE + "\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nsomething of ours\n")
    err = capfd.readouterr().err
    assert not [ln for ln in err.splitlines() if native_log.NATIVE_LINE.match(ln)], err  # none as raw lines
    assert "something of ours" in err
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("test lib: W0000" in m for m in debug) and any("XNNPACK" in m for m in debug)


def test_shown_when_asked(capfd, monkeypatch):
    monkeypatch.setattr(native_log, "_show", True)
    with native_log.quiet_native_logs("test lib"):
        _native_write(NATIVE + "\n")
    assert "W0000" in capfd.readouterr().err


def test_stderr_is_restored_when_the_block_raises(capfd, monkeypatch):
    monkeypatch.setattr(native_log, "_show", False)
    with pytest.raises(RuntimeError):
        with native_log.quiet_native_logs("test lib"):
            raise RuntimeError("boom")
    _native_write("after\n")
    assert "after" in capfd.readouterr().err


_LANDMARKER = ("from selfie_avatar.prepare.landmarks import MediaPipeLandmarker\n"
               "import numpy as np\nm = MediaPipeLandmarker()\nm.detect(np.zeros((64, 64, 3), np.uint8))\nm.close()\n"
               "from selfie_avatar.prepare.matte import SelfieSegmenter\nSelfieSegmenter()(np.zeros((64, 64, 3), np.uint8))\n")


@pytest.mark.parametrize("show", [False, True], ids=["default", "SELFIE_AVATAR_NATIVE_LOGS=1"])
def test_mediapipe_and_litert_are_quiet_by_default(show):
    pytest.importorskip("mediapipe")
    from selfie_avatar.assets import resolve_asset

    try:
        resolve_asset("face_landmarker"), resolve_asset("selfie_segmentation")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"model files not installed: {exc}")
    env = {**os.environ, native_log.ENV_SHOW: "1" if show else "0"}
    proc = subprocess.run([sys.executable, "-c", _LANDMARKER], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    native = [ln for ln in proc.stderr.splitlines() if native_log.NATIVE_LINE.match(ln)]
    assert bool(native) == show, proc.stderr
