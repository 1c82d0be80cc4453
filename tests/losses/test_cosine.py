import pytest
import torch

from selfie_avatar.losses import CosineMultiScaleLoss, cosine_feature_loss, cosine_multiscale_loss
from tests.losses.conftest import images


def test_identical_images_score_zero(random_vgg):
    x = images(2, 64)
    assert cosine_multiscale_loss(x, x, random_vgg).item() == pytest.approx(0.0, abs=1e-6)


def test_different_images_score_more_and_gradients_are_finite(random_vgg):
    real = images(2, 64, seed=1)
    near = (real + 0.05 * images(2, 64, seed=3)).clamp(-1, 1)
    far = images(2, 64, seed=2).requires_grad_(True)
    l_far = cosine_multiscale_loss(far, real, random_vgg)
    l_near = cosine_multiscale_loss(near, real, random_vgg)
    assert 0 < l_near < l_far
    # 1 - cos is symmetric in its two images; a loss that normalised by the target alone would not be.
    assert cosine_multiscale_loss(real, far.detach(), random_vgg).item() == pytest.approx(l_far.item(), rel=1e-5)
    l_far.backward()
    assert torch.isfinite(far.grad).all() and far.grad.abs().sum() > 0


def test_invariant_to_feature_scale():
    g = torch.Generator().manual_seed(0)
    f = {"a": torch.randn(2, 16, 5, 5, generator=g), "b": torch.randn(2, 32, 3, 3, generator=g)}
    r = {"a": torch.randn(2, 16, 5, 5, generator=g), "b": torch.randn(2, 32, 3, 3, generator=g)}
    base = cosine_feature_loss(f, r, layers=("a", "b"))
    scaled = cosine_feature_loss({k: 7.5 * v for k, v in f.items()}, {k: 0.2 * v for k, v in r.items()},
                                 layers=("a", "b"))
    assert scaled.item() == pytest.approx(base.item(), rel=1e-5)
    # 1 - cos per position, averaged: check one layer against the textbook formula.
    want = (1 - torch.nn.functional.cosine_similarity(f["a"], r["a"], dim=1)).mean()
    assert cosine_feature_loss(f, r, layers=("a",)).item() == pytest.approx(want.item(), rel=1e-5)


def test_zero_feature_vectors_match():
    f = torch.zeros(1, 4, 3, 3)
    assert cosine_feature_loss({"a": f}, {"a": f.clone()}, layers=("a",)).item() == 0.0


def test_mask_ignores_errors_outside():
    g = torch.Generator().manual_seed(1)
    r = torch.randn(2, 8, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1.0
    f = torch.where(mask.bool(), r, torch.randn(2, 8, 8, 8, generator=g))
    assert cosine_feature_loss({"a": f}, {"a": r}, ("a",), mask=mask).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_feature_loss({"a": f}, {"a": r}, ("a",)).item() > 0.1
    # A mask at image resolution (x4) is averaged down to the feature grid.
    big = torch.nn.functional.interpolate(mask, scale_factor=4, mode="nearest")
    assert cosine_feature_loss({"a": f}, {"a": r}, ("a",), mask=big).item() == pytest.approx(0.0, abs=1e-6)


def test_precomputed_features_reused(random_vgg):
    fake, real = images(2, 32, seed=4), images(2, 32, seed=5)
    pre = (random_vgg(fake), random_vgg(real))
    a = cosine_multiscale_loss(fake, real, random_vgg)
    b = cosine_multiscale_loss(fake, real, random_vgg, precomputed=pre)
    assert b.item() == pytest.approx(a.item(), rel=1e-6)
    # Only scale 1 reads the precomputed features; the other scales run the network.
    only1 = cosine_multiscale_loss(fake, real, random_vgg, scales=(1.0,), precomputed=pre)
    assert only1.item() == pytest.approx(cosine_feature_loss(*pre).item(), rel=1e-6)


def test_sum_over_scales_and_layer_weights(random_vgg):
    fake, real = images(1, 32, seed=6), images(1, 32, seed=7)
    per_scale = [cosine_multiscale_loss(fake, real, random_vgg, scales=(s,)) for s in (1.0, 0.5)]
    both = cosine_multiscale_loss(fake, real, random_vgg, scales=(1.0, 0.5))
    assert both.item() == pytest.approx(sum(per_scale).item(), rel=1e-5)
    ff, rf = random_vgg(fake), random_vgg(real)
    one = cosine_feature_loss(ff, rf, ("relu1_2",))
    two = cosine_feature_loss(ff, rf, ("relu2_2",))
    weighted = cosine_feature_loss(ff, rf, ("relu1_2", "relu2_2"), layer_weights=(2.0, 0.5))
    assert weighted.item() == pytest.approx((2 * one + 0.5 * two).item(), rel=1e-5)


def test_module(random_vgg):
    mod = CosineMultiScaleLoss(vgg=random_vgg)
    fake, real = images(1, 32, seed=8), images(1, 32, seed=9)
    mask = torch.ones(1, 1, 32, 32)
    assert mod(fake, real, mask).item() == pytest.approx(cosine_multiscale_loss(fake, real, random_vgg).item(),
                                                         rel=1e-5)


def test_bad_inputs_named(random_vgg):
    x = images(1, 32)
    with pytest.raises(ValueError, match="scales"):
        cosine_multiscale_loss(x, x, random_vgg, scales=(2.0,))
    with pytest.raises(ValueError, match="does not compute"):
        cosine_multiscale_loss(x, x, random_vgg, layers=("relu5_1",))
    with pytest.raises(ValueError, match="mask"):
        cosine_multiscale_loss(x, x, random_vgg, mask=torch.ones(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        cosine_multiscale_loss(x, images(2, 32), random_vgg)
