"""StyleGAN2 building blocks: equalised LR, resampling filters, modulated conv, noise, mapping, minibatch std."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selfie_avatar.models.stylegan2 import (
    Blur, ConvLayer, Downsample, EqualConv2d, EqualLinear, MappingNetwork, MinibatchStd, ModulatedConv2d,
    NoiseInjection, ResBlock, StyledConv, SynthesisNetwork, ToRGB, Upsample, channel_dict, make_kernel, upfirdn2d,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- equalised learning rate ---------------------------------------------------------------------------------------
def test_equal_linear_scales_weights_at_runtime():
    layer = EqualLinear(256, 8, bias_init=0.5, lr_mul=0.1)
    x = torch.randn(4, 256)
    # Stored weights have std 1 / lr_mul; the runtime scale lr_mul / sqrt(fan_in) brings them to He init.
    assert layer.weight.std().item() == pytest.approx(10.0, rel=0.1)
    expected = F.linear(x, layer.weight * 0.1 / math.sqrt(256), layer.bias * 0.1)
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.bias * layer.lr_mul, torch.full((8,), 0.5))


def test_equal_linear_keeps_unit_variance_and_lrelu_gain():
    x = torch.randn(4096, 512)
    assert EqualLinear(512, 512)(x).std().item() == pytest.approx(1.0, abs=0.05)
    y = EqualLinear(512, 512, activation="lrelu")(x)
    assert y.square().mean().item() == pytest.approx(1.0, abs=0.1)  # sqrt(2) gain keeps the second moment


def test_equal_conv2d_matches_scaled_conv():
    conv = EqualConv2d(6, 5, 3, padding=1)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 6, 9, 9)
    expected = F.conv2d(x, conv.weight / math.sqrt(6 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    with pytest.raises(ValueError, match=r"\(2, 4, 9, 9\)"):
        conv(torch.randn(2, 4, 9, 9))


# -- resampling ----------------------------------------------------------------------------------------------------
def naive_upfirdn2d(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """Textbook definition on a single (H, W) image: zero insertion, padding, true convolution, decimation."""
    h, w = x.shape
    u = np.zeros((h * up, w * up))
    u[::up, ::up] = x
    x0, x1, y0, y1 = pad
    p = np.pad(u, ((max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
    p = p[max(-y0, 0): p.shape[0] - max(-y1, 0), max(-x0, 0): p.shape[1] - max(-x1, 0)]
    kh, kw = k.shape
    out = np.zeros((p.shape[0] - kh + 1, p.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for a in range(kh):
                for b in range(kw):
                    out[i, j] += p[i + kh - 1 - a, j + kw - 1 - b] * k[a, b]
    return out[::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 1, 1, 1)), (2, 1, (2, 1, 1, 0)), (1, 2, (1, 2, 0, 1)),
                                         (2, 2, (-1, 2, 1, -1))])
def test_upfirdn2d_matches_naive_reference(up, down, pad):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    k = torch.tensor([[1.0, 2.0], [3.0, 5.0], [-1.0, 0.5]], dtype=torch.float64)  # asymmetric: catches a missed flip
    out = upfirdn2d(x, k, up=up, down=down, pad=pad)
    for c in range(2):
        ref = naive_upfirdn2d(x[0, c].numpy(), k.numpy(), up, down, pad)
        np.testing.assert_allclose(out[0, c].numpy(), ref, atol=1e-12)


def test_make_kernel_is_normalised_separable():
    k = make_kernel([1, 3, 3, 1])
    assert k.shape == (4, 4)
    assert k.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(k, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)


def test_resampling_shapes_and_unit_dc_gain():
    const = torch.full((2, 3, 16, 16), 0.7)
    up, down, blur = Upsample()(const), Downsample()(const), Blur(pad=(2, 1))(const)
    assert up.shape == (2, 3, 32, 32) and down.shape == (2, 3, 8, 8) and blur.shape == (2, 3, 16, 16)
    # Away from the zero-padded borders a constant image stays exactly constant.
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))
    torch.testing.assert_close(blur[..., 2:-2, 2:-2], torch.full_like(blur[..., 2:-2, 2:-2], 0.7))


# -- modulated convolution -----------------------------------------------------------------------------------------
def test_modulated_conv_demodulation_gives_unit_variance():
    conv = ModulatedConv2d(128, 64, 3, style_dim=16)
    x = torch.randn(2, 128, 24, 24)
    y = conv(x, torch.randn(2, 16) * 3)
    assert y.shape == (2, 64, 24, 24)
    assert y[..., 1:-1, 1:-1].std().item() == pytest.approx(1.0, abs=0.1)


def test_modulated_conv_invariant_to_style_scale():
    conv = ModulatedConv2d(8, 4, 3, style_dim=16)
    with torch.no_grad():
        conv.modulation.bias.zero_()  # then the per-channel scales are linear in the style vector
    x, s = torch.randn(2, 8, 10, 10), torch.randn(2, 16)
    torch.testing.assert_close(conv(x, s), conv(x, 7.5 * s), rtol=1e-4, atol=1e-5)
    no_demod = ModulatedConv2d(8, 4, 3, style_dim=16, demodulate=False)
    with torch.no_grad():
        no_demod.modulation.bias.zero_()
    torch.testing.assert_close(no_demod(x, 2 * s), 2 * no_demod(x, s), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_modulated_conv_resampling_shapes(kernel_size):
    x, s = torch.randn(3, 4, 8, 8), torch.randn(3, 16)
    assert ModulatedConv2d(4, 5, kernel_size, 16, up=True)(x, s).shape == (3, 5, 16, 16)
    assert ModulatedConv2d(4, 5, kernel_size, 16, down=True)(x, s).shape == (3, 5, 4, 4)
    assert StyledConv(4, 5, 3, 16, up=True)(x, s).shape == (3, 5, 16, 16)
    assert ConvLayer(4, 5, kernel_size, down=True)(x).shape == (3, 5, 4, 4)
    assert ResBlock(4, 6)(x).shape == (3, 6, 4, 4)
    with pytest.raises(ValueError, match=r"style \(3, 16\)"):
        ModulatedConv2d(4, 5, 3, 16)(x, torch.randn(2, 16))


def test_modulated_conv_batch_items_are_independent():
    conv = ModulatedConv2d(4, 5, 3, 16, up=True)
    x, s = torch.randn(3, 4, 8, 8), torch.randn(3, 16)
    torch.testing.assert_close(conv(x, s)[1:2], conv(x[1:2], s[1:2]), rtol=1e-5, atol=1e-5)


def test_torgb_adds_upsampled_skip():
    to_rgb = ToRGB(8, 16)
    x, s, skip = torch.randn(2, 8, 8, 8), torch.randn(2, 16), torch.randn(2, 3, 4, 4)
    out = to_rgb(x, s, skip)
    assert out.shape == (2, 3, 8, 8)
    torch.testing.assert_close(out - to_rgb(x, s), Upsample()(skip), rtol=1e-5, atol=1e-5)


# -- noise, mapping, minibatch std ---------------------------------------------------------------------------------
def test_noise_injection_has_one_strength_per_layer():
    inj = NoiseInjection(3)
    assert inj.weight.shape == (1,)  # StyleGAN2 / StyleAvatar: per layer, not per channel
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(inj(x), x)  # zero strength at initialisation
    with torch.no_grad():
        inj.weight.fill_(2.0)
    noise = torch.randn(1, 1, 4, 4)
    out = inj(x, noise)
    torch.testing.assert_close(out - x, 2 * noise.expand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 1, 5, 5\)"):
        inj(x, torch.randn(2, 1, 5, 5))


def test_mapping_network_shape_and_scale_invariance():
    mapping = MappingNetwork(16, 24, num_layers=3)
    z = torch.randn(5, 16)
    w = mapping(z)
    assert w.shape == (5, 24)
    torch.testing.assert_close(mapping(4.0 * z), w, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(5, 8\)"):
        mapping(torch.randn(5, 8))


def test_minibatch_std_appends_group_std_channel():
    x = torch.randn(4, 6, 3, 3)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (4, 7, 3, 3)
    torch.testing.assert_close(out[:, :6], x)
    expected = x.std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(out[:, 6], expected.expand(4, 3, 3), rtol=1e-4, atol=1e-5)


def test_minibatch_std_handles_batch_not_divisible_by_group():
    x = torch.randn(3, 4, 2, 2)
    out = MinibatchStd(group_size=4)(x)  # group size falls back to 3, the largest divisor <= 4
    assert out.shape == (3, 5, 2, 2)
    torch.testing.assert_close(out[:, 4], x.std(dim=0, unbiased=False).mean().expand(3, 2, 2), rtol=1e-4, atol=1e-5)
    x6 = torch.randn(6, 4, 2, 2)
    out6 = MinibatchStd(group_size=4)(x6)  # groups of 3: samples {0, 2, 4} and {1, 3, 5}
    torch.testing.assert_close(out6[0, 4, 0, 0], x6[0::2].std(dim=0, unbiased=False).mean(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out6[1, 4, 0, 0], x6[1::2].std(dim=0, unbiased=False).mean(), rtol=1e-4, atol=1e-5)
    assert MinibatchStd(num_channels=2)(torch.randn(5, 4, 2, 2)).shape == (5, 6, 2, 2)


# -- synthesis -----------------------------------------------------------------------------------------------------
def test_channel_dict_rule():
    assert channel_dict(64, 512, 32) == {4: 32, 8: 32, 16: 32, 32: 16, 64: 8}


def test_synthesis_network_shapes_and_noise_modes():
    net = SynthesisNetwork(32, 16, channel_base=256, channel_max=16, out_channels=3)
    w = torch.randn(2, 16)
    feat, rgb = net(w)
    assert feat.shape == (2, 8, 32, 32) and rgb.shape == (2, 3, 32, 32)
    assert net(w[:, None].expand(-1, net.num_ws, -1))[0].shape == feat.shape
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, NoiseInjection):
                m.weight.fill_(0.5)
    torch.testing.assert_close(net(w, "const")[0], net(w, "const")[0])
    assert not torch.allclose(net(w, "random")[0], net(w, "random")[0])
    net.eval()
    torch.testing.assert_close(net(w)[0], net(w, "const")[0])  # None means "const" in eval mode
    wide = SynthesisNetwork(32, 16, channels={8: 8, 16: 8, 32: 4}, start_res=8, const_size=9)
    assert wide(w)[0].shape == (2, 4, 36, 36)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        net(torch.randn(2, 3))
