import pytest
import torch

from selfie_avatar.losses import ForegroundReconstructionLoss, foreground_reconstruction_loss


def _box(b, h, w, y0, y1, x0, x1):
    m = torch.zeros(b, 1, h, w)
    m[:, :, y0:y1, x0:x1] = 1.0
    return m


def test_identical_is_zero():
    x = torch.rand(2, 3, 16, 16)
    assert foreground_reconstruction_loss(x, x, torch.rand(2, 1, 16, 16)).item() == 0.0


def test_errors_outside_the_matte_do_not_count():
    real = torch.rand(2, 3, 16, 16)
    matte = _box(2, 16, 16, 4, 12, 4, 12)
    fake = real + torch.randn_like(real) * (1 - matte)
    assert foreground_reconstruction_loss(fake, real, matte).item() == 0.0
    fake_in = real + 0.3 * matte
    assert foreground_reconstruction_loss(fake_in, real, matte).item() == pytest.approx(0.3, rel=1e-5)


def test_value_does_not_depend_on_foreground_area():
    real = torch.zeros(1, 3, 32, 32)
    fake = real + 0.25
    small, large = _box(1, 32, 32, 10, 14, 10, 14), _box(1, 32, 32, 0, 30, 0, 30)
    a = foreground_reconstruction_loss(fake, real, small)
    b = foreground_reconstruction_loss(fake, real, large)
    assert a.item() == pytest.approx(0.25, rel=1e-5) and b.item() == pytest.approx(0.25, rel=1e-5)


def test_face_weight():
    real = torch.zeros(1, 3, 10, 10)
    matte = torch.ones(1, 1, 10, 10)
    face = _box(1, 10, 10, 0, 5, 0, 4)  # 20 face pixels, 80 others
    fake = real + 0.5 * face  # error only on the face
    for fw in (1.0, 2.0, 5.0):
        want = fw * 0.5 * 20 / (fw * 20 + 80)
        got = foreground_reconstruction_loss(fake, real, matte, face, face_weight=fw)
        assert got.item() == pytest.approx(want, rel=1e-5)
    # A larger face weight makes face errors count more.
    assert foreground_reconstruction_loss(fake, real, matte, face, 3.0) > foreground_reconstruction_loss(
        fake, real, matte, face, 1.0)


def test_mask_term():
    real = torch.rand(2, 3, 8, 8)
    matte = _box(2, 8, 8, 2, 6, 2, 6)
    pred = torch.full_like(matte, 0.5)
    got = foreground_reconstruction_loss(real, real, matte, pred_mask=pred, mask_weight=2.0)
    assert got.item() == pytest.approx(2.0 * 0.5, rel=1e-6)
    target = torch.zeros_like(matte)
    got = foreground_reconstruction_loss(real, real, matte, pred_mask=pred, target_mask=target, mask_weight=1.0)
    assert got.item() == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(ValueError, match="without pred_mask"):
        foreground_reconstruction_loss(real, real, matte, target_mask=target)


def test_gradients_finite_and_module_agrees():
    real = torch.rand(2, 3, 8, 8)
    fake = torch.rand(2, 3, 8, 8, requires_grad=True)
    matte, face = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    pred = torch.rand(2, 1, 8, 8, requires_grad=True)
    mod = ForegroundReconstructionLoss(face_weight=3.0, mask_weight=0.5)
    loss = mod(fake, real, matte, face, pred_mask=pred)
    ref = foreground_reconstruction_loss(fake, real, matte, face, 3.0, pred, None, 0.5)
    assert loss.item() == pytest.approx(ref.item())
    loss.backward()
    assert torch.isfinite(fake.grad).all() and torch.isfinite(pred.grad).all()
    assert fake.grad.abs().sum() > 0


def test_empty_matte_gives_zero_not_nan():
    fake, real = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert foreground_reconstruction_loss(fake, real, torch.zeros(1, 1, 8, 8)).item() == 0.0


@pytest.mark.parametrize(
    "matte_shape", [(2, 3, 8, 8), (2, 1, 4, 4), (1, 1, 8, 8), (2, 8, 8)],
)
def test_bad_matte_shape_named(matte_shape):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="matte"):
        foreground_reconstruction_loss(x, x, torch.rand(*matte_shape))


def test_mismatched_images_rejected():
    with pytest.raises(ValueError, match="must match"):
        foreground_reconstruction_loss(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 9), torch.rand(2, 1, 8, 8))


def test_background_weight_counts_the_background_a_little():
    from selfie_avatar.losses.reconstruction import foreground_reconstruction_loss

    real = torch.zeros(1, 3, 8, 8)
    fake = torch.zeros(1, 3, 8, 8)
    fake[..., :, 4:] = 1.0  # error only in the right half
    matte = torch.zeros(1, 1, 8, 8)
    matte[..., :, :4] = 1.0  # foreground is the left half
    assert foreground_reconstruction_loss(fake, real, matte) == 0
    half = foreground_reconstruction_loss(fake, real, matte, background_weight=0.25)
    assert half == pytest.approx(0.25 / 1.25)  # (0.25 * 32 px of error) / (32 + 0.25 * 32 weight)
    with pytest.raises(ValueError, match="background_weight"):
        foreground_reconstruction_loss(fake, real, matte, background_weight=2.0)
