import pytest

from selfie_avatar.utils.atomic import atomic_dir, atomic_path, write_json_atomic


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as d:
            (d / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_then_replaces(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_dir(tmp_path / "out"):
            pass
    with atomic_dir(tmp_path / "out", overwrite=True) as d:
        (d / "new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    f = tmp_path / "a.json"
    write_json_atomic(f, {"v": 1})
    with pytest.raises(ValueError):
        with atomic_path(f) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert f.read_text().strip().startswith("{") and '"v": 1' in f.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_json_names_the_file_and_the_fix(tmp_path):
    import pytest

    from selfie_avatar.errors import SelfieAvatarError
    from selfie_avatar.utils.atomic import read_json, write_json_atomic

    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert read_json(tmp_path / "a.json", "redo it") == {"x": 1}
    with pytest.raises(SelfieAvatarError, match=r"b\.json is missing; redo it"):
        read_json(tmp_path / "b.json", "redo it")
    (tmp_path / "c.json").write_text('{"x": 1')  # cut short, as a full disk leaves it
    with pytest.raises(SelfieAvatarError, match=r"c\.json is not valid JSON .*; redo it"):
        read_json(tmp_path / "c.json", "redo it")
