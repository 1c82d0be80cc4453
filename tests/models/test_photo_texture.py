import pytest
import torch

from selfie_avatar.models.avatar import AvatarGenerator
from selfie_avatar.models.config import ModelConfig
from selfie_avatar.models.image_generator import inside_cover
from selfie_avatar.models.photo_texture import accumulate_photo_texture, finish_photo_texture
from selfie_avatar.models.warp import warp_texture


def _identity_uv(b: int, s: int, covered: torch.Tensor | None = None) -> torch.Tensor:
    """A UV image whose pixel (i, j) shows texel (i, j) of an S x S texture (its centre)."""
    centres = (torch.arange(s) + 0.5) / s
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    mask = torch.ones(s, s) if covered is None else covered.float()
    return torch.stack([u, v, mask])[None].expand(b, -1, -1, -1).clone()


def test_unwrapping_and_warping_back_is_the_mean_frame():
    torch.manual_seed(0)
    frames = torch.rand(3, 3, 16, 16) * 2 - 1
    uv = _identity_uv(3, 16)
    texture = finish_photo_texture(*accumulate_photo_texture(frames, uv, 16))
    assert texture.shape == (1, 3, 16, 16)
    # Each texel is the mean of the pixels that showed it, and warping it back through the same I_UV gives them.
    torch.testing.assert_close(warp_texture(texture, uv[:1]), frames.mean(0, keepdim=True), atol=1e-5, rtol=0)
    # Chunks add up: two calls give the one call's totals; uint8 frames are read as [0, 255].
    first = accumulate_photo_texture(frames[:1], uv[:1], 16)
    both = accumulate_photo_texture(frames[1:], uv[1:], 16, first)
    torch.testing.assert_close(finish_photo_texture(*both), texture)
    as_bytes = ((frames + 1) * 127.5).round().to(torch.uint8)
    torch.testing.assert_close(finish_photo_texture(*accumulate_photo_texture(as_bytes, uv, 16)), texture,
                               atol=1 / 127.5, rtol=0)


def test_uncovered_texels_take_their_neighbourhood_colour():
    covered = torch.zeros(16, 16, dtype=torch.bool)
    covered[:, :8] = True                                          # the left half of the texture is seen
    frames = torch.zeros(1, 3, 16, 16)
    frames[:, 0] = 0.5                                             # one colour, red 0.5
    texture = finish_photo_texture(*accumulate_photo_texture(frames, _identity_uv(1, 16, covered), 16))
    torch.testing.assert_close(texture[0, 0], torch.full((16, 16), 0.5))   # the hidden half too
    assert (texture[0, 1:] == 0).all()
    # Nothing covered: a zero texture, which the generator treats as no photo texture at all.
    assert (finish_photo_texture(torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)) == 0).all()


def test_the_photo_texture_checks_its_inputs():
    with pytest.raises(ValueError, match="images"):
        accumulate_photo_texture(torch.zeros(1, 4, 8, 8), _identity_uv(1, 8), 8)
    with pytest.raises(ValueError, match="uv"):
        accumulate_photo_texture(torch.zeros(1, 3, 8, 8), _identity_uv(1, 4), 8)
    with pytest.raises(ValueError, match="totals"):
        accumulate_photo_texture(torch.zeros(1, 3, 8, 8), _identity_uv(1, 8), 8,
                                 (torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)))
    with pytest.raises(ValueError, match="sums"):
        finish_photo_texture(torch.zeros(3, 4, 4), torch.zeros(1, 8, 8))


def test_the_generator_adds_the_photo_texture_to_the_rgb_view():
    cfg = ModelConfig.preset("tiny")
    assert cfg.photo_texture
    torch.manual_seed(0)
    plain = AvatarGenerator(ModelConfig.preset("tiny", photo_texture=False)).eval()
    torch.manual_seed(0)
    g = AvatarGenerator(cfg).eval()
    # G_fa's RGB layers start at zero, so the RGB view starts as the photo texture; every other weight is the one
    # the generator without a photo texture draws.
    assert (g.compute_cache()["texture_rgb"] == 0).all()
    rgb_layers = [k for k in plain.state_dict() if k.startswith("face_generator.") and "to_rgb" in k
                  and k.endswith("conv.weight")]
    assert rgb_layers
    for name, p in plain.state_dict().items():
        assert torch.equal(g.state_dict()[name], torch.zeros_like(p) if name in rgb_layers else p), name
    with torch.no_grad():
        for name in rgb_layers:
            plain.get_parameter(name).zero_()
    s = cfg.size
    render = torch.rand(2, 3, s, s) * 2 - 1
    uv = _identity_uv(2, s)
    uv[:, 2, :8] = 0                                               # some pixels off the face
    kwargs = dict(plate=torch.zeros(1, 3, s, s), reference=torch.zeros(2, 6, s, s))
    with torch.no_grad():
        # The output layer starts at zero (an image that ignores every input); give both the same random one.
        plain.image_generator.to_out.conv.weight.normal_()
        g.image_generator.to_out.conv.weight.copy_(plain.image_generator.to_out.conv.weight)
        a = plain(render, uv, **kwargs)
        b = g(render, uv, **kwargs)
        # Unfilled (zero), the photo only dims the network's colour by its weight.
        torch.testing.assert_close(b["image"], (1 - b["photo_weight"]) * a["image"], atol=1e-5, rtol=0)
        g.photo_texture.copy_(torch.rand(1, 3, cfg.texture_size, cfg.texture_size) * 2 - 1)
        c = g(render, uv, **kwargs)
        cache = g.compute_cache()
        d = g(render, uv, face_texture=cache["face_texture"], bg_canvas=cache["bg_canvas"], **kwargs)
        g.image_generator.to_out.conv.weight.zero_()                # the network's own colour: zero
        e = g(render, uv, **kwargs)
    # Filled, the warped features' RGB view is the warped photo texture, the rest is unchanged; and the image shows
    # it as the face's colour where the face is (and the mask says person), the network adding what it lacks.
    torch.testing.assert_close(c["face_features"][:, :3] - a["face_features"][:, :3],
                               warp_texture(g.photo_texture, uv), atol=1e-5, rtol=0)
    torch.testing.assert_close(c["face_features"][:, 3:], a["face_features"][:, 3:])
    assert (c["image"] - a["image"]).abs().max() > 1e-3
    # With the network's own colour at zero, the image is the photo by its weight: sigmoid(2) where the face
    # model covers the frame, fading to 0 at the edge of its coverage (and the zero reference mixed in after it).
    inside = inside_cover(uv[:, 2:3], g.image_generator.feather)
    torch.testing.assert_close(e["photo_weight"], torch.sigmoid(torch.tensor(2.0)) * inside)
    shown = (1 - e["reference_weight"]) * e["photo_weight"] * e["mask"]
    torch.testing.assert_close(e["image"], shown * warp_texture(g.photo_texture, uv), atol=1e-5, rtol=0)
    assert (shown.max() > 0.5) and (e["photo_weight"][uv[:, 2:3] == 0] == 0).all()
    # The cache (frozen generators, inference) carries it too.
    torch.testing.assert_close(d["image"], c["image"])
    torch.testing.assert_close(cache["texture_rgb"], c["texture_rgb"])


def test_inside_cover_fades_to_zero_at_the_edge_of_the_coverage():
    face_mask = torch.zeros(1, 1, 16, 16)
    face_mask[..., 2:14, 2:14] = 1
    face_mask[..., 7:9, 7:9] = 0                                  # a hole (an eye)
    assert torch.equal(inside_cover(face_mask), face_mask)
    soft = inside_cover(face_mask, feather=1)
    assert (soft[face_mask == 0] == 0).all()                        # nothing where the model does not cover
    assert soft[0, 0, 4, 4] == 1 and 0 < soft[0, 0, 2, 8] < 1 and 0 < soft[0, 0, 6, 7] < 1
    with pytest.raises(ValueError, match="feather"):
        inside_cover(face_mask, feather=-1)
