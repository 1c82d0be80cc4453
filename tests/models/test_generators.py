"""Avatar networks at the tiny preset: shapes, warping, background window, StyleUNet, cache, gradients, D."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from selfie_avatar.models import (
    AvatarGenerator, BackgroundGenerator, Discriminator, FaceGenerator, ImageGenerator, ModelConfig, TextureWarp,
    warp_texture,
)
from selfie_avatar.models.image_generator import filled_face

B = 2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def cfg() -> ModelConfig:
    # The plate, the reference bank and the photo texture have tests of their own (below, and
    # tests/models/test_reference.py, tests/models/test_photo_texture.py).
    return ModelConfig.preset("tiny", use_background_plate=False, reference_frames=0, photo_texture=False)


def make_inputs(cfg: ModelConfig, batch: int = B) -> tuple[torch.Tensor, torch.Tensor]:
    """Random render in [-1, 1]; UV image covering the left half of the frame only."""
    s = cfg.size
    render = torch.rand(batch, 3, s, s) * 2 - 1
    uv = torch.rand(batch, 3, s, s)
    uv[:, 2] = 0.0
    uv[:, 2, :, : s // 2] = 1.0
    return render, uv


# -- config --------------------------------------------------------------------------------------------------------
def test_config_presets_and_validation():
    for preset in (ModelConfig.preset("tiny"), ModelConfig.preset("cpu"), ModelConfig.preset("full"), ModelConfig()):
        assert ModelConfig(**dataclasses.asdict(preset)) == preset
    assert ModelConfig().bg_canvas_size == 288 and ModelConfig.preset("tiny").bg_canvas_size == 72
    assert ModelConfig.preset("tiny", bg_margin=0.0).bg_canvas_size == 64
    assert ModelConfig.preset("full").size == 512
    with pytest.raises(ValueError, match="size"):
        ModelConfig(size=100)
    with pytest.raises(ValueError, match="num_frames"):
        ModelConfig.preset("tiny", num_frames=0)


# -- face texture and warp -----------------------------------------------------------------------------------------
def test_face_generator_shapes(cfg):
    g = FaceGenerator(cfg)
    z = g.sample_z(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, g.sample_z(3, generator=torch.Generator().manual_seed(1)))
    feat, rgb = g(z)
    t = cfg.texture_size
    assert feat.shape == (3, cfg.face_feat_channels, t, t) and rgb.shape == (3, 3, t, t)


def test_warp_texture_picks_the_texel_uv_points_at():
    t = 4
    texture = torch.arange(2 * t * t, dtype=torch.float32).reshape(1, 2, t, t)
    rows, cols = torch.tensor([[0, 3], [2, 1]]), torch.tensor([[1, 0], [3, 2]])  # a 2x2 frame
    uv = torch.stack([(cols + 0.5) / t, (rows + 0.5) / t, torch.tensor([[1.0, 1.0], [0.5, 0.0]])])[None]
    out = warp_texture(texture, uv)
    assert out.shape == (1, 2, 2, 2)
    expected = texture[0][:, rows, cols] * uv[0, 2]
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(TextureWarp()(texture.expand(1, -1, -1, -1), uv), out)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 2\)"):
        warp_texture(texture, uv[:, :2])


def test_face_features_are_zero_off_the_mask(cfg):
    gen = AvatarGenerator(cfg)
    render, uv = make_inputs(cfg)
    out = gen(render, uv)
    off = uv[:, 2:3].expand_as(out["face_features"]) == 0
    assert (out["face_features"][off] == 0).all()
    assert out["face_features"][~off].abs().sum() > 0


# -- background ----------------------------------------------------------------------------------------------------
def test_background_window_shifts_exactly_by_the_offset(cfg):
    bg = BackgroundGenerator(cfg)
    z = torch.randn(1, cfg.style_dim)
    canvas = bg.canvas(z, noise="const")
    n, s = cfg.bg_canvas_size, cfg.size
    assert canvas.shape == (1, cfg.bg_feat_channels, n, n) and bg.max_offset == n - s
    a = bg.crop(canvas, torch.tensor([[2, 3], [0, 0]]))
    b = bg.crop(canvas, torch.tensor([[5, 4], [bg.max_offset, bg.max_offset]]))
    assert a.shape == (2, cfg.bg_feat_channels, s, s)
    torch.testing.assert_close(a[0, :, 1:, 3:], b[0, :, :-1, :-3], rtol=0, atol=0)  # dx = 3, dy = 1
    torch.testing.assert_close(b[1], canvas[0, :, -s:, -s:], rtol=0, atol=0)
    torch.testing.assert_close(bg(z, noise="const", offset=torch.tensor([[2, 3]])), a[:1], rtol=0, atol=0)
    centred = bg(z, noise="const")
    c = bg.max_offset // 2
    torch.testing.assert_close(centred, canvas[..., c:c + s, c:c + s], rtol=0, atol=0)
    offsets = bg.random_offset(64, generator=torch.Generator().manual_seed(0))
    assert offsets.shape == (64, 2) and offsets.min() >= 0 and offsets.max() <= bg.max_offset
    with pytest.raises(ValueError, match="offsets must lie"):
        bg.crop(canvas, torch.tensor([[bg.max_offset + 1, 0]]))


# -- image generator -----------------------------------------------------------------------------------------------
def image_generator_inputs(cfg, batch=B):
    s = cfg.size
    render, uv = make_inputs(cfg, batch)
    return (render, torch.randn(batch, cfg.face_feat_channels, s, s) * uv[:, 2:3], uv[:, 2:3],
            torch.randn(batch, cfg.bg_feat_channels, s, s))


def test_image_generator_shapes_and_ranges(cfg):
    g = ImageGenerator(cfg)
    out = g(*image_generator_inputs(cfg))
    s = cfg.size
    assert set(out) == {"image", "mask", "bg_mask"}
    assert out["image"].shape == (B, 3, s, s) and torch.isfinite(out["image"]).all()
    for key in ("mask", "bg_mask"):
        assert out[key].shape == (B, 1, s, s)
        assert out[key].min() >= 0 and out[key].max() <= 1
    with pytest.raises(ValueError, match="face_features"):
        render, feat, mask, bgf = image_generator_inputs(cfg)
        g(render, feat[:, :1], mask, bgf)


def test_time_code_on_and_off(cfg):
    inputs = image_generator_inputs(cfg)
    off = ImageGenerator(cfg).eval()
    assert not hasattr(off, "time_code")
    torch.testing.assert_close(off(*inputs, frame_index=torch.tensor([0, 1]))["image"],
                               off(*inputs, frame_index=torch.tensor([3, 2]))["image"])  # ignored without time code
    on = ImageGenerator(dataclasses.replace(cfg, use_time_code=True, num_frames=5)).eval()
    # offsets start at zero: an untrained frame code is the base code
    torch.testing.assert_close(on.style_vector(torch.tensor([0, 4]), B), on.style_vector(None, B))
    with torch.no_grad():
        on.time_code.weight.normal_()  # as if trained
    a = on(*inputs, frame_index=torch.tensor([0, 1]))["image"]
    b = on(*inputs, frame_index=torch.tensor([4, 1]))["image"]
    assert not torch.allclose(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    mean_w = on.style_mapping(on.style + on.time_code.weight.mean(0, keepdim=True)).expand(B, -1)
    torch.testing.assert_close(on.style_vector(None, B), mean_w)  # reenactment: the mean code
    assert on(*inputs)["image"].shape == a.shape
    with pytest.raises(ValueError, match="frame_index"):
        on(*inputs, frame_index=torch.tensor([0, 5]))


# -- full generator, cache, gradients ------------------------------------------------------------------------------
def test_avatar_generator_outputs(cfg):
    gen = AvatarGenerator(cfg)
    render, uv = make_inputs(cfg)
    out = gen(render, uv, bg_offset=torch.tensor([[0, 0], [8, 8]]))
    s, t = cfg.size, cfg.texture_size
    shapes = {"image": (B, 3, s, s), "mask": (B, 1, s, s), "bg_mask": (B, 1, s, s),
              "face_features": (B, cfg.face_feat_channels, s, s), "texture": (1, cfg.face_feat_channels, t, t),
              "texture_rgb": (1, 3, t, t), "bg_features": (B, cfg.bg_feat_channels, s, s)}
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    # The latent codes come from their own seeded generator, not from the global RNG.
    torch.manual_seed(123)
    torch.testing.assert_close(AvatarGenerator(cfg).z_f, gen.z_f)
    assert not torch.allclose(gen.z_f, gen.z_b)


def test_cached_outputs_match_the_uncached_path(cfg):
    gen = AvatarGenerator(cfg)
    render, uv = make_inputs(cfg)
    offset = torch.tensor([[1, 2], [7, 0]])
    full = gen(render, uv, bg_offset=offset, noise="const")
    cache = gen.compute_cache()
    assert cache["face_texture"].shape == (1, cfg.face_feat_channels, cfg.texture_size, cfg.texture_size)
    assert cache["bg_canvas"].shape == (1, cfg.bg_feat_channels, cfg.bg_canvas_size, cfg.bg_canvas_size)
    cached = gen(render, uv, bg_offset=offset, face_texture=cache["face_texture"], bg_canvas=cache["bg_canvas"],
                 noise="const")
    for key in ("image", "mask", "bg_mask", "face_features", "bg_features", "texture", "texture_rgb"):
        torch.testing.assert_close(cached[key], full[key], rtol=1e-6, atol=1e-6)
    gen.eval()  # eval mode: noise None means the fixed buffers
    torch.testing.assert_close(gen(render, uv, bg_offset=offset)["image"], full["image"], rtol=1e-6, atol=1e-6)


def test_gradients_reach_every_parameter(cfg):
    cfg = dataclasses.replace(cfg, use_time_code=True, num_frames=4)
    gen, disc = AvatarGenerator(cfg), Discriminator(cfg)
    render, uv = make_inputs(cfg)
    out = gen(render, uv, frame_index=torch.tensor([0, 3]), bg_offset=gen.background_generator.random_offset(B))
    loss = disc(out["image"], render).mean() + out["mask"].mean()
    loss.backward()
    for prefix, module in (("G", gen), ("D", disc)):
        for name, p in module.named_parameters():
            assert p.grad is not None, f"{prefix}.{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{prefix}.{name} has a non-finite gradient"
            assert p.grad.abs().sum() > 0, f"{prefix}.{name} has an all-zero gradient"


def test_image_generator_override(cfg):
    gen = AvatarGenerator(cfg)
    other = ImageGenerator(cfg)
    render, uv = make_inputs(cfg)
    a = gen(render, uv, image_generator=other, noise="const")["image"]
    b = other(render, gen(render, uv, noise="const")["face_features"], uv[:, 2:3],
              gen(render, uv, noise="const")["bg_features"], noise="const")["image"]
    torch.testing.assert_close(a, b)


# -- discriminator -------------------------------------------------------------------------------------------------
def test_discriminator_shapes(cfg):
    disc = Discriminator(cfg)
    s = cfg.size
    assert disc(torch.randn(B, 3, s, s), torch.randn(B, 3, s, s)).shape == (B, 1)
    assert disc(torch.randn(3, 3, s, s), torch.randn(3, 3, s, s)).shape == (3, 1)
    small = Discriminator(32, in_channels=6, channel_base=256, channel_max=16, mbstd_group=2)
    assert small(torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)).shape == (3, 1)
    with pytest.raises(ValueError, match="render"):
        disc(torch.randn(B, 3, s, s), torch.randn(B, 1, s, s))


def test_warp_in_bfloat16_samples_at_float32_coordinates():
    """A bf16 texture is sampled at the float32 uv it is given (bf16 coordinates land up to a texel off on a 256
    texture, and the CPU's bf16 kernel gave NaNs): only the output's own bf16 rounding remains."""
    from selfie_avatar.models import warp_texture

    torch.manual_seed(0)
    texture = torch.randn(1, 4, 256, 256).bfloat16()
    uv = torch.cat([torch.rand(2, 2, 32, 32), torch.ones(2, 1, 32, 32)], 1)
    half = warp_texture(texture, uv)
    ref = warp_texture(texture.float(), uv)
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    assert ((half.float() - ref).abs() <= ref.abs() / 128 + 1e-6).all()


def test_the_background_plate_is_the_default_background():
    cfg = ModelConfig.preset("tiny", reference_frames=0, photo_texture=False)
    assert cfg.use_background_plate  # every preset turns it on
    g = ImageGenerator(cfg).eval()
    b, s = 2, cfg.size
    render, face = torch.randn(b, 3, s, s), torch.randn(b, cfg.face_feat_channels, s, s)
    mask, bg = torch.zeros(b, 1, s, s), torch.randn(b, cfg.bg_feat_channels, s, s)  # no face in view
    plate = torch.rand(1, 3, s, s) * 2 - 1
    with pytest.raises(ValueError, match="pass the plate"):
        g(render, face, mask, bg)
    with pytest.raises(ValueError, match=r"plate must be"):
        g(render, face, mask, bg, plate=torch.zeros(1, 3, s // 2, s // 2))
    with torch.no_grad():  # a network that adds nothing of its own: what is left is the plate, where it is background
        for p in g.to_out.parameters():
            p.zero_()
        g.to_out.bias[..., 3, :, :] = -3.0  # ... and a mask logit that says "background" (sigmoid(-3) = 0.047)
    out = g(render, face, mask, bg, plate=plate)
    torch.testing.assert_close(out["image"], (1 - out["mask"]) * plate.expand(b, -1, -1, -1))
    assert out["mask"].max() < 0.05
    # The face region is person, holes (eyes, an open mouth) included: no plate shows through it.
    face_mask = torch.zeros(b, 1, s, s)
    face_mask[..., 16:48, 20:44] = 1
    face_mask[..., 26:29, 24:30] = 0  # an eye: the mesh has no triangles there
    out = g(render, face, face_mask, bg, plate=plate)
    inside = face_mask.clone()
    inside[..., 26:29, 24:30] = 1
    assert torch.equal(out["mask"][inside.bool()], torch.ones(int(inside.sum())))
    assert (out["image"] * inside).abs().max() == 0
    outside = ~inside.bool()
    assert out["mask"][outside].max() < 0.05
    assert torch.equal(filled_face(face_mask), inside)
    with pytest.raises(ValueError, match="face_mask must be"):
        filled_face(face_mask[:, 0])
    with pytest.raises(ValueError, match="without use_background_plate"):
        ImageGenerator(ModelConfig.preset("tiny", use_background_plate=False))(render, face, mask, bg, plate=plate)
