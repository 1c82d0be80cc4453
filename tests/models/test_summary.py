import pytest
import torch

from selfie_avatar.models import ModelConfig
from selfie_avatar.models.summary import network_summary, parameter_rows


def test_parameter_rows_add_up():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    net[0].weight.requires_grad_(False)
    rows = parameter_rows(net, depth=2, prefix="net")
    assert [r["module"] for r in rows] == ["net", "net.0", "net.1", "net.1.0"]
    assert rows[0]["parameters"] == 16 + 10 and rows[0]["trainable"] == 26 - 12
    assert len(parameter_rows(net, depth=0)) == 1
    with pytest.raises(ValueError, match="depth"):
        parameter_rows(net, depth=-1)


def test_network_summary_of_the_tiny_preset():
    s = network_summary(ModelConfig.preset("tiny"), batch=2)
    rows = {r["module"]: r for r in s["parameters"]}
    children = [r["parameters"] for name, r in rows.items() if name.startswith("generator.")]
    assert rows["generator"]["parameters"] == sum(children) == sum(p.numel() for p in s["generator"].parameters())
    shapes = {r["tensor"]: r["shape"] for r in s["shapes"]}
    assert shapes["image"] == (2, 3, 64, 64) and shapes["mask"] == (2, 1, 64, 64) and shapes["score"] == (2, 1)
    assert shapes["texture_rgb"][1] == 3
