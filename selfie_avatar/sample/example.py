"""Footage for the notebooks and examples: the real selfie in ``../shared/data`` when it is there, else the built-in
sample clip, and a subject folder prepared from it once.

The real clip is looked for in ``$SELFIE_AVATAR_SHARED_DATA`` when that is set, else in ``shared/data`` beside the
repository (``<repo>/../shared/data``), the same place the tests look.
"""

from __future__ import annotations

import os
from pathlib import Path

from selfie_avatar.config import PrepareConfig, SampleConfig
from selfie_avatar.utils.log import get_logger

log = get_logger("sample")

SHARED_DATA_ENV = "SELFIE_AVATAR_SHARED_DATA"
EXAMPLE_VIDEO = "selfie_d6.mp4"
EXAMPLE_DRIVER = "driver_d3.mp4"


def shared_data_dir() -> Path:
    """Folder of the real example footage: ``$SELFIE_AVATAR_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def example_video(work_dir: str | Path, seconds: float = 12.0, size: int = 512, seed: int = 0) -> Path:
    """A selfie video to work with.

    Args:
        work_dir: where the built-in sample clip is written when the real footage is absent (the clip is reused
            when ``work_dir/sample_<seconds>s_<size>.mp4`` already exists).
        seconds, size, seed: settings of the built-in sample clip (ignored when the real footage is used).

    Returns:
        ``shared_data_dir() / "selfie_d6.mp4"`` when that file exists, else the path of the built-in sample clip.
    """
    return _real_or_sample(EXAMPLE_VIDEO, Path(work_dir) / f"sample_{seconds:g}s_{size}.mp4", seconds, size, seed)


def _real_or_sample(name: str, out: Path, seconds: float, size: int, seed: int) -> Path:
    """``shared_data_dir() / name`` when it exists, else the built-in sample clip at ``out`` (made once)."""
    if seconds <= 0 or size < 32:
        raise ValueError(f"the sample clip needs seconds > 0 and size >= 32, got {seconds} and {size}")
    real = shared_data_dir() / name
    if real.is_file():
        return real
    if out.is_file():
        return out
    from selfie_avatar.sample.clip import build_sample_clip

    log.info("%s not found; writing a built-in sample clip to %s", real, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return build_sample_clip(SampleConfig(out=str(out), seconds=seconds, size=size, seed=seed))


def ensure_subject(out: str | Path, video: str | Path, size: int = 256, max_frames: int | None = None,
                   device: str = "auto", progress: bool = True) -> Path:
    """The subject folder ``out``, prepared from ``video`` unless it already holds one.

    An existing subject folder is reused as it is (whatever its size: training resizes frames), so a notebook can
    pick up the folder an earlier notebook made.

    Raises:
        FileExistsError: ``out`` exists but is not a subject folder (nothing is overwritten).
    """
    from selfie_avatar.prepare.pipeline import prepare
    from selfie_avatar.tracking.subject import Subject

    out = Path(out)
    if out.exists():
        if not (out / "meta.json").is_file():
            raise FileExistsError(f"{out} exists but is not a subject folder (no meta.json); choose another folder")
        subject = Subject(out)  # checks the format version
        log.info("reusing subject folder %s (%d frames at %d px)", out, len(subject), subject.size)
        return out
    prepare(PrepareConfig(video=str(video), out=str(out), size=size, max_frames=max_frames, device=device),
            progress=progress)
    return out


def driver_video(work_dir: str | Path, seconds: float = 12.0, size: int = 512, seed: int = 1) -> Path:
    """A driving video for reenactment: ``shared_data_dir() / "driver_d3.mp4"`` (another person) when present, else
    a second built-in sample clip (the sample portrait with another motion schedule, ``seed``)."""
    return _real_or_sample(EXAMPLE_DRIVER, Path(work_dir) / f"driver_{seconds:g}s_{size}_seed{seed}.mp4", seconds,
                           size, seed)
