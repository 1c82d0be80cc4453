"""Checkpoints that survive their own faults: a full disk, an interrupted copy, a file that is not ours.

Writing (:class:`SafeCheckpointIO`, Lightning's checkpoint plugin for every checkpoint of a run):

    checkpoints/.last.*.tmp.ckpt the new state, written and flushed to disk first (utils/atomic.py)
    checkpoints/last.prev.ckpt   the state it replaces (kept only when that one was readable)
    checkpoints/last.ckpt        the new state, renamed into place

A write that fails part-way (no space, a quota) removes its temporary file, leaves ``last.ckpt`` as it was and
stops the run with :class:`CheckpointWriteError`, one line saying what to do.

Reading (:func:`resume_checkpoint`): ``--resume`` loads every candidate (``last``, ``last.prev``, ``best``,
``best.prev``) with ``weights_only=True``, so nothing in a file is ever executed, and continues from the newest one
that is whole. A damaged file is renamed to ``*.damaged``, a refused one to ``*.refused`` (kept for inspection, never
rotated over a good one), and named in the log.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.utils.atomic import atomic_path
from selfie_avatar.utils.log import get_logger

log = get_logger("train")

#: What a checkpoint must hold for training to continue from it exactly.
RESUME_KEYS = ("state_dict", "optimizer_states", "loops")


class CheckpointWriteError(SelfieAvatarError):
    """A checkpoint could not be written; the previous one is intact."""


class CheckpointReadError(SelfieAvatarError):
    """No checkpoint of a run can be read."""


def previous_path(path: str | os.PathLike) -> Path:
    """``last.ckpt`` -> ``last.prev.ckpt``: the state the latest write replaced."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def is_whole_zip(path: Path) -> bool:
    """Cheap test that a file is a complete torch checkpoint container: its zip directory, at the very end of the
    file, is there (a truncated file loses it first)."""
    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def save_checkpoint_safely(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``path`` keeping the previous state as ``<stem>.prev.ckpt``.

    Raises:
        CheckpointWriteError: the write failed (the message gives the OS reason); ``path`` is unchanged.
    """
    path = Path(path)
    buffer = io.BytesIO()  # serialise first: a failure while writing is then a plain OSError, never torch's
    torch.save(checkpoint, buffer)
    try:
        with atomic_path(path) as tmp:  # removes the temporary file when the block fails
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            # The new state is on disk: only now does the old one step aside (renamed onto path on leaving).
            if path.is_file():
                if is_whole_zip(path):
                    os.replace(path, previous_path(path))
                else:
                    log.warning("%s was damaged before this write; it is replaced and %s is kept", path,
                                previous_path(path))
    except OSError as exc:
        kept = f"{path} is intact" if path.is_file() else "no earlier checkpoint existed"
        raise CheckpointWriteError(
            f"could not write checkpoint {path} ({exc.strerror or exc}); {kept}. Free some space and continue with "
            f"`selfie-avatar train --resume`") from exc


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint plugin, writing through :func:`save_checkpoint_safely`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        save_checkpoint_safely(checkpoint, path)


@dataclass
class CheckpointCheck:
    """What reading one checkpoint file found."""

    path: Path
    step: int | None  # None: unusable
    kind: str = "ok"  # ok, missing, damaged, refused or incomplete
    detail: str = ""

    @property
    def problem(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind

    @property
    def ok(self) -> bool:
        return self.step is not None


def check_checkpoint(path: str | os.PathLike) -> CheckpointCheck:
    """Read ``path`` the safe way (tensors and plain values only) and say whether training can continue from it."""
    path = Path(path)
    if not path.is_file():
        return CheckpointCheck(path, None, "missing")
    if not is_whole_zip(path):
        return CheckpointCheck(path, None, "damaged", "not a complete checkpoint file (truncated or overwritten)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every way a file can fail to load is reported the same way
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in str(exc) or "Unsupported global" in str(exc):
            return CheckpointCheck(path, None, "refused", "it holds objects other than tensors and plain values "
                                                          "(nothing in it was run)")
        return CheckpointCheck(path, None, "damaged", text[:160])
    if not isinstance(ck, dict) or any(k not in ck for k in RESUME_KEYS):
        return CheckpointCheck(path, None, "incomplete", f"not a full training checkpoint (needs "
                                                         f"{', '.join(RESUME_KEYS)})")
    step = ck["state_dict"].get("step")
    return CheckpointCheck(path, int(step) if step is not None else int(ck.get("global_step", 0)))


def resume_candidates(ckpt_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints ``--resume`` may continue from, in order of preference at equal step."""
    d = Path(ckpt_dir)
    return [d / "last.ckpt", previous_path(d / "last.ckpt"), d / "best.ckpt", previous_path(d / "best.ckpt")]


def resume_checkpoint(ckpt_dir: str | os.PathLike, set_aside: bool = True) -> Path:
    """The newest whole checkpoint in ``ckpt_dir``. Each unusable file is renamed to ``<name>.<kind>`` (damaged,
    refused, incomplete) and named in a warning; when none is usable nothing is moved.

    Args:
        set_aside: False only chooses (DDP workers, after the launching process has set damaged files aside).

    Raises:
        CheckpointReadError: none of the candidates can be read (one line naming each and why).
    """
    checks = [check_checkpoint(p) for p in resume_candidates(ckpt_dir)]
    present = [c for c in checks if c.kind != "missing"]
    good = [c for c in present if c.ok]
    if not good:
        if not present:
            raise CheckpointReadError(f"--resume: no checkpoint in {ckpt_dir}; start the run without --resume")
        raise CheckpointReadError(
            "--resume: no checkpoint can be read (" + "; ".join(f"{c.path.name}: {c.problem}" for c in present)
            + "); start again with --overwrite")
    best = max(good, key=lambda c: c.step)  # max keeps the first of equal steps: last before prev before best
    if not set_aside:
        return best.path
    for c in present:
        if c.ok:
            continue
        # Set aside, not deleted, and out of the way of the next write's rotation into *.prev.ckpt.
        aside = c.path.with_name(f"{c.path.name}.{c.kind}")
        os.replace(c.path, aside)
        log.warning("%s is %s; moved it to %s and resume from %s (step %d)", c.path, c.problem, aside.name,
                    best.path.name, best.step)
    log.info("resuming from %s (step %d)", best.path, best.step)
    return best.path
