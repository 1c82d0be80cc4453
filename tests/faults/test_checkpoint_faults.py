"""Checkpoint faults: a truncated last.ckpt, a foreign pickle, every candidate damaged, a disk that fills mid-write."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from selfie_avatar import cli
from selfie_avatar.training.checkpoint_io import (CheckpointWriteError, check_checkpoint, previous_path,
                                                  save_checkpoint_safely)
from tests.faults.conftest import digest


def _train_args(run, subject, steps):
    return ["train", str(subject), "--out", str(run), "--preset", "tiny", "--max-steps", str(steps),
            "--no-progress", "--device", "cpu", "--loss", "id_mrf=0", "--loss", "cosine=0", "--resume"]


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_a_second_write_keeps_the_first_as_prev(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(1)}}, path)
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(2)}}, path)
    assert int(torch.load(path, weights_only=True)["state_dict"]["step"]) == 2
    assert int(torch.load(previous_path(path), weights_only=True)["state_dict"]["step"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.prev.ckpt"]  # no temporary left


def test_a_damaged_file_is_never_rotated_over_the_good_previous(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(1)}}, path)
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(2)}}, path)
    _truncate(path)
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(3)}}, path)
    assert int(torch.load(previous_path(path), weights_only=True)["state_dict"]["step"]) == 1


def test_a_write_that_fails_midway_leaves_the_previous_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_checkpoint_safely({"state_dict": {"step": torch.tensor(1)}}, path)
    before = digest(path)
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])  # part of it lands, then the disk is full
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: FullDisk(real_open(p, mode, *a, **k))
                        if ".tmp" in Path(p).name else real_open(p, mode, *a, **k))
    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*last.ckpt is intact.*--resume"):
        save_checkpoint_safely({"state_dict": {"step": torch.tensor(2)}}, path)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_resume_with_a_truncated_last_falls_back_and_continues(run_copy, train_subject, caplog):
    ck = run_copy / "checkpoints"
    _truncate(ck / "last.ckpt")
    caplog.set_level("INFO", logger="selfie_avatar")
    assert cli.main(_train_args(run_copy, train_subject, 8)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "damaged" in r.getMessage()]
    assert any("last.ckpt is damaged" in w and "resume from last.prev.ckpt (step 6)" in w for w in warnings), warnings
    assert (ck / "last.ckpt.damaged").is_file()  # kept for inspection, not deleted
    assert check_checkpoint(ck / "last.ckpt").step == 8  # it went on from step 6 to 8
    assert check_checkpoint(ck / "best.ckpt").ok


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo PWNED > pwned.txt",))


def _poison(path):
    with open(path, "wb") as f:
        torch.save({"state_dict": {}, "optimizer_states": [], "loops": {}, "x": _Payload()}, f, pickle_module=pickle)


def test_resume_sets_a_foreign_pickle_aside_and_falls_back(run_copy, train_subject, caplog):
    ck = run_copy / "checkpoints"
    _poison(ck / "last.ckpt")
    caplog.set_level("INFO", logger="selfie_avatar")
    assert cli.main(_train_args(run_copy, train_subject, 8)) == 0
    assert any("last.ckpt is refused" in r.getMessage() and "nothing in it was run" in r.getMessage()
               for r in caplog.records)
    assert (ck / "last.ckpt.refused").is_file() and check_checkpoint(ck / "last.ckpt").step == 8
    assert not (run_copy / "pwned.txt").exists() and not os.path.exists("pwned.txt")


def test_resume_refuses_foreign_pickles_in_one_line(run_copy, train_subject, capsys):
    ck = run_copy / "checkpoints"
    for p in list(ck.glob("*.ckpt")):
        _poison(p)
    assert cli.main(_train_args(run_copy, train_subject, 8)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no checkpoint can be read" in line and "last.ckpt: refused" in line and "best.ckpt: refused" in line
    assert not (run_copy / "pwned.txt").exists() and not os.path.exists("pwned.txt")
    assert (ck / "last.ckpt").is_file() and (ck / "best.ckpt").is_file()  # nothing is moved when none is usable


def test_resume_with_every_checkpoint_damaged_says_so(run_copy, train_subject, capsys):
    ck = run_copy / "checkpoints"
    for p in ck.glob("*.ckpt"):
        _truncate(p, 0.3)
    assert cli.main(_train_args(run_copy, train_subject, 8)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "last.ckpt: damaged" in line and "best.ckpt: damaged" in line and "--overwrite" in line


def test_resume_with_a_damaged_run_record_is_one_line(run_copy, train_subject, capsys):
    (run_copy / "config.json").write_text('{"train_config": {"pres')
    assert cli.main(_train_args(run_copy, train_subject, 8)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "config.json is not valid JSON" in line


def test_a_full_disk_during_training_stops_cleanly_and_keeps_the_checkpoint(run_copy, train_subject):
    """A real failing write: the training process may not grow any file past a limit that the logs stay under but
    a checkpoint does not (RLIMIT_FSIZE: write() fails with EFBIG, as with ENOSPC on a full disk)."""
    ck = run_copy / "checkpoints"
    before = {p.name: digest(p) for p in ck.glob("*.ckpt")}
    limit = (ck / "last.ckpt").stat().st_size // 2
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from selfie_avatar import cli
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
        sys.exit(cli.main({_train_args(run_copy, train_subject, 12)!r}))
    """)
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert "could not write checkpoint" in line and "File too large" in line and "is intact" in line
    after = {p.name: digest(p) for p in ck.glob("*.ckpt")}
    assert after == before  # nothing already written was touched
    assert not list(ck.glob(".*tmp*"))  # no temporary file left behind
