import math

import pytest
import torch

from selfie_avatar.losses import (
    AdversarialLoss,
    DiscriminatorLoss,
    d_logistic_loss,
    g_nonsaturating_loss,
    r1_penalty,
)


def test_known_values():
    assert g_nonsaturating_loss(torch.zeros(4, 1)).item() == pytest.approx(math.log(2))
    x = torch.tensor([[1.0], [-2.0]])
    want = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(2.0))) / 2
    assert g_nonsaturating_loss(x).item() == pytest.approx(want, rel=1e-6)
    assert AdversarialLoss()(x).item() == pytest.approx(want, rel=1e-6)
    real, fake = torch.tensor([3.0, 0.0]), torch.tensor([-1.0])
    want = math.log1p(math.exp(-1.0)) + (math.log1p(math.exp(-3.0)) + math.log(2)) / 2
    assert d_logistic_loss(real, fake).item() == pytest.approx(want, rel=1e-6)
    assert DiscriminatorLoss()(real, fake).item() == pytest.approx(want, rel=1e-6)
    assert d_logistic_loss(torch.zeros(3, 1, 4, 4), torch.zeros(5)).item() == pytest.approx(2 * math.log(2))


def test_generator_loss_falls_as_d_is_fooled():
    assert g_nonsaturating_loss(torch.full((2,), 3.0)) < g_nonsaturating_loss(torch.full((2,), -3.0))


def test_generator_loss_gradient_finite():
    logits = torch.randn(4, 1, 8, 8, requires_grad=True)
    g_nonsaturating_loss(logits).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad < 0).all()


def test_r1_linear_discriminator_is_weight_norm():
    w = torch.randn(3, 5, 5)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    logits = (x * w).flatten(1).sum(1)
    assert r1_penalty(logits, x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_r1_quadratic_discriminator_matches_analytic_gradient():
    a = torch.tensor(0.7, requires_grad=True)
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    logits = (a * x.pow(2)).flatten(1).sum(1, keepdim=True)  # D(x) = a |x|^2, grad 2 a x
    r1 = r1_penalty(logits, x)
    want = (4 * a.detach() ** 2 * x.detach().pow(2).flatten(1).sum(1)).mean()
    assert r1.item() == pytest.approx(want.item(), rel=1e-5)
    # create_graph: the penalty is differentiable w.r.t. D's parameter, d/da = 8 a mean|x|^2.
    r1.backward()
    want_grad = (8 * a.detach() * x.detach().pow(2).flatten(1).sum(1)).mean()
    assert a.grad.item() == pytest.approx(want_grad.item(), rel=1e-5)


def test_r1_needs_grad_and_matching_batch():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x.sum((1, 2, 3)), x)
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="batch sizes"):
        r1_penalty(torch.zeros(3, 1), x)


def test_lazy_r1_schedule_and_scaling():
    loss = DiscriminatorLoss(r1_gamma=10.0, r1_interval=4)
    assert [s for s in range(10) if loss.is_r1_step(s)] == [0, 4, 8]
    w = torch.randn(3, 4, 4)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1)
    assert loss.r1_term(logits, x).item() == pytest.approx(0.5 * 10.0 * 4 * w.pow(2).sum().item(), rel=1e-5)
    assert not DiscriminatorLoss(r1_gamma=0.0).is_r1_step(0)
    assert all(DiscriminatorLoss(r1_interval=1).is_r1_step(s) for s in range(3))


@pytest.mark.parametrize("kwargs", [{"r1_gamma": -1.0}, {"r1_interval": 0}, {"r1_interval": 2.5}])
def test_discriminator_loss_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        DiscriminatorLoss(**kwargs)


def test_scalar_logits_rejected():
    with pytest.raises(ValueError, match="shape"):
        g_nonsaturating_loss(torch.tensor(1.0))
