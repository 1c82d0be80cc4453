"""assets_record(): which model files were real and which fell back, as written into runs, checkpoints, metrics."""

from __future__ import annotations

import hashlib
import json

import pytest

from selfie_avatar.assets import ASSETS, assets_record, asset_status
from selfie_avatar.assets.registry import ENV_WEIGHTS


@pytest.fixture
def empty_weights(monkeypatch, tmp_path):
    """Every search location an empty folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr("selfie_avatar.assets.registry.default_install_dir", lambda: tmp_path / "none")
    monkeypatch.setattr("selfie_avatar.assets.registry._package_path", lambda asset: None)
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    return tmp_path


def test_missing_assets_are_recorded_with_their_fallback(empty_weights):
    rec = assets_record()
    assert set(rec) == set(ASSETS) and {"flame2020", "flame2023", "face_alignment_2dfan4"} <= set(rec)
    flame = rec["flame2023"]
    assert flame == {"found": False, "source": "missing", "path": None, "sha256": None,
                     "fallback_in_use": "the default blendshape model (prepare --face-model blendshape)"}
    assert all(not r["found"] and r["fallback_in_use"] for r in rec.values())
    json.dumps(rec)  # plain data: goes into config.json, checkpoints and metrics.json as is


def test_found_assets_are_recorded_with_source_and_digest(empty_weights, monkeypatch):
    d = empty_weights / "w"
    d.mkdir()
    (d / "generic_model.pkl").write_bytes(b"flame bytes")
    monkeypatch.setenv(ENV_WEIGHTS, str(d))
    flame = empty_weights / "my_flame.pkl"
    flame.write_bytes(b"flame 2023 bytes")
    rec = assets_record({"flame2023": flame})
    assert rec["flame2020"]["found"] and rec["flame2020"]["source"] == "env"
    assert rec["flame2020"]["path"] == str(d / "generic_model.pkl") and rec["flame2020"]["fallback_in_use"] is None
    assert rec["flame2020"]["sha256"] == hashlib.sha256(b"flame bytes").hexdigest()
    assert rec["flame2023"]["source"] == "explicit" and rec["flame2023"]["path"] == str(flame)
    assert not rec["lpips_alexnet"]["found"]
    assert assets_record(hash_limit=4)["flame2020"]["sha256"] is None  # big files are not hashed
    with pytest.raises(ValueError, match="unknown asset"):
        assets_record({"vgg": flame})


def test_torch_hub_files_are_checked_by_their_hash_prefix(empty_weights):
    hub = empty_weights / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "s3fd-619a316812.pth").write_bytes(b"not the detector")
    st = asset_status("face_alignment_s3fd")
    assert not st.found and "SHA-256" in st.problems[0]
    rec = assets_record()["face_alignment_s3fd"]
    assert not rec["found"] and rec["problems"] and rec["fallback_in_use"]
    assert asset_status("face_alignment_s3fd", verify=False).source == "torch_hub"
