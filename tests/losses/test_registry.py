import math

import pytest
import torch

import selfie_avatar.losses.registry as registry
from selfie_avatar.losses import (
    DEFAULT_LOSS_WEIGHTS,
    LOSS_NAMES,
    GeneratorLoss,
    cosine_multiscale_loss,
    foreground_reconstruction_loss,
    g_nonsaturating_loss,
    id_mrf_loss,
    parse_loss_overrides,
    resolve_loss_weights,
)
from tests.losses.conftest import images


def _batch(b=2, size=32):
    real = images(b, size, seed=1)
    fake = images(b, size, seed=2).requires_grad_(True)
    matte = torch.zeros(b, 1, size, size)
    matte[:, :, 4:-4, 4:-4] = 1.0
    face = torch.zeros_like(matte)
    face[:, :, 8:-8, 8:-8] = 1.0
    return fake, real, matte, face


def test_parse_overrides():
    assert parse_loss_overrides(["id_mrf=0", "cosine=0.5"]) == {"id_mrf": 0.0, "cosine": 0.5}
    assert parse_loss_overrides("adversarial = 1e-2, reconstruction=3") == {"adversarial": 0.01, "reconstruction": 3.0}
    assert parse_loss_overrides(["cosine=1", "cosine=2"]) == {"cosine": 2.0}
    assert parse_loss_overrides([]) == {}


@pytest.mark.parametrize(
    "item, message",
    [
        ("idmrf=1", "unknown loss 'idmrf'"),
        ("cosine=abc", "'abc'.*not a number"),
        ("cosine", "not NAME=WEIGHT"),
        ("cosine=1=2", "not NAME=WEIGHT"),
        ("cosine=-1", "finite and >= 0"),
        ("cosine=nan", "finite and >= 0"),
        ("cosine=inf", "finite and >= 0"),
    ],
)
def test_parse_overrides_errors(item, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_overrides([item])


def test_resolve_weights():
    w = resolve_loss_weights({"cosine": 2}, ["id_mrf=0"])
    assert set(w) == set(LOSS_NAMES)
    assert w["cosine"] == 2.0 and w["id_mrf"] == 0.0 and w["adversarial"] == DEFAULT_LOSS_WEIGHTS["adversarial"]
    with pytest.raises(ValueError, match="unknown loss"):
        resolve_loss_weights({"perceptual": 1.0})


def test_no_vgg_when_no_vgg_loss(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("VGG must not be built")

    monkeypatch.setattr(registry, "VGGFeatures", boom)
    loss = GeneratorLoss({"id_mrf": 0, "cosine": 0})
    assert loss.vgg is None and loss.vgg_source is None and loss.active == ("adversarial", "reconstruction")
    fake, real, matte, face = _batch()
    logits = torch.randn(2, 1)
    total, terms = loss(fake, real, matte, face, fake_logits=logits)
    assert set(terms) == {"adversarial", "reconstruction"}
    want = 0.1 * g_nonsaturating_loss(logits) + 10.0 * foreground_reconstruction_loss(
        fake, real, matte, face, background_weight=1.0
    )
    assert total.item() == pytest.approx(want.item(), rel=1e-6)


def test_zero_weight_terms_skipped(random_vgg, monkeypatch):
    calls = []
    real_fn = registry._cosine.cosine_multiscale_loss
    monkeypatch.setattr(registry._cosine, "cosine_multiscale_loss", lambda *a, **k: calls.append(1) or real_fn(*a, **k))
    loss = GeneratorLoss({"cosine": 0, "adversarial": 0}, vgg=random_vgg)
    fake, real, matte, face = _batch()
    total, terms = loss(fake, real, matte, face)
    assert set(terms) == {"reconstruction", "id_mrf"} and not calls


def test_all_terms_share_one_vgg_pass(random_vgg):
    loss = GeneratorLoss(vgg=random_vgg)
    assert loss.vgg_source.kind == "random"
    assert loss.state_dict() == {}  # nothing of the loss (VGG included) lands in a model checkpoint
    fake, real, matte, face = _batch()
    logits = torch.randn(2, 1)
    g = torch.Generator().manual_seed(0)
    total, terms = loss(fake, real, matte, face, fake_logits=logits, generator=g)
    assert list(terms) == list(LOSS_NAMES)
    assert all(not t.requires_grad and t.ndim == 0 and math.isfinite(t.item()) for t in terms.values())
    assert total.item() == pytest.approx(sum(DEFAULT_LOSS_WEIGHTS[n] * terms[n].item() for n in terms), rel=1e-5)
    with torch.no_grad():
        ff, rf = random_vgg(fake), random_vgg(real)
    assert terms["id_mrf"].item() == pytest.approx(id_mrf_loss(ff, rf, mask=face).item(), rel=1e-5)
    assert terms["cosine"].item() == pytest.approx(cosine_multiscale_loss(fake, real, random_vgg, mask=matte).item(),
                                                   rel=1e-5)
    total.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_pred_mask_goes_into_reconstruction():
    loss = GeneratorLoss({"adversarial": 0, "id_mrf": 0, "cosine": 0})
    fake, real, matte, face = _batch()
    _, a = loss(fake, real, matte, face)
    _, b = loss(fake, real, matte, face, pred_mask=1 - matte)
    mask_l1 = ((1 - matte) - matte).abs().mean().item()
    assert b["reconstruction"].item() == pytest.approx(a["reconstruction"].item() + mask_l1, rel=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="every loss weight is 0"):
        GeneratorLoss({n: 0 for n in LOSS_NAMES})
    loss = GeneratorLoss({"id_mrf": 0, "cosine": 0})
    fake, real, matte, face = _batch()
    with pytest.raises(ValueError, match="adversarial.*fake_logits"):
        loss(fake, real, matte, face)
