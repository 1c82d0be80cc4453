import pytest
import torch

from selfie_avatar.losses import GeneratorLoss
from selfie_avatar.losses.feature_crop import face_windows
from selfie_avatar.models.background_generator import crop_windows


def test_the_window_is_centred_on_the_face_and_stays_inside():
    m = torch.zeros(3, 1, 64, 64)
    m[0, :, 10:20, 40:50] = 1  # face centre (44.5, 14.5)
    m[1, :, 0:6, 0:6] = 1  # a face in the corner: the window is clamped into the frame
    c = face_windows(m, 32, jitter=0.0)
    assert c[0].tolist() == [28, 0]  # x: 44.5 - 16 rounds (half to even) to 28; y clamped at the top
    assert c[1].tolist() == [0, 0]
    assert c[2].tolist() == [16, 16]  # no face: the frame's centre
    shaken = face_windows(m[:1].expand(200, -1, -1, -1).clone(), 32, jitter=0.125,
                          generator=torch.Generator().manual_seed(0))
    assert (shaken >= 0).all() and (shaken <= 32).all() and shaken[:, 0].unique().numel() > 3
    with pytest.raises(ValueError, match="window side"):
        face_windows(m, 65)


def test_the_feature_losses_see_exactly_the_face_window():
    torch.manual_seed(0)
    fake, real = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    matte = torch.ones(2, 1, 64, 64)
    face = torch.zeros(2, 1, 64, 64)
    face[:, :, 20:44, 16:40] = 1
    weights = {"adversarial": 0, "reconstruction": 0}
    windowed = GeneratorLoss(weights, feature_window=32)
    whole = GeneratorLoss(weights, vgg=windowed.vgg)
    g = torch.Generator().manual_seed(3)
    corners = face_windows(face, 32, generator=torch.Generator().manual_seed(3))
    _, terms = windowed(fake, real, matte, face, generator=g)
    cut = [crop_windows(t, 32, corners) for t in (fake, real, matte, face)]
    g2 = torch.Generator().manual_seed(3)
    face_windows(face, 32, generator=g2)  # the same draws as inside the windowed loss, so ID-MRF samples alike
    _, expect = whole(*cut, generator=g2)
    for k in ("id_mrf", "cosine"):
        assert terms[k] == pytest.approx(float(expect[k]), rel=1e-5), k
    with pytest.raises(ValueError, match="at least 32"):
        GeneratorLoss(weights, feature_window=16, vgg=windowed.vgg)
