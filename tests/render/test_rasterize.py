import importlib
import math

import pytest
import torch

from selfie_avatar.render import Fragments, Rasterizer, interpolate, rasterize

raster_module = importlib.import_module("selfie_avatar.render.rasterize")


def _mesh(points, faces, z=0.0):
    """(1, V, 3) verts from 2D points at depth z, and (F, 3) long faces."""
    pts = torch.as_tensor(points, dtype=torch.float32)
    verts = torch.cat([pts, torch.full((len(pts), 1), float(z))], dim=1)[None]
    return verts, torch.as_tensor(faces, dtype=torch.long)


def _coverage_per_face(verts, faces, size):
    """(F, H, W) int: each triangle rasterised on its own."""
    return torch.stack([rasterize(verts, faces[i : i + 1], size).mask[0].int() for i in range(len(faces))])


def _half_open_square(x0, y0, x1, y1, size):
    """Pixels whose centre lies in [x0, x1) x [y0, y1): what a top-left rule gives for an axis-aligned square."""
    i = torch.arange(size[0])[:, None] + 0.5
    j = torch.arange(size[1])[None, :] + 0.5
    return (j >= x0) & (j < x1) & (i >= y0) & (i < y1)


def _inside_strict(tri, px, py, margin):
    """float64 point-in-triangle with a margin: True well inside, False well outside, None near an edge."""
    (ax, ay), (bx, by), (cx, cy) = tri
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    w = [
        ((cx - bx) * (py - by) - (cy - by) * (px - bx)) / area,
        ((ax - cx) * (py - cy) - (ay - cy) * (px - cx)) / area,
        ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / area,
    ]
    if min(w) > margin:
        return True
    if min(w) < -margin:
        return False
    return None


@pytest.mark.parametrize(
    "corners",
    [
        (2.5, 3.5, 9.5, 11.5),  # vertices at pixel centres: edges run through rows of centres
        (2.0, 3.0, 9.0, 11.0),  # vertices at pixel corners
    ],
)
@pytest.mark.parametrize("diagonal", ["main", "anti"])
def test_square_is_covered_exactly_once(corners, diagonal):
    x0, y0, x1, y1 = corners
    pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    faces = [(0, 1, 2), (0, 2, 3)] if diagonal == "main" else [(0, 1, 3), (1, 2, 3)]
    verts, faces = _mesh(pts, faces)
    size = (16, 14)
    per_face = _coverage_per_face(verts, faces, size)
    union = rasterize(verts, faces, size).mask[0]
    assert per_face.sum(0).max() == 1, "a pixel is covered by both triangles"
    assert torch.equal(per_face.sum(0).bool(), union)
    assert torch.equal(union, _half_open_square(x0, y0, x1, y1, size))
    assert int(union.sum()) == round((x1 - x0) * (y1 - y0))


@pytest.mark.parametrize("seed", range(6))
def test_random_quad_split_has_no_gap_and_no_overlap(seed):
    g = torch.Generator().manual_seed(seed)
    # A convex quad with sub-pixel corners, some snapped onto pixel centres so shared-edge ties really occur.
    c = torch.tensor([[3.0, 2.0], [17.0, 3.0], [18.0, 16.0], [2.0, 15.0]]) + torch.rand(4, 2, generator=g) * 2
    if seed % 2:
        c = c.floor() + 0.5
    flip = seed % 3 == 0  # winding of the second triangle reversed: the rule must not depend on it
    faces = [(0, 1, 2), (0, 3, 2) if flip else (0, 2, 3)]
    verts, faces = _mesh(c.tolist(), faces)
    size = (20, 22)
    per_face = _coverage_per_face(verts, faces, size)
    union = rasterize(verts, faces, size).mask[0]
    assert per_face.sum(0).max() == 1
    assert torch.equal(per_face.sum(0).bool(), union)
    quad = c.double().tolist()
    for i in range(size[0]):
        for j in range(size[1]):
            p = (j + 0.5, i + 0.5)
            ins = [_inside_strict((quad[0], quad[1], quad[2]), *p, 1e-6),
                   _inside_strict((quad[0], quad[2], quad[3]), *p, 1e-6)]
            if any(v is True for v in ins):
                assert union[i, j], f"gap at pixel {(i, j)}"
            elif all(v is False for v in ins):
                assert not union[i, j], f"pixel {(i, j)} outside the quad is covered"


@pytest.mark.parametrize("mixed_winding", [False, True])
def test_fan_around_shared_vertex(mixed_winding):
    # 8 spokes at multiples of 45 degrees from a centre on a pixel centre: spokes and centre hit pixel centres.
    cx, cy, r = 12.5, 12.5, 8.0
    rim = [(cx + r * round(math.cos(a * math.pi / 4)), cy + r * round(math.sin(a * math.pi / 4))) for a in range(8)]
    pts = [(cx, cy)] + rim
    faces = [(0, 1 + k, 1 + (k + 1) % 8) for k in range(8)]
    if mixed_winding:
        faces = [(a, c, b) if k % 2 else (a, b, c) for k, (a, b, c) in enumerate(faces)]
    verts, faces = _mesh(pts, faces)
    size = (26, 26)
    per_face = _coverage_per_face(verts, faces, size)
    union = rasterize(verts, faces, size).mask[0]
    count = per_face.sum(0)
    assert count.max() == 1
    assert torch.equal(count.bool(), union)
    assert union[12, 12], "the shared vertex's own pixel must be covered once"
    # The fan is the square [4.5, 20.5]^2: half-open in x and y under the top-left rule.
    assert torch.equal(union, _half_open_square(4.5, 4.5, 20.5, 20.5, size))


def test_grid_mesh_with_random_winding_tiles_exactly():
    g = torch.Generator().manual_seed(3)
    n = 6
    xs = torch.arange(n + 1, dtype=torch.float32) * 3 + 1.5  # vertices on pixel centres
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            tris = [(a, b, d), (a, d, c)] if (i + j) % 2 else [(a, b, c), (b, d, c)]
            faces += [t if torch.rand(1, generator=g) < 0.5 else t[::-1] for t in tris]
    verts, faces = _mesh(pts.tolist(), faces)
    size = (22, 22)
    count = _coverage_per_face(verts, faces, size).sum(0)
    assert count.max() == 1
    assert torch.equal(count.bool(), _half_open_square(1.5, 1.5, 19.5, 19.5, size))
    assert torch.equal(rasterize(verts, faces, size).mask[0], count.bool())


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearer_triangle_wins_whatever_the_face_order(order):
    near = [(1.0, 1.0), (15.0, 1.0), (1.0, 15.0)]
    far = [(3.0, 3.0), (15.0, 3.0), (3.0, 15.0)]
    verts = torch.tensor([[[x, y, 2.0] for x, y in near] + [[x, y, 5.0] for x, y in far]])
    tris = [(0, 1, 2), (3, 4, 5)]
    faces = torch.tensor([tris[k] for k in order])
    frags = rasterize(verts, faces, (16, 16))
    near_face = order.index(0)
    # Pixel (5, 5) is inside both: the z = 2 triangle is in front.
    assert frags.face_index[0, 5, 5] == near_face
    assert frags.depth[0, 5, 5] == pytest.approx(2.0)
    # Pixel (12, 4), centre (4.5, 12.5), lies only in the far one (x + y = 17 is past the near hypotenuse).
    assert frags.face_index[0, 12, 4] == 1 - near_face
    assert frags.depth[0, 12, 4] == pytest.approx(5.0)


def test_depth_ties_go_to_the_smaller_face_index_and_slanted_depth_is_exact():
    verts, faces = _mesh([(0, 0), (10, 0), (0, 10)], [(0, 1, 2), (0, 1, 2)], z=3.0)
    assert (rasterize(verts, faces, (10, 10)).face_index[0][rasterize(verts, faces, (10, 10)).mask[0]] == 0).all()
    # Two triangles crossing each other: depth z = x for one, z = 10 - x for the other; each wins on its side.
    verts = torch.tensor([[[0.0, 0.0, 0.0], [10.0, 0.0, 10.0], [0.0, 10.0, 0.0], [10.0, 10.0, 10.0]]])
    verts2 = torch.tensor([[[0.0, 0.0, 10.0], [10.0, 0.0, 0.0], [0.0, 10.0, 10.0], [10.0, 10.0, 0.0]]])
    both = torch.cat([verts, verts2], 1)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6]])
    frags = rasterize(both, faces, (10, 10))
    x = torch.arange(10) + 0.5
    assert torch.allclose(frags.depth[0], torch.minimum(x, 10 - x).expand(10, 10), atol=1e-5)
    assert (frags.face_index[0, :, :5] <= 1).all() and (frags.face_index[0, :, 5:] >= 2).all()


def test_interpolating_a_linear_function_is_exact_at_pixel_centres():
    g = torch.Generator().manual_seed(0)
    pts = torch.tensor([[4.0, 5.0], [40.0, 6.0], [24.0, 24.0], [6.0, 42.0], [43.0, 41.0]])
    pts = pts + torch.rand(5, 2, generator=g) * 2  # sub-pixel positions
    verts = torch.cat([pts, torch.rand(5, 1, generator=g)], 1)[None]
    faces = torch.tensor([[0, 1, 2], [2, 3, 4], [0, 2, 3], [1, 4, 2]])
    frags = rasterize(verts, faces, (48, 48))
    a = torch.tensor([[0.7, -0.3], [0.25, 1.5]])
    attrs = pts @ a + torch.tensor([3.0, -2.0])  # two channels linear in x, y
    out = interpolate(frags, faces, attrs)
    ii, jj = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    expect = torch.stack([jj, ii], -1) @ a + torch.tensor([3.0, -2.0])
    m = frags.mask[0]
    assert m.sum() > 1000
    assert torch.allclose(out[0][m], expect[m], atol=1e-4)
    assert (out[0][~m] == 0).all()
    # Barycentrics: sum to one, non-negative up to the 1/512 px vertex snapping used for coverage (a centre that
    # close outside the exact triangle may be covered); empty pixels are zero / inf / -1.
    assert torch.allclose(frags.bary[0][m].sum(-1), torch.ones(int(m.sum())), atol=1e-5)
    assert frags.bary[0][m].min() > -2e-3
    assert (frags.bary[0][~m] == 0).all() and torch.isinf(frags.depth[0][~m]).all()
    assert (frags.face_index[0][~m] == -1).all()


def test_cull_backfaces_drops_clockwise_triangles():
    # (0,0) -> (0,8) -> (8,0): counter-clockwise in the image (y down), normal towards the camera: front.
    front = [(0.0, 0.0), (0.0, 8.0), (8.0, 0.0)]
    back = [(10.0, 10.0), (16.0, 10.0), (10.0, 16.0)]  # clockwise in the image: back
    verts, faces = _mesh(front + back, [(0, 1, 2), (3, 4, 5)])
    normal = torch.cross(verts[0, 1] - verts[0, 0], verts[0, 2] - verts[0, 0], dim=0)
    assert normal[2] < 0  # the documented link between winding and normal
    both = rasterize(verts, faces, (16, 16))
    culled = rasterize(verts, faces, (16, 16), cull_backfaces=True)
    assert set(both.face_index.unique().tolist()) == {-1, 0, 1}
    assert set(culled.face_index.unique().tolist()) == {-1, 0}
    assert torch.equal(culled.mask, both.face_index == 0)
    assert Rasterizer((16, 16), cull_backfaces=True)(verts, faces).mask.sum() == culled.mask.sum()


def test_batch_of_different_meshes_matches_items_alone():
    g = torch.Generator().manual_seed(1)
    n = 5
    xs = torch.linspace(2, 28, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    base = torch.stack([xx.flatten(), yy.flatten(), torch.zeros(n * n)], 1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [(a, b, c), (b, d, c)]
    faces = torch.tensor(faces)
    verts = base + torch.randn(3, n * n, 3, generator=g) * torch.tensor([1.0, 1.0, 3.0])
    frags = rasterize(verts, faces, (32, 30))
    for k in range(3):
        alone = rasterize(verts[k : k + 1], faces, (32, 30))
        assert torch.equal(frags.face_index[k], alone.face_index[0])
        assert torch.allclose(frags.bary[k], alone.bary[0])
        assert torch.equal(torch.isinf(frags.depth[k]), torch.isinf(alone.depth[0]))
    assert not torch.equal(frags.face_index[0], frags.face_index[1])


def test_triangles_partly_outside_are_clipped_not_wrapped():
    # Reaches past the right and bottom edges and above/left of the origin.
    tri = [(-5.3, -4.1), (30.2, 6.7), (9.9, 25.3)]
    verts, faces = _mesh(tri, [(0, 1, 2)])
    size = (12, 16)
    mask = rasterize(verts, faces, size).mask[0]
    for i in range(size[0]):
        for j in range(size[1]):
            inside = _inside_strict(tri, j + 0.5, i + 0.5, 1e-6)
            if inside is not None:
                assert bool(mask[i, j]) == inside, (i, j)
    # Entirely outside: nothing.
    out, _ = _mesh([(20.0, 1.0), (30.0, 1.0), (25.0, 9.0)], [(0, 1, 2)])
    assert not rasterize(out, faces, size).mask.any()
    far, _ = _mesh([(-3e6, -3e6), (3e6, -3e6), (0.0, 3e6)], [(0, 1, 2)])
    assert rasterize(far, faces, size).mask.all(), "a huge triangle covering the image covers every pixel"


def test_degenerate_triangles_draw_nothing():
    pts = [(1.0, 1.0), (9.0, 9.0), (5.0, 5.0), (2.0, 8.0), (3.0, 3.0)]
    verts, _ = _mesh(pts, [(0, 1, 2)])
    for faces in ([(0, 1, 2)], [(0, 0, 3)], [(3, 3, 3)], [(0, 4, 1)]):
        frags = rasterize(verts, torch.tensor(faces), (12, 12))
        assert not frags.mask.any(), faces
    good = rasterize(verts, torch.tensor([(0, 1, 2), (0, 3, 1)]), (12, 12))
    assert good.mask.any() and (good.face_index[good.mask] == 1).all()


def test_non_finite_vertices_drop_only_their_triangles():
    verts, faces = _mesh([(1.0, 1.0), (9.0, 1.0), (1.0, 9.0), (float("nan"), 3.0)], [(0, 1, 2), (0, 1, 3)])
    frags = rasterize(verts, faces, (10, 10))
    assert frags.mask.any() and (frags.face_index[frags.mask] == 0).all()


def test_matches_brute_force_on_random_overlapping_triangles():
    g = torch.Generator().manual_seed(7)
    F, size = 12, (24, 28)
    verts = torch.cat([torch.rand(1, 3 * F, 2, generator=g) * 34 - 3, torch.rand(1, 3 * F, 1, generator=g)], -1)
    faces = torch.arange(3 * F).view(F, 3)
    frags = rasterize(verts, faces, size)
    v = verts[0].double().tolist()
    checked = 0
    for i in range(size[0]):
        for j in range(size[1]):
            best, ambiguous = None, False
            for f in range(F):
                tri = [v[k][:2] for k in faces[f].tolist()]
                inside = _inside_strict(tri, j + 0.5, i + 0.5, 1e-6)
                if inside is None:
                    ambiguous = True
                elif inside:
                    a, b, c = (v[k] for k in faces[f].tolist())
                    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
                    l1 = ((j + 0.5 - a[0]) * (c[1] - a[1]) - (i + 0.5 - a[1]) * (c[0] - a[0])) / area
                    l2 = ((b[0] - a[0]) * (i + 0.5 - a[1]) - (b[1] - a[1]) * (j + 0.5 - a[0])) / area
                    z = a[2] + l1 * (b[2] - a[2]) + l2 * (c[2] - a[2])
                    if best is None or z < best[0]:
                        best = (z, f)
            if ambiguous:
                continue
            checked += 1
            if best is None:
                assert frags.face_index[0, i, j] == -1
            else:
                assert frags.face_index[0, i, j] == best[1], (i, j)
                assert frags.depth[0, i, j] == pytest.approx(best[0], abs=1e-5)
    assert checked > 0.9 * size[0] * size[1]


def test_large_triangles_bands_and_chunks_agree(monkeypatch):
    # Tall / wide triangles are cut into bands and tested in chunks; shrinking the chunk must change nothing.
    verts, faces = _mesh([(-1.0, -1.0), (150.0, -1.0), (-1.0, 300.0), (151.0, 301.0)], [(0, 1, 2), (1, 3, 2)])
    size = (200, 130)
    full = rasterize(verts, faces, size)
    assert full.mask.all()
    monkeypatch.setattr(raster_module, "_CHUNK", 1024)
    monkeypatch.setattr(raster_module, "_BAND", 8)
    small = rasterize(verts, faces, size)
    assert torch.equal(full.face_index, small.face_index)
    assert torch.allclose(full.bary, small.bary)


def test_gradients_reach_vertices_and_attributes():
    verts = torch.tensor([[[1.0, 1.0, 1.0], [14.0, 2.0, 2.0], [3.0, 13.0, 3.0]]], dtype=torch.float64)
    verts.requires_grad_(True)
    faces = torch.tensor([[0, 1, 2]])
    attrs = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64, requires_grad=True)
    frags = rasterize(verts, faces, (16, 16))
    img = interpolate(frags, faces, attrs)
    (img.sum() + frags.depth[frags.mask].sum()).backward()
    assert verts.grad is not None and torch.isfinite(verts.grad).all() and verts.grad.abs().sum() > 0
    assert attrs.grad is not None and attrs.grad.abs().sum() > 0
    # d(value at one pixel)/d(vertex) against finite differences (the covering triangle does not change).
    def value(v):
        return interpolate(rasterize(v, faces, (16, 16)), faces, attrs.detach())[0, 6, 5, 0]

    v0 = verts.detach().clone().requires_grad_(True)
    grad = torch.autograd.grad(value(v0), v0)[0]
    eps = 1e-6
    for k, c in [(0, 0), (1, 1), (2, 0)]:
        vp, vm = v0.detach().clone(), v0.detach().clone()
        vp[0, k, c] += eps
        vm[0, k, c] -= eps
        fd = (value(vp) - value(vm)) / (2 * eps)
        assert grad[0, k, c].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_shared_attributes_and_batched_attributes_agree():
    verts, faces = _mesh([(1.0, 1.0), (9.0, 2.0), (2.0, 9.0)], [(0, 1, 2)])
    verts = verts.expand(2, -1, -1).contiguous()
    attrs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    frags = rasterize(verts, faces, (10, 10))
    assert torch.allclose(interpolate(frags, faces, attrs), interpolate(frags, faces, attrs.expand(2, -1, -1)))


def test_fragments_and_module():
    verts, faces = _mesh([(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)], [(0, 1, 2)])
    frags = Rasterizer((4, 5))(verts, faces)
    assert isinstance(frags, Fragments)
    assert frags.face_index.shape == (1, 4, 5) and frags.face_index.dtype == torch.long
    assert frags.bary.shape == (1, 4, 5, 3) and frags.depth.shape == (1, 4, 5)
    assert frags.mask.dtype == torch.bool and int(frags.mask.sum()) == 6
    # Fragments built by hand (no cached pixel list) interpolate the same.
    manual = Fragments(frags.face_index, frags.bary, frags.depth)
    attrs = torch.rand(3, 2)
    assert torch.equal(interpolate(manual, faces, attrs), interpolate(frags, faces, attrs))


@pytest.mark.parametrize(
    "verts, faces, size",
    [
        (torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), (4, 4)),  # verts not batched
        (torch.zeros(1, 3, 2), torch.tensor([[0, 1, 2]]), (4, 4)),  # verts not 3D points
        (torch.zeros(1, 3, 3, dtype=torch.long), torch.tensor([[0, 1, 2]]), (4, 4)),  # integer verts
        (torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), (4, 4)),  # index out of range
        (torch.zeros(1, 3, 3), torch.tensor([[0.0, 1.0, 2.0]]), (4, 4)),  # float faces
        (torch.zeros(1, 3, 3), torch.tensor([0, 1, 2]), (4, 4)),  # faces not (F, 3)
        (torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), (0, 4)),  # empty image
    ],
)
def test_bad_inputs_raise_value_error(verts, faces, size):
    with pytest.raises(ValueError):
        rasterize(verts, faces, size)


def test_bad_attrs_raise():
    verts, faces = _mesh([(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)], [(0, 1, 2)])
    frags = rasterize(verts, faces, (4, 4))
    with pytest.raises(ValueError, match="attrs"):
        interpolate(frags, faces, torch.zeros(2, 3, 1))  # batch 2 for fragments of batch 1
    with pytest.raises(ValueError, match="rows"):
        interpolate(frags, faces, torch.zeros(2, 1))  # fewer rows than vertices
