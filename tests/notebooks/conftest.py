"""Running the notebooks headless: a kernel of this interpreter, a scratch folder laid out like the repository,
W&B offline, and the example video.

Each notebook runs with its working directory at ``<scratch>/notebooks``, so the relative output paths of its
parameters cell (``../outputs/notebooks/...``) land in ``<scratch>/outputs/...``, never in the repository, and a
later notebook finds what an earlier one made there, as it would in the repository.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

KERNEL_NAME = "selfie-avatar-tests"


@pytest.fixture(scope="session")
def notebook_scratch(tmp_path_factory) -> Path:
    """Scratch root shared by the notebooks of one test session (``notebooks/`` is their working directory)."""
    root = tmp_path_factory.mktemp("notebooks")
    (root / "notebooks").mkdir()
    return root


@pytest.fixture(scope="session")
def notebook_video(notebook_scratch) -> Path:
    """The real selfie from ../shared/data when present, else a 1 s built-in sample clip (25 frames, 256 px)."""
    real = SHARED_DATA / "selfie_d6.mp4"
    if real.is_file():
        return real
    from tests.prepare.conftest import build_short_sample

    return build_short_sample(notebook_scratch / "sample.mp4", seconds=1.0)


@pytest.fixture(scope="session")
def kernel_dir(notebook_scratch) -> Path:
    """A Jupyter data folder holding one kernel spec: this interpreter (the venv's), whatever else is installed."""
    root = notebook_scratch / "jupyter"
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "selfie_avatar tests", "language": "python",
        "metadata": {"debugger": False},
    }))
    return root


@pytest.fixture
def notebook_env(notebook_scratch, kernel_dir, monkeypatch) -> Path:
    """Environment of the kernel (it inherits the test process's): the kernel spec findable, W&B offline into the
    scratch folder, HOME there too (W&B and Jupyter write under it), headless matplotlib."""
    home = notebook_scratch / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(notebook_scratch / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(home / ".ipython"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(notebook_scratch / "wandb"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # a debugger warning on every kernel start
    # One torch thread in the kernel unless the caller chose: on the 2-core machines, with anything else busy,
    # two OpenMP threads wait on each other at every barrier and the tiny training ran 5-15x slower (12 steps in
    # 50-60 s instead of 7 s); alone on the machine two threads save little at these sizes.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    return notebook_scratch
