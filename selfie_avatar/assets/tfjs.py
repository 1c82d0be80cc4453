"""Read TensorFlow.js layers-format weights (a ``*-weights_manifest.json`` beside its ``.bin`` shards) into numpy.

The manifest is a list of groups; each names its shard files (``paths``, relative to the manifest) and its tensors
(``weights``: name, shape, dtype, optional ``quantization``) in the order their bytes follow one another across
the group's shards. Quantised tensors are stored as ``uint8`` / ``uint16`` codes ``q`` with
``value = q * scale + min`` (affine), or as ``float16``; the rest as their own dtype. Filters keep TF's layout
(HWIO for 2-D convolutions); the caller transposes.

Nothing here knows any network: a model checks the names and shapes it gets against its own parameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

# One error type for every damaged weights file, whichever reader finds the damage.
from selfie_avatar.assets.weights_io import WeightsFileError

__all__ = ["WeightsFileError", "read_tfjs_weights"]

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16, "float16": np.float16,
           "bool": np.bool_}


def read_tfjs_weights(manifest_path: str | os.PathLike, bin_paths: list[str | os.PathLike] | None = None,
                      ) -> dict[str, np.ndarray]:
    """Every tensor of a tfjs weights manifest, dequantised to float32 (int32 and bool tensors stay as they are).

    Args:
        manifest_path: the ``*-weights_manifest.json`` file.
        bin_paths: the shard files, in the order of the manifest's ``paths`` over all groups (default: those
            paths, resolved beside the manifest). Lets a shard live under another name or folder.

    Returns:
        {tensor name: array of the manifest's shape}.

    Raises:
        WeightsFileError: the manifest is not valid tfjs JSON, or the shards hold more or fewer bytes than it
            describes (a truncated or wrong file).
    """
    manifest_path = Path(manifest_path)
    try:
        groups = json.loads(manifest_path.read_text())
        specs = [(g["paths"], g["weights"]) for g in groups]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as e:
        raise WeightsFileError(f"{manifest_path} is not a TensorFlow.js weights manifest ({e}); get a fresh copy "
                               f"with `selfie-avatar weights --fetch`") from None
    default_bins = [manifest_path.parent / p for paths, _ in specs for p in paths]
    bins = [Path(p) for p in bin_paths] if bin_paths is not None else default_bins
    if len(bins) != len(default_bins):
        raise ValueError(f"{manifest_path} names {len(default_bins)} shard files, {len(bins)} were given")
    out: dict[str, np.ndarray] = {}
    used = 0
    for paths, weights in specs:
        data = b"".join(_read(p, manifest_path) for p in bins[used:used + len(paths)])
        group_bins = bins[used:used + len(paths)]
        used += len(paths)
        offset = 0
        for w in weights:
            arr, offset = _take(data, offset, w, group_bins, manifest_path)
            out[w["name"]] = arr
        if offset != len(data):
            raise WeightsFileError(f"{_names(group_bins)} holds {len(data)} bytes but {manifest_path.name} describes "
                                   f"{offset}; the file is not the one this manifest belongs to")
    return out


def _take(data: bytes, offset: int, spec: dict, bins: list[Path], manifest: Path) -> tuple[np.ndarray, int]:
    """One tensor from ``data`` at ``offset``; returns it and the offset after it."""
    try:
        name, shape, dtype = spec["name"], [int(s) for s in spec["shape"]], spec["dtype"]
        quant = spec.get("quantization")
        stored = _DTYPES[quant["dtype"] if quant else dtype]
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsFileError(f"{manifest} has a weight entry tfjs does not define ({spec!r:.120}: {e})") from None
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * np.dtype(stored).itemsize
    if offset + nbytes > len(data):
        raise WeightsFileError(f"{_names(bins)} ends after {len(data)} bytes, inside tensor '{name}' (which needs "
                               f"bytes {offset}..{offset + nbytes}); the file is truncated: get a fresh copy with "
                               f"`selfie-avatar weights --fetch`")
    q = np.frombuffer(data, dtype=stored, count=count, offset=offset).reshape(shape)
    if quant and quant["dtype"] in ("uint8", "uint16"):
        # Affine codes. tfjs computes q * scale + min in JavaScript doubles and stores float32: so do we.
        arr = (q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(np.float32)
    elif stored in (np.float16, np.float32):
        arr = q.astype(np.float32)
    else:
        arr = q.copy()
    return arr, offset + nbytes


def _read(path: Path, manifest: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise WeightsFileError(f"cannot read {path}, the weights of {manifest.name} ({e.strerror or e})") from None


def _names(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths)
