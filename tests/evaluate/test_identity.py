"""The identity metric: the tfjs reader, the port of dlib's descriptor network, alignment, and real faces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from selfie_avatar.assets.tfjs import WeightsFileError, read_tfjs_weights
from selfie_avatar.errors import AssetMissingError
from selfie_avatar.evaluate.face_align import (DLIB_TEMPLATE_5, MEDIAPIPE_TO_DLIB_5, align_faces, chip_template,
                                               five_points, similarity_transform)
from selfie_avatar.evaluate.face_recognition import (BIN_FILE, MANIFEST_FILE, FaceRecognitionNet, _tfjs_name,
                                                     face_recognition_net_from_tfjs, load_face_recognition_net)
from selfie_avatar.evaluate.identity import IdentityMetric, describe_distance, same_person

# dlib 20.0.1 on skimage's astronaut (public domain): its HOG detector and 5-point predictor, then
# face_recognition_model_v1 on get_face_chip(img, shape, 150, 0.25). Points in dlib's pixel convention.
ASTRONAUT_DLIB_POINTS = [[255.0, 104.0], [238.0, 105.0], [195.0, 101.0], [212.0, 103.0], [224.0, 135.0]]
ASTRONAUT_DLIB_DESCRIPTOR = [
    -0.0663, 0.0209, 0.0176, -0.0642, -0.1525, -0.0192, -0.0387, -0.1182, 0.1051, -0.1089, 0.1737, -0.0512, -0.2694,
    -0.0429, 0.0117, 0.1557, -0.1505, -0.1679, -0.1454, -0.0834, 0.0325, 0.0461, -0.0077, 0.053, -0.2693, -0.2736,
    -0.0628, -0.0995, 0.0173, -0.0709, -0.0403, 0.0865, -0.0964, 0.0395, 0.112, 0.1228, -0.0045, -0.114, 0.1247,
    -0.065, -0.249, -0.0227, 0.0713, 0.1813, 0.2966, -0.0508, -0.005, -0.0875, 0.1324, -0.284, 0.0185, 0.086, 0.0533,
    0.0917, 0.0332, -0.159, 0.002, 0.2393, -0.2848, -0.0536, 0.0045, -0.1799, -0.0436, -0.0419, 0.1367, 0.1216,
    -0.1847, -0.1403, 0.1848, -0.243, 0.0009, 0.071, -0.113, -0.1775, -0.313, -0.0162, 0.4356, 0.1833, -0.1791,
    -0.0224, -0.0414, 0.0183, 0.0282, 0.0363, -0.0495, -0.1103, -0.1265, 0.0503, 0.2054, -0.0594, 0.04, 0.2325,
    0.0356, -0.013, 0.0369, 0.1189, -0.1553, -0.0592, -0.0781, -0.0227, -0.0457, -0.055, 0.0575, 0.1615, -0.1102,
    0.1955, -0.0109, -0.0396, -0.0187, -0.0565, 0.0087, -0.0897, 0.1297, -0.2501, 0.0583, 0.1776, 0.0784, 0.1821,
    -0.0129, 0.0422, -0.0406, -0.0558, -0.1782, -0.029, 0.0313, -0.05, 0.0275, 0.0155,
]


def _weights() -> tuple[Path, Path]:
    from selfie_avatar.assets import resolve_asset

    try:
        return resolve_asset("face_recognition"), resolve_asset("face_recognition_manifest")
    except AssetMissingError:
        pytest.skip(f"{BIN_FILE} / {MANIFEST_FILE} are not installed (`selfie-avatar weights --fetch` installs them "
                    f"from npm @vladmandic/face-api; or set SELFIE_AVATAR_WEIGHTS to a folder holding them)")


@pytest.fixture(scope="module")
def weight_files() -> tuple[Path, Path]:
    return _weights()


@pytest.fixture(scope="module")
def net(weight_files) -> FaceRecognitionNet:
    return load_face_recognition_net(*weight_files)


@pytest.fixture(scope="module")
def metric(weight_files) -> IdentityMetric:
    return IdentityMetric(*weight_files)


def _write_tfjs(folder: Path, tensors: dict[str, np.ndarray], quant: dict[str, str] | None = None) -> Path:
    """A tfjs manifest + one shard holding ``tensors``, quantised as ``quant[name]`` says (uint8, uint16,
    float16); returns the manifest."""
    quant = quant or {}
    entries, chunks = [], []
    for name, arr in tensors.items():
        entry = {"name": name, "shape": list(arr.shape), "dtype": "float32"}
        kind = quant.get(name)
        if kind in ("uint8", "uint16"):
            lo, hi = float(arr.min()), float(arr.max())
            scale = (hi - lo) / (255 if kind == "uint8" else 65535) or 1.0
            q = np.round((arr - lo) / scale).astype(kind)
            entry["quantization"] = {"dtype": kind, "scale": scale, "min": lo}
            chunks.append(q.tobytes())
        elif kind == "float16":
            entry["quantization"] = {"dtype": "float16"}
            chunks.append(arr.astype(np.float16).tobytes())
        else:
            chunks.append(arr.astype(np.float32).tobytes())
        entries.append(entry)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BIN_FILE).write_bytes(b"".join(chunks))
    manifest = folder / MANIFEST_FILE
    manifest.write_text(json.dumps([{"paths": [BIN_FILE], "weights": entries}]))
    return manifest


def _random_face_api_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A random network's parameters under face-api's names and TF layouts (HWIO filters, fc as in x out)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, p in FaceRecognitionNet().state_dict().items():
        arr = (torch.randn(p.shape, generator=g) * 0.05).numpy()
        out[_tfjs_name(key)] = arr.transpose(2, 3, 1, 0) if arr.ndim == 4 else (arr.T if key == "fc.weight" else arr)
    return out


# --- the tfjs reader --------------------------------------------------------------------------------------------

def test_tfjs_reader_dequantises_each_storage_type(tmp_path):
    rng = np.random.default_rng(0)
    t = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=7).astype(np.float32),
         "c": rng.normal(size=(2, 2, 1, 3)).astype(np.float32), "d": rng.normal(size=5).astype(np.float32)}
    manifest = _write_tfjs(tmp_path, t, {"a": "uint8", "b": "uint16", "c": "float16"})
    got = read_tfjs_weights(manifest)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in t.items()}
    spec = {w["name"]: w for w in json.loads(manifest.read_text())[0]["weights"]}
    q = spec["a"]["quantization"]
    codes = np.round((t["a"] - q["min"]) / q["scale"])
    np.testing.assert_allclose(got["a"], codes * q["scale"] + q["min"], rtol=0, atol=1e-6)  # value = q*scale+min
    assert np.abs(got["b"] - t["b"]).max() < spec["b"]["quantization"]["scale"]  # 16-bit: within one step
    np.testing.assert_array_equal(got["c"], t["c"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(got["d"], t["d"])  # unquantised float32 kept bit for bit


@pytest.mark.parametrize("damage", ["truncated", "extra bytes", "wrong shape", "not json"])
def test_a_damaged_weights_file_gives_one_clear_line(tmp_path, damage):
    tensors = _random_face_api_tensors()
    manifest = _write_tfjs(tmp_path, tensors, {k: "uint8" for k in tensors})
    bin_file = tmp_path / BIN_FILE
    data = bin_file.read_bytes()
    if damage == "truncated":
        bin_file.write_bytes(data[: len(data) // 3])
    elif damage == "extra bytes":
        bin_file.write_bytes(data + b"\0" * 16)
    elif damage == "wrong shape":
        groups = json.loads(manifest.read_text())
        w = next(w for w in groups[0]["weights"] if w["name"] == "conv64_1/conv1/conv/filters")
        w["shape"] = [3, 3, 32, 128]  # same element count, wrong layout
        manifest.write_text(json.dumps(groups))
    else:
        manifest.write_text("<html>404</html>")
    with pytest.raises(WeightsFileError) as err:
        face_recognition_net_from_tfjs(bin_file, manifest)
    msg = str(err.value)
    assert "\n" not in msg
    expect = {"truncated": ["truncated", BIN_FILE], "extra bytes": ["bytes", BIN_FILE],
              "wrong shape": ["conv64_1/conv1/conv/filters", "(3, 3, 32, 128)"], "not json": [MANIFEST_FILE]}[damage]
    for word in expect:
        assert word in msg, msg


def test_the_synthetic_network_loads_exactly_what_the_file_holds(tmp_path):
    tensors = _random_face_api_tensors(seed=1)
    manifest = _write_tfjs(tmp_path, tensors)  # float32, so the round trip must be exact
    net = face_recognition_net_from_tfjs(tmp_path / BIN_FILE, manifest)
    state = net.state_dict()
    np.testing.assert_array_equal(state["conv32_down.conv.weight"].numpy(),
                                  tensors["conv32_down/conv/filters"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["fc.weight"].numpy(), tensors["fc"].T)
    assert manifest.is_file() and not any(p.requires_grad for p in net.parameters())


@pytest.fixture
def only_tmp_weights(tmp_path, monkeypatch) -> Path:
    """Weights are looked for in an empty temporary folder only (not in the installed ones)."""
    from selfie_avatar.assets import registry

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(registry, "weights_dirs", lambda: [folder])
    monkeypatch.setattr(registry, "_torch_hub_dir", lambda: tmp_path / "hub")
    return folder


def test_missing_weights_say_where_to_get_them(only_tmp_weights):
    with pytest.raises(AssetMissingError, match="not found.*weights --fetch") as err:
        load_face_recognition_net()
    assert BIN_FILE in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_copy_of_the_real_file_is_refused(weight_files, only_tmp_weights):
    bin_file, manifest = weight_files
    (only_tmp_weights / BIN_FILE).write_bytes(bin_file.read_bytes()[:100_000])
    (only_tmp_weights / MANIFEST_FILE).write_bytes(manifest.read_bytes())
    with pytest.raises(AssetMissingError, match="not a known release") as err:
        load_face_recognition_net(only_tmp_weights / BIN_FILE)
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsFileError, match="truncated"):  # read without the registry's hash check
        face_recognition_net_from_tfjs(only_tmp_weights / BIN_FILE, only_tmp_weights / MANIFEST_FILE)


# --- the real network --------------------------------------------------------------------------------------------

def test_the_network_matches_the_manifest(net, weight_files):
    _, manifest = weight_files
    spec = {w["name"]: w["shape"] for g in json.loads(manifest.read_text()) for w in g["weights"]}
    state = net.state_dict()
    assert {_tfjs_name(k) for k in state} == set(spec)
    for key, p in state.items():
        shape = spec[_tfjs_name(key)]
        expect = [shape[3], shape[2], shape[0], shape[1]] if len(shape) == 4 else shape[::-1]
        assert list(p.shape) == expect, key
    assert sum(p.numel() for p in net.parameters()) == sum(math.prod(s) for s in spec.values())
    out = net(torch.rand(2, 3, 150, 150))
    assert out.shape == (2, 128) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"\(1, 3, 112, 112\)"):
        net(torch.rand(1, 3, 112, 112))


def test_the_port_reproduces_dlibs_descriptor(net, astronaut):
    # Our chip from dlib's own five points (shifted into the toolkit's pixel convention) through the port, against
    # dlib's descriptor of dlib's chip. Measured: 0.093 (0.038 on dlib's exact chip: the 8-bit weights; the rest is
    # dlib's image-pyramid sampling). A BGR input gives 0.19, 'same' padding in a stride-2 conv 0.21.
    image = torch.from_numpy(astronaut).permute(2, 0, 1)[None].float() / 255
    points = torch.tensor(ASTRONAUT_DLIB_POINTS)[None] + 0.5
    with torch.no_grad():
        ours = net(align_faces(image, points))[0]
    dist = (ours - torch.tensor(ASTRONAUT_DLIB_DESCRIPTOR)).norm().item()
    assert dist < 0.12, dist


# --- alignment --------------------------------------------------------------------------------------------------

def test_similarity_transform_recovers_a_known_transform():
    src = torch.rand(2, 5, 2) * 100
    angle = torch.tensor([0.3, -1.1])
    a, b = 2.5 * torch.cos(angle), 2.5 * torch.sin(angle)
    A = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
    dst = src @ A.transpose(1, 2) + torch.tensor([[[10.0, -4.0]], [[3.0, 7.0]]])
    M = similarity_transform(src, dst)
    torch.testing.assert_close(M[:, :, :2], A, atol=1e-4, rtol=0)
    torch.testing.assert_close(M[:, :, 2], torch.tensor([[10.0, -4.0], [3.0, 7.0]]), atol=1e-3, rtol=0)


def test_alignment_puts_the_landmarks_where_the_template_says():
    # Five bright dots placed by a known similarity from the template; after alignment each dot's centroid must sit
    # on its template point. 478 landmarks with only dlib's five meaningful: the MediaPipe indices are used.
    # dlib's chip point (padding + t) / (1 + 2 padding) * size is in its integer-centred pixels: +0.5 in ours.
    size, h, w = 150, 300, 400
    tmpl = (0.25 + torch.tensor(DLIB_TEMPLATE_5, dtype=torch.float64)) / 1.5 * size + 0.5
    torch.testing.assert_close(chip_template().double(), tmpl)
    angle, scale, shift = 0.35, 1.8, torch.tensor([120.0, 40.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    frame_pts = tmpl @ (scale * rot).T + shift
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    landmarks = torch.zeros(1, 478, 2, dtype=torch.float64)
    images = torch.zeros(5, 3, h, w)
    for i, (x, y) in enumerate(frame_pts):
        images[i] = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0 ** 2)).float()
        landmarks[0, MEDIAPIPE_TO_DLIB_5[i]] = frame_pts[i]
    chips = align_faces(images, landmarks.expand(5, -1, -1).float())
    assert chips.shape == (5, 3, size, size)
    cy, cx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for i in range(5):
        wgt = chips[i, 0].double()
        centroid = torch.stack([(wgt * cx).sum(), (wgt * cy).sum()]) / wgt.sum()
        assert (centroid - tmpl[i]).norm() < 0.1, (i, centroid, tmpl[i])
    torch.testing.assert_close(five_points(landmarks), frame_pts[None])


@pytest.mark.parametrize("shape", [(2, 100, 2), (2, 478), (2, 478, 4)])
def test_alignment_names_a_bad_landmark_shape(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        align_faces(torch.rand(2, 3, 64, 64), torch.rand(*shape))


def test_metric_checks_its_inputs_and_reads_out_distances(metric):
    img, lm = torch.rand(2, 3, 64, 64), torch.rand(2, 478, 2) * 40 + 12
    with pytest.raises(ValueError, match=r"fake must be \(B, 3, H, W\).*\(2, 64, 64\)"):
        metric(img[:, 0], img, lm)
    with pytest.raises(ValueError, match="pass landmarks_real"):
        metric(img, torch.rand(2, 3, 80, 80), lm)
    lm_nan = lm.clone()
    lm_nan[1] = float("nan")
    sim = metric(img, img, lm_nan)
    assert sim[0].item() == pytest.approx(1.0, abs=1e-5) and math.isnan(sim[1].item())
    assert same_person(torch.tensor([0.3, 0.7, float("nan")])).tolist() == [True, False, False]
    assert "same person" in describe_distance(0.41) and "different" in describe_distance(0.75)


# --- real faces ---------------------------------------------------------------------------------------------------

def _frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    from selfie_avatar.io.video import iter_frames

    return [f for i, f in enumerate(iter_frames(path, max_frames=max(indices) + 1)) if i in indices]


def test_frames_of_one_person_are_closer_than_frames_of_two(metric, shared_data):
    from selfie_avatar.assets import asset_status
    from selfie_avatar.io.image import read_image
    from selfie_avatar.prepare.landmarks import MediaPipeLandmarker

    if not asset_status("face_landmarker").found:
        pytest.skip("face_landmarker.task is not installed (`selfie-avatar weights --fetch`)")
    # Frames measured once: same person 0.38 (d6) and 0.48 (d3, a head turn), two people 0.65 and above.
    frames = {"d6": _frames(shared_data / "selfie_d6.mp4", [0, 240]),
              "d3": _frames(shared_data / "driver_d3.mp4", [0, 120]),
              "d19": [read_image(shared_data / "portrait_d19.jpg")]}
    desc = {}
    with MediaPipeLandmarker(video=False) as det, torch.no_grad():
        for who, images in frames.items():
            points = [det.detect(f).points for f in images]
            assert all(p is not None for p in points), f"no face found in {who}"
            desc[who] = [metric.descriptors(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255,
                                            torch.from_numpy(p)[None])[0] for f, p in zip(images, points)]
    flat = [(who, d) for who, ds in desc.items() for d in ds]
    same, other = [], []
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            dist = (flat[i][1] - flat[j][1]).norm().item()
            (same if flat[i][0] == flat[j][0] else other).append(dist)
    assert max(same) < 0.6 < min(other), (same, other)  # dlib's rule holds on these frames
    cos = torch.nn.functional.cosine_similarity
    assert cos(*desc["d6"], dim=0) > cos(desc["d6"][0], desc["d3"][0], dim=0)
