import math

import pytest
import torch

from selfie_avatar.geometry import euler_to_matrix
from selfie_avatar.render import MeshRenderer, rasterize, render_uv, shade, vertex_normals


def _grid(n=6, lo=4.0, hi=28.0):
    """Regular n x n grid of screen points (V, 2), faces (F, 3) counter-clockwise in the image, uv (V, 2)."""
    t = torch.linspace(0, 1, n)
    v, u = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([lo + (hi - lo) * u, lo + (hi - lo) * v], -1).reshape(-1, 2)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [(a, c, b), (b, c, d)]  # (0,0) -> (0,1) -> (1,0): counter-clockwise with y down
    return pts, torch.tensor(faces), torch.stack([u, v], -1).reshape(-1, 2)


def _tilted(pts, angle, centre=16.0):
    """Plane through the grid, rotated about the vertical (y) axis by ``angle``: z varies with x."""
    z = (pts[:, 0] - centre) * math.tan(angle)
    return torch.cat([pts, z[:, None]], 1)[None]


def test_vertex_normals_of_a_plane_face_the_camera():
    pts, faces, _ = _grid()
    verts = _tilted(pts, 0.0)
    n = vertex_normals(verts, faces)
    assert n.shape == verts.shape
    assert torch.allclose(n, torch.tensor([0.0, 0.0, -1.0]).expand_as(n), atol=1e-6)
    # Tilted about y: the normal leans along x, stays unit length.
    n = vertex_normals(_tilted(pts, 0.5), faces)
    expect = torch.tensor([math.sin(0.5), 0.0, -math.cos(0.5)])
    assert torch.allclose(n, expect.expand_as(n), atol=1e-5)
    # Reversed winding flips them.
    assert torch.allclose(vertex_normals(_tilted(pts, 0.5), faces.flip(1)), -n, atol=1e-6)


def test_vertex_normals_are_area_weighted():
    # Vertex 0 is shared by a big triangle in the z = 0 plane and a tiny one tilted out of it.
    verts = torch.tensor([[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, -0.1, 0.1]]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 3]])
    n0 = vertex_normals(verts, faces)[0, 0]
    assert n0[2] < -0.99  # dominated by the big face
    assert vertex_normals(verts, faces)[0, 3].norm() == pytest.approx(1.0)


def test_plane_facing_the_light_is_brighter_than_a_tilted_one():
    pts, faces, _ = _grid()
    light = (0.0, 0.0, -1.0)
    images = []
    for angle in (0.0, 0.6, 1.2):
        verts = _tilted(pts, angle)
        frags = rasterize(verts, faces, (32, 32))
        img = shade(frags, faces, verts, light_dir=light)
        assert img.shape == (1, 3, 32, 32)
        assert torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 0], img[:, 2])
        assert (img[:, 0][~frags.mask] == 0).all()
        images.append(img[0, 0][frags.mask[0]].mean().item())
    assert images[0] > images[1] > images[2]
    # Facing the light: albedo * (ambient + diffuse) = 0.8 exactly; at 60 degrees off, 0.8 * (0.35 + 0.65 cos).
    assert images[0] == pytest.approx(0.8, abs=1e-5)
    assert images[1] == pytest.approx(0.8 * (0.35 + 0.65 * math.cos(0.6)), abs=1e-4)


def test_shading_is_two_sided_and_in_range():
    pts, faces, _ = _grid()
    verts = _tilted(pts, 0.4)
    frags = rasterize(verts, faces, (32, 32))
    front = shade(frags, faces, verts)
    back = shade(frags, faces.flip(1), verts)
    assert torch.allclose(front, back)
    assert front.min() >= 0 and front.max() <= 1
    bright = shade(frags, faces, verts, ambient=0.9, diffuse=0.9, albedo=1.0)
    assert bright.max() == 1.0  # clamped


def test_render_uv_mask_and_values():
    pts, faces, uv = _grid(n=5, lo=4.5, hi=24.5)  # vertices on pixel centres
    verts = _tilted(pts, 0.3)
    frags = rasterize(verts, faces, (30, 30))
    img = render_uv(frags, faces, uv)
    assert img.shape == (1, 3, 30, 30)
    assert torch.equal(img[0, 2].bool(), frags.mask[0])
    assert set(img[0, 2].unique().tolist()) <= {0.0, 1.0}
    assert (img[0, :2][:, ~frags.mask[0]] == 0).all()
    # Vertex (u, v) = (0.25, 0.5) sits at x = 4.5 + 20 * 0.25 = 9.5, y = 14.5: pixel (row 14, col 9).
    assert img[0, 0, 14, 9] == pytest.approx(0.25, abs=1e-5)
    assert img[0, 1, 14, 9] == pytest.approx(0.5, abs=1e-5)
    # Corner vertex (0, 0) at pixel (4, 4), covered thanks to the top-left rule.
    assert img[0, :2, 4, 4].tolist() == pytest.approx([0.0, 0.0], abs=1e-6) and img[0, 2, 4, 4] == 1
    # Per-item uv (B, V, 2) works too.
    assert torch.allclose(render_uv(frags, faces, uv[None]), img)
    with pytest.raises(ValueError, match="uv"):
        render_uv(frags, faces, uv[:, :1])


def test_mesh_renderer_matches_the_functions():
    pts, faces, uv = _grid()
    B = 3
    angles = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [-0.4, 0.3, -0.2]])
    centred = torch.cat([pts - 16.0, torch.zeros(len(pts), 1)], 1)
    verts = centred @ euler_to_matrix(angles).transpose(-1, -2) + torch.tensor([16.0, 16.0, 50.0])
    renderer = MeshRenderer((32, 32), faces, uv, light_dir=(0.2, -0.3, -1.0))
    out = renderer(verts)
    assert set(out) == {"render", "uv", "mask", "depth"}
    assert out["render"].shape == (B, 3, 32, 32) and out["uv"].shape == (B, 3, 32, 32)
    assert out["mask"].shape == (B, 1, 32, 32) and out["depth"].shape == (B, 1, 32, 32)
    frags = rasterize(verts, faces, (32, 32))
    assert torch.equal(out["mask"][:, 0].bool(), frags.mask)
    assert torch.equal(out["uv"][:, 2], out["mask"][:, 0])
    assert torch.allclose(out["render"], shade(frags, faces, verts, light_dir=(0.2, -0.3, -1.0)), atol=1e-5)
    assert torch.allclose(out["uv"], render_uv(frags, faces, uv), atol=1e-5)
    assert torch.allclose(out["depth"][:, 0][frags.mask], frags.depth[frags.mask], atol=1e-4)
    assert (out["depth"][:, 0][~frags.mask] == 0).all()
    assert not torch.equal(out["render"][0], out["render"][1])


def test_mesh_renderer_gradients_and_buffers():
    pts, faces, uv = _grid()
    renderer = MeshRenderer((32, 32), faces, uv)
    assert {name for name, _ in renderer.named_buffers()} >= {"faces", "uv"}
    verts = _tilted(pts, 0.3).requires_grad_(True)
    out = renderer(verts)
    (out["render"].sum() + out["uv"][:, :2].sum() + out["depth"].sum()).backward()
    assert torch.isfinite(verts.grad).all() and verts.grad.abs().sum() > 0
    renderer64 = renderer.to(torch.float64)
    assert renderer64.uv.dtype == torch.float64 and renderer64.faces.dtype == torch.long
    assert renderer64(_tilted(pts, 0.3).double())["render"].dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"faces": torch.tensor([[0, 1, 99]])},
        {"uv": torch.zeros(36, 3)},
        {"light_dir": (0.0, 0.0, 0.0)},
        {"image_size": (32,)},
    ],
)
def test_mesh_renderer_rejects_bad_settings(kwargs):
    pts, faces, uv = _grid()
    args = {"image_size": (32, 32), "faces": faces, "uv": uv} | kwargs
    with pytest.raises(ValueError):
        MeshRenderer(**args)


def test_mesh_renderer_rejects_mismatched_verts():
    pts, faces, uv = _grid()
    renderer = MeshRenderer((32, 32), faces, uv)
    with pytest.raises(ValueError, match="vertices"):
        renderer(_tilted(pts, 0.0)[:, :10])
