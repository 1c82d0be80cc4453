"""The README's Python example runs as written (on the built-in sample instead of the reader's video)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    from tests.prepare.conftest import build_short_sample

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    video = build_short_sample(tmp_path / "my_selfie.mp4", seconds=1.0)
    monkeypatch.chdir(tmp_path)
    code = blocks[0].replace("size=256", "size=64")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["frame"].shape == (64, 64, 3) and namespace["uv"].shape == (64, 64, 3)
    assert len(namespace["codes"]) >= 52
    assert (tmp_path / "subjects" / "me" / "meta.json").is_file() and video.is_file()
