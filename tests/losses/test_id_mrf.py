"""ID-MRF: properties, and agreement with a slow loop implementation written straight from the definition."""

import math

import pytest
import torch
import torch.nn.functional as F

from selfie_avatar.losses import IDMRFLoss, id_mrf_layer, id_mrf_loss


def slow_id_mrf(y: torch.Tensor, x: torch.Tensor, h: float = 0.5, eps: float = 1e-5) -> float:
    """Loop version for one image; y: (C, Ny) generated, x: (C, Nx) real.

    For every generated v: relative distances to all real s, normalised by v's nearest real; contextual
    weights normalised over the real vectors. Then for every real s the best weight any generated v gives it,
    averaged over s; loss = -log of that.
    """
    y, x = y.double().tolist(), x.double().tolist()
    c, ny, nx = len(y), len(y[0]), len(x[0])
    mu = [sum(x[k]) / nx for k in range(c)]

    def unit(v):
        n = math.sqrt(sum(t * t for t in v))
        return [t / n for t in v]

    gen = [unit([y[k][i] - mu[k] for k in range(c)]) for i in range(ny)]
    real = [unit([x[k][j] - mu[k] for k in range(c)]) for j in range(nx)]
    weights = []
    for v in gen:
        d = [(1 - sum(a * b for a, b in zip(v, s))) / 2 for s in real]
        dmin = min(d)
        w = [math.exp((1 - dj / (dmin + eps)) / h) for dj in d]
        total = sum(w)
        weights.append([wj / total for wj in w])
    best = [max(weights[i][j] for i in range(ny)) for j in range(nx)]
    return -math.log(sum(best) / nx)


def _feats(b, c, n, seed):
    return torch.randn(b, c, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("ny,nx", [(7, 7), (5, 9), (12, 4)])
def test_matches_loop_reference(ny, nx):
    y = _feats(3, 6, ny, 1)
    x = _feats(3, 6, nx, 2)
    # Make some pairs close so that the relative distances are not all extreme.
    y[:, :, 0] = x[:, :, 0] + 0.05 * y[:, :, 0]
    got = id_mrf_layer(y, x, reduction="none")
    want = torch.tensor([slow_id_mrf(y[b], x[b]) for b in range(3)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert id_mrf_layer(y, x).item() == pytest.approx(want.mean().item(), rel=1e-9)


def test_identical_sets_are_the_minimum():
    x = _feats(2, 8, 30, 3)
    same = id_mrf_layer(x.clone(), x)
    assert 0.0 <= same.item() < 1e-6
    # Small perturbations that keep every vector's nearest neighbour leave the loss at (numerically) 0: the
    # loss is flat around a perfect match (a distance-like loss, L2 or 1 - cos, would not be); larger ones raise
    # it, the more the larger.
    small = [id_mrf_layer(x + scale * _feats(2, 8, 30, seed), x).item() for seed, scale in [(4, 0.01), (5, 0.1)]]
    assert max(small) < 1e-4
    large = [id_mrf_layer(x + scale * _feats(2, 8, 30, seed), x).item() for seed, scale in [(6, 0.5), (7, 2.0)]]
    assert 0.05 < large[0] < large[1]
    # Generated vectors collapsed onto one real vector: about log(N), the worst case.
    collapsed = id_mrf_layer(x[:, :, :1].expand(-1, -1, 30).contiguous(), x)
    assert collapsed.item() == pytest.approx(math.log(30), rel=0.05)


@pytest.mark.parametrize("which", ["generated", "real"])
def test_invariant_to_permuting_positions(which):
    y, x = _feats(2, 5, 20, 8), _feats(2, 5, 16, 9)
    base = id_mrf_layer(y, x)
    if which == "generated":
        permuted = id_mrf_layer(y[:, :, torch.randperm(20)], x)
    else:
        permuted = id_mrf_layer(y, x[:, :, torch.randperm(16)])
    assert permuted.item() == pytest.approx(base.item(), rel=1e-12)


def test_gradients_finite_through_vgg(random_vgg):
    from tests.losses.conftest import images

    real = images(2, 32, seed=1)
    fake = images(2, 32, seed=2).requires_grad_(True)
    with torch.no_grad():
        rf = random_vgg(real)
    loss = id_mrf_loss(random_vgg(fake), rf)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    same = id_mrf_loss(rf, rf)
    assert same < loss


def test_mask_restricts_the_comparison():
    real = _feats(1, 8, 36, 10).float().view(1, 8, 6, 6)
    noise = _feats(1, 8, 36, 11).float().view(1, 8, 6, 6)
    mask = torch.zeros(1, 1, 6, 6)
    mask[:, :, 1:5, 1:4] = 1.0
    fake = torch.where(mask.bool(), real, noise)  # equal inside the mask, unrelated outside
    feats_f, feats_r = {"relu3_2": fake}, {"relu3_2": real}
    assert id_mrf_loss(feats_f, feats_r, layers=("relu3_2",), mask=mask).item() < 1e-5
    assert id_mrf_loss(feats_f, feats_r, layers=("relu3_2",)).item() > 0.1
    # A mask at image resolution is reduced to the feature grid by area: 4x4 blocks, kept where > 0.5.
    big = F.interpolate(mask, scale_factor=4, mode="nearest")
    assert id_mrf_loss(feats_f, feats_r, layers=("relu3_2",), mask=big).item() < 1e-5


def test_variable_counts_per_image_and_empty_masks():
    f, r = _feats(3, 4, 25, 12).float().view(3, 4, 5, 5), _feats(3, 4, 25, 13).float().view(3, 4, 5, 5)
    mask = torch.zeros(3, 1, 5, 5)
    mask[0, :, :2] = 1.0  # 10 positions
    mask[1] = 1.0  # 25 positions
    mask[2, :, 0, 0] = 1.0  # 1 position: left out
    got = id_mrf_loss({"l": f}, {"l": r}, layers=("l",), mask=mask)
    per = []
    for i in range(2):
        keep = mask[i, 0].flatten().bool()
        per.append(id_mrf_layer(f[i : i + 1].flatten(2)[:, :, keep], r[i : i + 1].flatten(2)[:, :, keep]))
    assert got.item() == pytest.approx(torch.stack(per).mean().item(), rel=1e-6)
    f.requires_grad_(True)
    empty = id_mrf_loss({"l": f}, {"l": r}, layers=("l",), mask=torch.zeros(3, 1, 5, 5))
    assert empty.item() == 0.0 and empty.requires_grad


def test_sampled_close_to_exact(random_vgg, astronaut):
    """Sampling 768 of 1024 positions per layer moves the value by under 8% (it is a biased estimate: the loss
    depends on how many positions compete, so the error grows as the kept fraction falls)."""
    real = torch.from_numpy(astronaut).permute(2, 0, 1)[None].float() / 127.5 - 1
    real = F.interpolate(real, size=(128, 128), mode="area")
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    fake = torch.roll(real, shifts=(2, 3), dims=(2, 3)) + 0.1 * noise
    with torch.no_grad():
        ff, rf = random_vgg(fake), random_vgg(real)
    layers = ("relu3_2",)  # 32 x 32 = 1024 positions
    exact = id_mrf_loss(ff, rf, layers, max_positions=4096).item()
    assert id_mrf_loss(ff, rf, layers, max_positions=1024).item() == exact  # no sampling at the cap
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        sampled = id_mrf_loss(ff, rf, layers, max_positions=768, generator=g).item()
        assert sampled == pytest.approx(exact, rel=0.08)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert id_mrf_loss(ff, rf, layers, max_positions=256, generator=g1).item() == id_mrf_loss(
        ff, rf, layers, max_positions=256, generator=g2).item()


def test_module_and_layer_weights():
    def two_layers(seed):
        return {"relu3_2": _feats(2, 4, 16, seed).float().view(2, 4, 4, 4),
                "relu4_2": _feats(2, 8, 4, seed + 1).float().view(2, 8, 2, 2)}

    f, r = two_layers(14), two_layers(16)
    a = id_mrf_loss(f, r, layers=("relu3_2",))
    b = id_mrf_loss(f, r, layers=("relu4_2",))
    assert IDMRFLoss()(f, r).item() == pytest.approx((a + b).item(), rel=1e-6)
    assert IDMRFLoss(layer_weights=(0.5, 2.0))(f, r).item() == pytest.approx((0.5 * a + 2 * b).item(), rel=1e-6)


def test_bad_inputs_named():
    with pytest.raises(ValueError, match=r"\(B, C, N\)"):
        id_mrf_layer(torch.zeros(2, 3, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="missing"):
        id_mrf_loss({"relu3_2": torch.zeros(1, 2, 3, 3)}, {"relu3_2": torch.zeros(1, 2, 3, 3)})
    with pytest.raises(ValueError, match="mask"):
        id_mrf_loss({"a": torch.zeros(2, 2, 3, 3)}, {"a": torch.zeros(2, 2, 3, 3)}, ("a",), mask=torch.ones(1, 1, 3, 3))


def test_float32_agrees_with_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 300, generator=g).relu()  # ReLU-like: many zeros, some near-duplicates
    y = (x + 0.3 * torch.randn(2, 64, 300, generator=g)).relu()
    torch.testing.assert_close(id_mrf_layer(y, x, reduction="none"),
                               id_mrf_layer(y.double(), x.double(), reduction="none").float(), rtol=1e-4, atol=1e-6)
    # 240 of 300 real vectors matched exactly, the rest not at all: -log(240 / 300).
    for value in id_mrf_layer(x[:, :, :240], x, reduction="none").tolist():
        assert value == pytest.approx(math.log(300 / 240), rel=1e-4)


def test_half_precision_inputs_computed_in_float32():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 50, generator=g)
    y = x + 0.2 * torch.randn(1, 16, 50, generator=g)
    got = id_mrf_layer(y.bfloat16(), x.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(id_mrf_layer(y.bfloat16().float(), x.bfloat16().float()).item(), rel=1e-6)
