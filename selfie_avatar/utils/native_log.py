"""Keep the C++ libraries' own log lines (MediaPipe's absl/glog, LiteRT's ``INFO: Created TensorFlow Lite XNNPACK
delegate``) out of the terminal and the notebook unless asked for.

They write straight to file descriptor 2 from native code, beneath Python's ``sys.stderr``, so no Python logging
setting reaches them and MediaPipe reads no environment variable for its level. :func:`quiet_native_logs` points
descriptor 2 at a temporary file while a native model is created (when they print; inference is quiet), then
puts it back: the native lines become this package's DEBUG records (``--verbose`` shows them, as does
``SELFIE_AVATAR_NATIVE_LOGS=1``, which leaves descriptor 2 alone), and anything else written meanwhile (a Python
warning, our own log lines) is written back unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

from selfie_avatar.utils.log import get_logger

log = get_logger("native")

ENV_SHOW = "SELFIE_AVATAR_NATIVE_LOGS"
#: absl/glog lines (``W0000 00:00:...``), LiteRT's ``INFO:``/``WARNING:``/``ERROR:`` lines, absl's preamble.
NATIVE_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] |(INFO|WARNING|ERROR): |All log messages before absl)")


def _asked_by_env() -> bool:
    return os.environ.get(ENV_SHOW, "") not in ("", "0")


_show = _asked_by_env()


def show_native_logs(show: bool) -> None:
    """Let native log lines through to the terminal (``--verbose``) or keep them as DEBUG records (the default)."""
    global _show
    _show = bool(show) or _asked_by_env()


@contextlib.contextmanager
def quiet_native_logs(what: str) -> Iterator[None]:
    """Catch what native code writes to descriptor 2 inside the block.

    Args:
        what: names the source in the DEBUG records (for example ``"MediaPipe face landmarker"``).
    """
    if _show:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached daemon): nothing to keep quiet
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            _replay(what, sink.read().decode("utf-8", errors="replace"))


def _replay(what: str, text: str) -> None:
    other = []
    for line in text.splitlines():
        if NATIVE_LINE.match(line):
            log.debug("%s: %s", what, line)
        elif line.strip():
            other.append(line)
    if other:
        sys.stderr.write("\n".join(other) + "\n")
        sys.stderr.flush()
