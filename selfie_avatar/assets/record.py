"""What every run records about its model files: which were real, from where, and which fell back.

``assets_record()`` goes into each training run's ``config.json`` and W&B config, each checkpoint and each
``metrics.json``, so a number can always be traced to the weights behind it (or to the fallback used instead).
"""

from __future__ import annotations

import os
from pathlib import Path

from selfie_avatar.assets.registry import ASSETS, Asset, asset_status, sha256_of

__all__ = ["assets_record"]

# Hashing reads the whole file; above this size (the ImageNet VGG19 file is about 550 MB) it is skipped.
HASH_LIMIT_BYTES = 600 * 2**20

_digests: dict[tuple[str, int, int], str] = {}


def _digest(path: Path, asset: Asset, limit: int) -> str | None:
    if len(asset.sha256) == 1:  # asset_status has already checked the file against this one digest
        return asset.sha256[0]
    st = path.stat()
    if st.st_size >= limit:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:  # checkpoints are saved often; the same file is hashed once per process
        _digests[key] = sha256_of(path)
    return _digests[key]


def assets_record(explicit: dict[str, str | os.PathLike | None] | None = None,
                  hash_limit: int = HASH_LIMIT_BYTES) -> dict[str, dict]:
    """The status of every registered model file, as plain JSON-able data.

    Args:
        explicit: {asset name: path given in a config}, resolved first (as the stage that uses it would).
        hash_limit: files at least this large get no computed digest (``sha256`` None).

    Returns:
        {asset name: {found, source, path, sha256, fallback_in_use}} where ``source`` is where it was found
        (explicit, env, install, cache, torch_hub, package:...) or ``missing``, ``sha256`` the known or computed
        digest of a found file, and ``fallback_in_use`` what the toolkit does instead when it is missing (None when
        found). A ``problems`` list is added where a candidate file was rejected (wrong digest, missing path).
    """
    explicit = explicit or {}
    unknown = sorted(set(explicit) - set(ASSETS))
    if unknown:
        raise ValueError(f"assets_record: unknown asset names {unknown} (known: {sorted(ASSETS)})")
    out: dict[str, dict] = {}
    for name, asset in ASSETS.items():
        st = asset_status(name, explicit.get(name))
        entry = {
            "found": st.found,
            "source": st.source,
            "path": str(st.path) if st.path is not None else None,
            "sha256": _digest(st.path, asset, hash_limit) if st.path is not None else None,
            "fallback_in_use": None if st.found else asset.fallback,
        }
        if st.problems:
            entry["problems"] = list(st.problems)
        out[name] = entry
    return out
