"""Triangle rasterisation with a z-buffer, in pure vectorised PyTorch (CPU and CUDA).

Screen space: ``verts[..., :2]`` are pixels, pixel (row i, col j) covers [j, j+1) x [i, i+1) and is sampled at its
centre (j + 0.5, i + 0.5); ``verts[..., 2]`` is depth, smaller = closer (orthographic camera looking along +z,
x right, y down). A triangle is *front-facing* when it winds counter-clockwise as seen in the image (y down),
i.e. its normal ``(v1 - v0) x (v2 - v0)`` points toward the camera (negative z).

Coverage is exact, as on GPUs: x, y are snapped to 1/256 px, edge functions are evaluated in integers with the
top-left fill rule, so a pixel centre on an edge shared by two triangles is counted once (whatever their winding)
and zero-area triangles draw nothing. The nearest triangle wins each pixel (depth compared in float32, exact ties
to the smallest face index). Barycentrics, depth and attributes of the winner are then evaluated from the
un-snapped ``verts`` with differentiable ops, so gradients reach vertex positions (the choice of triangle is not
differentiable).

How: each triangle's pixel bounding box (clipped, tall ones cut into bands) is tested densely, boxes grouped by
power-of-two window size and processed in chunks so memory stays bounded; covered samples are z-buffered with one
``scatter_reduce(amin)`` of a packed (depth, face) int64 key; winners' values come from per-face affine planes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["Fragments", "rasterize", "interpolate", "Rasterizer"]

_SUBPIXEL = 256  # fixed-point steps per pixel (8 sub-pixel bits, as on GPUs)
# Vertices are clamped to +-2^20 px before snapping, so on-screen edge functions stay below 2^59 in magnitude
# and adding _FAR (twice) cannot overflow int64.
_COORD_LIMIT = float(2**20)
_BAND = 64  # bounding boxes taller than this many rows are cut into bands, to bound the dense windows
_CHUNK = 1 << 21  # samples tested per dense chunk (~16 MiB per int64 buffer)
_FAR = -(2**61)  # added to an edge function to reject a window sample outside the clipped box
_EMPTY_KEY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """Per-pixel result of :func:`rasterize`.

    Attributes:
        face_index: index into ``faces`` of the visible triangle, -1 where no triangle covers the pixel.
            :math:`(B, H, W)`, long.
        bary: barycentric weights of the visible triangle's vertices at the pixel centre, zeros where empty.
            :math:`(B, H, W, 3)`, float (differentiable w.r.t. ``verts``). They sum to 1; at a triangle's rim
            one may be slightly negative (~1e-4), as coverage is decided on positions snapped to 1/256 px.
            Interpolation with them is still exact for attributes linear in x, y.
        depth: screen-space z of the visible surface, +inf where empty. :math:`(B, H, W)`, float.
    """

    face_index: Tensor
    bary: Tensor
    depth: Tensor
    # Flat (B*H*W) indices of covered pixels, kept so interpolate() need not search the mask again.
    _pix: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def mask(self) -> Tensor:
        """Covered pixels, :math:`(B, H, W)` bool."""
        return self.face_index >= 0

    def covered_pixels(self) -> Tensor:
        """Flat indices into ``B * H * W`` of the covered pixels, ascending, :math:`(M,)` long (found once)."""
        if self._pix is None:
            self._pix = torch.nonzero(self.face_index.reshape(-1) >= 0).squeeze(1)
        return self._pix


def _check_inputs(verts: Tensor, faces: Tensor, image_size: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(verts, Tensor) or verts.dim() != 3 or verts.shape[-1] != 3 or not verts.is_floating_point():
        raise ValueError(f"verts must be a float (B, V, 3) tensor, got {getattr(verts, 'shape', verts)}")
    if not isinstance(faces, Tensor) or faces.dim() != 2 or faces.shape[-1] != 3 or faces.is_floating_point():
        raise ValueError(f"faces must be an integer (F, 3) tensor, got {getattr(faces, 'shape', faces)}")
    if faces.device != verts.device:
        raise ValueError(f"faces is on {faces.device} but verts on {verts.device}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ValueError(f"faces index vertices {int(faces.min())}..{int(faces.max())}; verts has {verts.shape[1]}")
    return check_image_size(image_size)


def check_image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """``image_size`` as (H, W) ints, or ValueError."""
    if len(image_size) != 2 or any(int(s) != s or s <= 0 for s in image_size):
        raise ValueError(f"image_size must be two positive ints (H, W), got {tuple(image_size)}")
    return int(image_size[0]), int(image_size[1])


def _ceil_pow2_exponent(n: Tensor) -> Tensor:
    """Smallest k with 2^k >= n, for integer n >= 1 (frexp of n - 1 gives its bit length exactly)."""
    return torch.frexp((n - 1).to(torch.float64)).exponent.to(torch.int64)


def int_divmod(x: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """(x // d, x % d) for non-negative int64 x; shifts when d is a power of two (int64 division is ~8x slower)."""
    if d & (d - 1) == 0:
        shift = d.bit_length() - 1
        return x >> shift, x & (d - 1)
    q = torch.div(x, d, rounding_mode="floor")
    return q, x - q * d


def _setup(verts: Tensor, faces: Tensor, H: int, W: int, cull_backfaces: bool) -> dict[str, Tensor]:
    """Per drawable (triangle, or band of a tall one): box, edge functions in fixed point, depth plane, ids.

    Works on (corner, B * F) rows so every op is on contiguous memory.
    """
    B, F = verts.shape[0], faces.shape[0]
    c = verts.detach()[:, faces].permute(3, 2, 0, 1).reshape(3, 3, B * F)  # (xyz, corner, b * F + f)
    finite = None
    if not bool(torch.isfinite(c).all()):
        finite = torch.isfinite(c).all(0).all(0)
        c = torch.nan_to_num(c)
    q = torch.round(c[:2].clamp(-_COORD_LIMIT, _COORD_LIMIT) * _SUBPIXEL).to(torch.int64)
    qx, qy = q[0], q[1]  # (3, N), exact: shared vertices snap to identical integers
    area = (qx[1] - qx[0]) * (qy[2] - qy[0]) - (qy[1] - qy[0]) * (qx[2] - qx[0])
    # Also drop triangles flat in floating point (as _face_planes computes them): their planes would be 0/0.
    fx, fy = c[0], c[1]
    valid = (area != 0) & ((fx[1] - fx[0]) * (fy[2] - fy[0]) != (fy[1] - fy[0]) * (fx[2] - fx[0]))
    if finite is not None:
        valid &= finite
    if cull_backfaces:
        valid &= area < 0  # area > 0 is clockwise in the image: the normal points away from the camera

    # Pixel columns whose centre 256 j + 128 lies within [min x, max x], clipped to the image.
    half = _SUBPIXEL // 2
    x0 = (-torch.div(half - torch.minimum(torch.minimum(qx[0], qx[1]), qx[2]), _SUBPIXEL, rounding_mode="floor"))
    x1 = torch.div(torch.maximum(torch.maximum(qx[0], qx[1]), qx[2]) - half, _SUBPIXEL, rounding_mode="floor")
    y0 = (-torch.div(half - torch.minimum(torch.minimum(qy[0], qy[1]), qy[2]), _SUBPIXEL, rounding_mode="floor"))
    y1 = torch.div(torch.maximum(torch.maximum(qy[0], qy[1]), qy[2]) - half, _SUBPIXEL, rounding_mode="floor")
    x0, x1, y0, y1 = x0.clamp_min(0), x1.clamp_max(W - 1), y0.clamp_min(0), y1.clamp_max(H - 1)
    valid &= (x1 >= x0) & (y1 >= y0)
    ids = torch.nonzero(valid).squeeze(1)  # b * F + f

    # Edge e runs from vertex e+1 to e+2; w_e(p) = cross(b - a, p - a) > 0 inside a clockwise triangle.
    # Multiplying by s = sign(area) makes every triangle clockwise, so a shared edge is walked in opposite
    # directions by its two triangles and the top-left rule gives it to exactly one of them.
    qx, qy, x0, y0 = qx[:, ids], qy[:, ids], x0[ids], y0[ids]
    s = torch.sign(area[ids])
    nxt, nxt2 = torch.tensor([1, 2, 0], device=ids.device), torch.tensor([2, 0, 1], device=ids.device)
    ax, ay = qx.index_select(0, nxt), qy.index_select(0, nxt)  # row e holds v[e+1]
    dx, dy = s * (qx.index_select(0, nxt2) - ax), s * (qy.index_select(0, nxt2) - ay)  # v[e+2] - v[e+1], clockwise
    # Top edge (horizontal, walked rightwards) or left edge (walked upwards) when clockwise with y down.
    owned = (dy < 0) | ((dy == 0) & (dx > 0))
    # s * w_e at the box's first pixel centre, minus 1 on non-owned edges so "inside" is simply ">= 0".
    w_origin = dx * (y0 * _SUBPIXEL + half - ay) - dy * (x0 * _SUBPIXEL + half - ax) - (~owned).long()

    # Depth plane in pixels from the float vertices: z = z_origin + gy * row + gx * col.
    X, Y, Z = c[:, :, ids].to(torch.float64).unbind(0)
    e1x, e1y, e1z, e2x, e2y, e2z = X[1] - X[0], Y[1] - Y[0], Z[1] - Z[0], X[2] - X[0], Y[2] - Y[0], Z[2] - Z[0]
    det = e1x * e2y - e1y * e2x
    det = torch.where(det == 0, torch.ones_like(det), det)  # flat in float64 only: depth order is moot there
    gx = (e2y * e1z - e1y * e2z) / det
    gy = (e1x * e2z - e2x * e1z) / det
    z_origin = Z[0] + gx * (x0 + 0.5 - X[0]) + gy * (y0 + 0.5 - Y[0])

    # Cut tall boxes into bands of _BAND rows; each band is its own drawable.
    height = y1[ids] - y0 + 1
    n_bands = torch.div(height + _BAND - 1, _BAND, rounding_mode="floor")
    if bool((n_bands == 1).all()):
        src, shift = slice(None), torch.zeros_like(height)
    else:
        src = torch.repeat_interleave(torch.arange(ids.numel(), device=ids.device), n_bands)
        first = torch.repeat_interleave(torch.cumsum(n_bands, 0) - n_bands, n_bands)
        shift = (torch.arange(src.numel(), device=ids.device) - first) * _BAND
    step_row = (dx * _SUBPIXEL)[:, src]
    b = int_divmod(ids, F)[0] if F else ids
    return {
        "width": (x1[ids] - x0 + 1)[src],
        "height": torch.clamp_max(height[src] - shift, _BAND),
        # Per edge (w_origin, step_row, step_col): s * w_e at (row, col) of the box is their dot with (1, row, col).
        "edges": torch.cat([w_origin[:, src] + step_row * shift, step_row, (-dy * _SUBPIXEL)[:, src]], 0),  # (9, n)
        "z_origin": (z_origin[src] + gy[src] * shift).float(),
        "gy": gy[src].float(),
        "gx": gx[src].float(),
        "base": ((b * H + y0)[src] + shift) * W + x0[src],  # flat index of the box's first pixel
        "face": ids[src],  # b * F + f: the same order as f within an item, and names the batch item too
    }


def _depth_key(z: Tensor, face: Tensor) -> Tensor:
    """int64 keys ordered like (z, face) for float32 z: its bits made monotonic in the high word, face in the low."""
    bits = z.view(torch.int32)
    # Negative floats order backwards as ints; flipping their 31 low bits makes the map monotonic.
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return bits.to(torch.int64).mul_(1 << 32).add_(face)


def _zbuffer(d: dict[str, Tensor], n_pixels: int, W: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Flat index (ascending) and ``b * F + f`` of the nearest covering triangle, per covered pixel, (M,) each."""
    key = torch.full((n_pixels,), _EMPTY_KEY, dtype=torch.int64, device=device)
    kx, ky = _ceil_pow2_exponent(d["width"]), _ceil_pow2_exponent(d["height"])
    group = kx * 32 + ky  # one id per window size (ky <= log2(_BAND) < 32)
    order = torch.argsort(group, stable=True)
    d = {k: v.index_select(-1, order) for k, v in d.items()}  # each window size is now a contiguous run
    groups, counts = torch.unique_consecutive(group[order], return_counts=True)
    start = 0
    for g, n in zip(groups.tolist(), counts.tolist()):
        log_w, log_h = g // 32, g % 32
        bw, bh = 1 << log_w, 1 << log_h
        per_chunk = max(1, _CHUNK // (bw * bh))
        for lo in range(start, start + n, per_chunk):
            hi = min(lo + per_chunk, start + n)
            rc, t = _inside(d["edges"][:, lo:hi], d["width"][lo:hi], d["height"][lo:hi], bw, bh)
            if t.numel() == 0:
                continue
            t = t + lo
            r, c = rc >> log_w, rc & (bw - 1)
            z = d["z_origin"].index_select(0, t)
            z = z.addcmul_(d["gy"].index_select(0, t), r.float()).addcmul_(d["gx"].index_select(0, t), c.float())
            pix = d["base"].index_select(0, t).add_(r.mul_(W)).add_(c)
            key.scatter_reduce_(0, pix, _depth_key(z, d["face"].index_select(0, t)), "amin")
        start += n
    # Scanning the buffer (rather than keeping the samples) yields the pixels in ascending order, which makes
    # every later gather and scatter cache-friendly.
    pix = torch.nonzero(key != _EMPTY_KEY).squeeze(1)
    return pix, key[pix].bitwise_and_(0xFFFFFFFF)


def _inside(edges: Tensor, width: Tensor, height: Tensor, bw: int, bh: int) -> tuple[Tensor, Tensor]:
    """(row * bw + col, drawable) of the samples of a (bh, bw) window inside their triangle and clipped box.

    The dense grid is laid out (bh, bw, T) so the innermost, vectorised dimension is the long one.
    """
    device = edges.device
    # Small triangles keep every partial sum below 2^28: int32 is then exact (with a smaller _FAR) and faster.
    a = edges.abs()
    bound = torch.maximum(a[0:3] + a[3:6] * (bh - 1), a[6:9] * (bw - 1)).amax()
    far = _FAR
    if int(bound) < 2**28:
        edges, far = edges.int(), -(2**29)
    rows = torch.arange(bh, device=device, dtype=edges.dtype)[:, None]
    cols = torch.arange(bw, device=device, dtype=edges.dtype)[:, None]
    # Each edge function is linear in (row, col): a (3, h, T) part plus a (3, w, T) part.
    row_part = edges[0:3, None, :] + edges[3:6, None, :] * rows
    col_part = edges[6:9, None, :] * cols
    # Window samples beyond the clipped box (or band) are pushed far outside through edge 0.
    row_part[0] += (rows >= height).to(edges.dtype) * far
    col_part[0] += (cols >= width).to(edges.dtype) * far
    # The sign bit of w0 | w1 | w2 is set iff some edge function is negative: one test for all three.
    acc = row_part[0, :, None, :] + col_part[0, None, :, :]
    tmp = row_part[1, :, None, :] + col_part[1, None, :, :]
    acc |= tmp
    torch.add(row_part[2, :, None, :], col_part[2, None, :, :], out=tmp)
    acc |= tmp
    hit = torch.nonzero((acc >= 0).view(bh * bw, -1))
    return hit[:, 0], hit[:, 1]


def _face_planes(xy: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-face affine functions of the pixel, matching ``values`` at the corners; linear in barycentrics.

    Args:
        xy: corner x and y in pixels, (2, 3, N).
        values: corner values of K channels, (K, 3, N).

    Returns:
        planes (K, 3, N): (value at the origin pixel's centre, d/dcol, d/drow), and origin (2, N) long: the
        pixel (col, row) holding vertex 0. Anchoring each plane at its own triangle keeps float32 evaluation
        accurate (offsets are a few pixels, not hundreds) whatever the image size. Differentiable w.r.t. ``xy``
        and ``values``.
    """
    X, Y = xy.unbind(0)
    e1x, e1y, e2x, e2y = X[1] - X[0], Y[1] - Y[0], X[2] - X[0], Y[2] - Y[0]
    det = e1x * e2y - e1y * e2x
    # Zero-area faces never win a pixel, but a 0/0 here would still turn their (zero) gradients into NaN.
    det = torch.where(det == 0, torch.ones_like(det), det)
    da1, da2 = values[:, 1] - values[:, 0], values[:, 2] - values[:, 0]
    gx = (e2y * da1 - e1y * da2) / det
    gy = (e1x * da2 - e2x * da1) / det
    origin = torch.floor(torch.nan_to_num(xy[:, 0].detach()).clamp(-_COORD_LIMIT, _COORD_LIMIT))
    c0 = values[:, 0] + gx * (origin[0] + 0.5 - X[0]) + gy * (origin[1] + 0.5 - Y[0])
    return torch.stack([c0, gx, gy], dim=1), origin.long()


def rasterize_packed(
    verts: Tensor, faces: Tensor, H: int, W: int, cull_backfaces: bool, attrs: Tensor | None = None,
    bary: bool = True,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """The covered pixels only: (pix, b * F + f, [l1, l2,] depth, *attrs), every tensor :math:`(M,)`.

    ``pix`` indexes the flattened (B, H, W) image in ascending order. ``attrs`` (B, V, C) are interpolated in
    the same pass; ``bary=False`` skips the two barycentric channels when only interpolated values are needed.
    Every channel is an affine function of the pixel over each triangle, so it is evaluated from three per-face
    coefficients: three gathers and two fused multiply-adds per channel and pixel.
    """
    faces = faces.long()
    B, F = verts.shape[0], faces.shape[0]
    if B * F >= 2**31:
        raise ValueError(f"batch x faces = {B * F} is too many for one call; split the batch")
    pix, idx = _zbuffer(_setup(verts, faces, H, W, cull_backfaces), B * H * W, W, verts.device)
    rem = int_divmod(pix, H * W)[1]
    row, col = int_divmod(rem, W)

    table = verts if attrs is None else torch.cat([verts, attrs.to(verts.dtype)], dim=-1)
    corners = table[:, faces].permute(3, 2, 0, 1).reshape(-1, 3, B * F)  # (3 + C, corner, b * F + f)
    channels = [corners[2:]]  # depth, then attrs
    if bary:
        unit = torch.eye(3, dtype=corners.dtype, device=corners.device)[1:, :, None]  # l1, l2 at the corners
        channels.insert(0, unit.expand(2, 3, corners.shape[-1]))
    planes, origin = _face_planes(corners[:2], torch.cat(channels, 0))

    dcol = (col - origin[0].index_select(0, idx)).to(verts.dtype)
    drow = (row - origin[1].index_select(0, idx)).to(verts.dtype)
    out = [
        planes[k, 0].index_select(0, idx).addcmul(planes[k, 1].index_select(0, idx), dcol)
        .addcmul(planes[k, 2].index_select(0, idx), drow)
        for k in range(planes.shape[0])
    ]
    return pix, idx, out


def interpolate_packed(attrs: Tensor, faces: Tensor, b: Tensor, f: Tensor, bary: Tensor) -> Tensor:
    """(C, M) attributes at covered pixels of batch item b and face f, from their barycentrics (3, M).

    ``attrs`` is (B, V, C) or shared (V, C); channel-major gathers keep every op on contiguous memory.
    """
    rows = attrs.reshape(-1, attrs.shape[-1]).t().contiguous()  # (C, B * V) or (C, V)
    ids = [faces[:, k].index_select(0, f) for k in range(3)]
    if attrs.dim() == 3:
        ids = [i + b * attrs.shape[1] for i in ids]
    out = [sum(bary[k] * rows[ch].index_select(0, ids[k]) for k in range(3)) for ch in range(rows.shape[0])]
    return torch.stack(out) if out else bary.new_zeros(0, bary.shape[1])


def rasterize(
    verts: Tensor, faces: Tensor, image_size: tuple[int, int], cull_backfaces: bool = False
) -> Fragments:
    """Rasterise a batch of triangle meshes sharing one topology, keeping the nearest triangle per pixel.

    Args:
        verts: screen-space vertices: x, y in pixels, z depth (smaller = closer). See the module docstring.
        faces: vertex indices of each triangle.
        image_size: (H, W) of the output.
        cull_backfaces: drop triangles that wind clockwise in the image (normal pointing away from the camera);
            by default both windings are drawn.

    Returns:
        :class:`Fragments` with the visible face index, barycentric weights and depth per pixel.

    Raises:
        ValueError: on malformed shapes, a non-float ``verts``, out-of-range ``faces`` or a bad ``image_size``.

    Shape:
        - verts: :math:`(B, V, 3)`
        - faces: :math:`(F, 3)`
        - output: face_index :math:`(B, H, W)`, bary :math:`(B, H, W, 3)`, depth :math:`(B, H, W)`

    Example:
        >>> verts = torch.tensor([[[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 1.0]]])
        >>> rasterize(verts, torch.tensor([[0, 1, 2]]), (4, 4)).mask.sum().item()
        6
    """
    H, W = _check_inputs(verts, faces, image_size)
    B = verts.shape[0]
    n = B * H * W
    pix, idx, (l1, l2, depth) = rasterize_packed(verts, faces, H, W, cull_backfaces)
    f = int_divmod(idx, faces.shape[0])[1]
    bary = torch.stack([1.0 - l1 - l2, l1, l2], dim=1)
    return Fragments(
        face_index=torch.full((n,), -1, dtype=torch.int64, device=verts.device).index_copy_(0, pix, f).view(B, H, W),
        bary=verts.new_zeros(n, 3).index_copy(0, pix, bary).view(B, H, W, 3),
        depth=verts.new_full((n,), float("inf")).index_copy(0, pix, depth).view(B, H, W),
        _pix=pix,
    )


def interpolate(fragments: Fragments, faces: Tensor, attrs: Tensor) -> Tensor:
    """Interpolate per-vertex attributes over the visible triangles with the fragments' barycentrics.

    Args:
        fragments: output of :func:`rasterize` for the same ``faces``.
        faces: the triangles that were rasterised.
        attrs: per-vertex attributes, per batch item or shared by the whole batch.

    Returns:
        Interpolated attributes, zeros where no triangle covers the pixel; differentiable w.r.t. ``attrs`` and,
        through the barycentrics, the rasterised vertex positions.

    Shape:
        - faces: :math:`(F, 3)`
        - attrs: :math:`(B, V, C)` or :math:`(V, C)`
        - output: :math:`(B, H, W, C)`
    """
    B, H, W = fragments.face_index.shape
    if attrs.dim() not in (2, 3) or (attrs.dim() == 3 and attrs.shape[0] != B):
        raise ValueError(f"attrs must have shape ({B}, V, C) or (V, C), got {tuple(attrs.shape)}")
    check_attr_rows(attrs, faces)
    pix, b, f, bary = packed_fragments(fragments)
    vals = interpolate_packed(attrs, faces.long(), b, f, bary)
    out = vals.new_zeros(B * H * W, attrs.shape[-1]).index_copy(0, pix, vals.t())
    return out.view(B, H, W, -1)


def check_attr_rows(attrs: Tensor, faces: Tensor) -> None:
    """Raise ValueError unless ``faces`` is (F, 3) and indexes rows of ``attrs`` (..., V, C)."""
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be a (F, 3) tensor, got {tuple(faces.shape)}")
    if faces.numel() and int(faces.max()) >= attrs.shape[-2]:
        raise ValueError(f"faces index vertex {int(faces.max())} but attrs has {attrs.shape[-2]} rows")


def packed_fragments(fragments: Fragments) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(pix, batch, face, bary (3, M)) of the covered pixels of ``fragments``."""
    B, H, W = fragments.face_index.shape
    pix = fragments.covered_pixels()
    b = int_divmod(pix, H * W)[0]
    bary = fragments.bary.reshape(-1, 3).index_select(0, pix).t().contiguous()
    return pix, b, fragments.face_index.reshape(-1).index_select(0, pix), bary


class Rasterizer(nn.Module):
    """Module form of :func:`rasterize` for a fixed image size.

    Args:
        image_size: (H, W) of the output.
        cull_backfaces: see :func:`rasterize`.

    Shape:
        - verts: :math:`(B, V, 3)` screen space
        - faces: :math:`(F, 3)`
        - output: :class:`Fragments` of size :math:`(B, H, W)`
    """

    def __init__(self, image_size: tuple[int, int], cull_backfaces: bool = False) -> None:
        super().__init__()
        self.image_size = check_image_size(image_size)
        self.cull_backfaces = bool(cull_backfaces)

    def forward(self, verts: Tensor, faces: Tensor) -> Fragments:
        return rasterize(verts, faces, self.image_size, self.cull_backfaces)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, cull_backfaces={self.cull_backfaces}"
