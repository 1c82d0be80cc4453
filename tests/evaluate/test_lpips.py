"""LPIPS plumbing. The real AlexNet file cannot be had offline, so these tests write a file of the right format
with random weights: they check that the trunk is read from the local file (never downloaded) and that evaluate
reports the numbers; they say nothing about LPIPS values, which need the real file."""

import json

import pytest
import torch

from selfie_avatar.config import EvaluateConfig
from selfie_avatar.evaluate.metrics import LPIPSMetric, load_alexnet_trunk, lpips_status
from selfie_avatar.evaluate.run import evaluate

lpips = pytest.importorskip("lpips")


@pytest.fixture
def fake_alexnet(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    folder = tmp_path / "weights"
    folder.mkdir()
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, folder / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("SELFIE_AVATAR_WEIGHTS", str(folder))
    return folder / "alexnet-owt-7be5be79.pth", state


def test_lpips_reads_the_trunk_from_the_local_file(fake_alexnet):
    path, state = fake_alexnet
    assert lpips_status()[0]
    metric = LPIPSMetric()
    assert metric.path == path
    assert torch.equal(getattr(metric.net.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(metric.net.net.slice5, "10").weight, state["features.10.weight"])
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-6)  # identical images are at distance 0
    assert (metric(x, torch.rand(2, 3, 64, 64)) > 0).all()


def test_a_file_of_another_network_is_refused():
    net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    with pytest.raises(ValueError, match="features.0.weight"):
        load_alexnet_trunk(net.net, {"conv1.weight": torch.zeros(1)})


def test_evaluate_reports_lpips_when_the_trunk_is_present(tiny_run, fake_alexnet, tmp_path):
    result = evaluate(EvaluateConfig(run_dir=str(tiny_run), checkpoint="last", out=str(tmp_path / "eval"),
                                     device="cpu"))
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["lpips"] == pytest.approx(m["mean"]["lpips"]) and len(m["per_frame"]["fg_lpips"]) == len(m["frames"])
    assert str(fake_alexnet[0]) in m["lpips_note"] and "foreground" in result.summary()
