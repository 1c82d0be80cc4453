"""Shading on top of :mod:`.rasterize`: vertex normals, a grey two-sided Lambert render and a UV render.

All directions are in screen space: x right, y down, z away from the camera. ``light_dir`` points from the surface
toward the light, so the default (0.3, -0.4, -1.0) is a light in front of the face, slightly up and to the right.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rasterize import (Fragments, check_attr_rows, check_image_size, int_divmod, interpolate_packed, packed_fragments,
                        rasterize_packed)

__all__ = ["vertex_normals", "shade", "render_uv", "MeshRenderer"]

_EPS = 1e-12


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Unit vertex normals: the area-weighted sum of the adjacent face normals, normalised.

    A face normal is ``(v1 - v0) x (v2 - v0)``, whose length is twice the triangle area, so big triangles weigh
    more. It points toward the camera (negative z) for triangles that wind counter-clockwise in the image.
    Vertices used by no triangle (or only degenerate ones) get a zero normal.

    Args:
        verts: vertex positions (any space where x, y, z share one unit, e.g. screen space).
        faces: vertex indices of each triangle.

    Returns:
        Unit normals (zero where undefined).

    Shape:
        - verts: :math:`(B, V, 3)`
        - faces: :math:`(F, 3)`
        - output: :math:`(B, V, 3)`
    """
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    faces = faces.long()
    tri = verts[:, faces]  # (B, F, 3, 3)
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    n = torch.zeros_like(verts)
    for k in range(3):
        n = n.index_add(1, faces[:, k], fn)
    return F.normalize(n, dim=-1, eps=_EPS)


def _lambert(normals: Sequence[Tensor], light: Tensor, ambient: float, diffuse: float, albedo: float) -> Tensor:
    """(M,) grey intensity from the 3 components (M,) of interpolated (not yet unit) normals at covered pixels."""
    nx, ny, nz = normals
    l = F.normalize(light.to(nx), dim=0)
    # |n . l| / |n|: two-sided (the render does not depend on the winding); eps as in F.normalize.
    n_dot_l = (nx * l[0] + ny * l[1] + nz * l[2]).abs()
    norm = torch.sqrt(nx * nx + ny * ny + nz * nz).clamp_min(_EPS)
    return (albedo * (ambient + diffuse * n_dot_l / norm)).clamp(0.0, 1.0)


def _to_image(pix: Tensor, channels: list[Tensor], B: int, H: int, W: int) -> Tensor:
    """(B, C, H, W) image, zeros except at the flat (B*H*W) indices ``pix``, where channel c is channels[c] (M,).

    ``pix`` ascending keeps every write sequential. In-place index_copy_ into a fresh buffer is still
    differentiable w.r.t. the values, and avoids a full-image copy per channel.
    """
    C, HW = len(channels), H * W
    base = pix if C == 1 else pix + int_divmod(pix, HW)[0] * ((C - 1) * HW)
    out = channels[0].new_zeros(B * C * HW)
    for c, vals in enumerate(channels):
        out.index_copy_(0, base + c * HW if c else base, vals)
    return out.view(B, C, H, W)


def _light_tensor(light_dir: Sequence[float] | Tensor) -> Tensor:
    light = torch.as_tensor(light_dir, dtype=torch.float32).reshape(-1)
    if light.numel() != 3 or not torch.isfinite(light).all() or float(light.norm()) == 0.0:
        raise ValueError(f"light_dir must be a finite non-zero 3-vector, got {light_dir}")
    return light


def shade(
    fragments: Fragments,
    faces: Tensor,
    verts: Tensor,
    light_dir: Sequence[float] | Tensor = (0.3, -0.4, -1.0),
    ambient: float = 0.35,
    diffuse: float = 0.65,
    albedo: float = 0.8,
) -> Tensor:
    """Grey two-sided Lambert render: ``albedo * (ambient + diffuse * |n . l|)``, clamped to [0, 1].

    Normals are the :func:`vertex_normals` interpolated over each pixel's visible triangle and re-normalised.

    Args:
        fragments: output of :func:`~selfie_avatar.render.rasterize` for ``verts`` and ``faces``.
        faces: vertex indices of each triangle.
        verts: the rasterised screen-space vertices.
        light_dir: direction from the surface toward the light (screen axes; need not be unit length).
        ambient: light reaching every covered pixel.
        diffuse: weight of the Lambert term.
        albedo: grey surface reflectance.

    Returns:
        RGB image with three equal channels, 0 where no triangle covers the pixel.

    Shape:
        - faces: :math:`(F, 3)`
        - verts: :math:`(B, V, 3)`
        - output: :math:`(B, 3, H, W)`
    """
    light = _light_tensor(light_dir)
    B, H, W = fragments.face_index.shape
    pix, b, f, bary = packed_fragments(fragments)
    normals = interpolate_packed(vertex_normals(verts, faces), faces.long(), b, f, bary)
    grey = _lambert(normals, light, ambient, diffuse, albedo)
    return _to_image(pix, [grey, grey, grey], B, H, W)


def _check_uv(uv: Tensor, batch: int | None = None) -> None:
    if uv.dim() not in (2, 3) or uv.shape[-1] != 2 or (uv.dim() == 3 and batch is not None and uv.shape[0] != batch):
        want = "(V, 2) or (B, V, 2)" if batch is None else f"(V, 2) or ({batch}, V, 2)"
        raise ValueError(f"uv must have shape {want}, got {tuple(uv.shape)}")


def render_uv(fragments: Fragments, faces: Tensor, uv: Tensor) -> Tensor:
    """The I_UV image: per-pixel (u, v) interpolated from the vertices, plus the coverage mask.

    Args:
        fragments: output of :func:`~selfie_avatar.render.rasterize` for ``faces``.
        faces: vertex indices of each triangle.
        uv: per-vertex texture coordinates in [0, 1], shared by the batch or per item.

    Returns:
        Channels (u, v, mask): mask is 1 on covered pixels and 0 elsewhere, where u = v = 0 too.

    Shape:
        - faces: :math:`(F, 3)`
        - uv: :math:`(V, 2)` or :math:`(B, V, 2)`
        - output: :math:`(B, 3, H, W)`
    """
    _check_uv(uv, fragments.face_index.shape[0])
    check_attr_rows(uv, faces)
    B, H, W = fragments.face_index.shape
    pix, b, f, bary = packed_fragments(fragments)
    uv_pix = interpolate_packed(uv, faces.long(), b, f, bary)
    return _to_image(pix, [uv_pix[0], uv_pix[1], torch.ones_like(uv_pix[0])], B, H, W)


class MeshRenderer(nn.Module):
    """Rasterise a fixed-topology mesh once and produce the shaded render I_R, the UV render I_UV, mask and depth.

    Args:
        image_size: (H, W) of the outputs.
        faces: vertex indices of each triangle, :math:`(F, 3)` (registered as a buffer).
        uv: per-vertex texture coordinates in [0, 1], :math:`(V, 2)` (registered as a buffer).
        light_dir, ambient, diffuse, albedo: see :func:`shade`.
        cull_backfaces: see :func:`~selfie_avatar.render.rasterize`; off by default.

    Returns (from ``forward``):
        dict with ``render`` :math:`(B, 3, H, W)` the grey Lambert image (0 off the mesh), ``uv``
        :math:`(B, 3, H, W)` the (u, v, mask) image, ``mask`` :math:`(B, 1, H, W)` float in {0, 1}, ``depth``
        :math:`(B, 1, H, W)` the screen-space z of the visible surface, 0 (not inf) where empty.

    Shape:
        - verts: :math:`(B, V, 3)` screen space (see :mod:`~selfie_avatar.render.rasterize`)

    Example:
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> out = MeshRenderer((8, 8), faces, uv)(torch.tensor([[[0.0, 0.0, 1.0], [8.0, 0.0, 1.0], [0.0, 8.0, 1.0]]]))
        >>> sorted(out), tuple(out["render"].shape)
        (['depth', 'mask', 'render', 'uv'], (1, 3, 8, 8))
    """

    faces: Tensor
    uv: Tensor
    light_dir: Tensor

    def __init__(
        self,
        image_size: tuple[int, int],
        faces: Tensor,
        uv: Tensor,
        light_dir: Sequence[float] | Tensor = (0.3, -0.4, -1.0),
        ambient: float = 0.35,
        diffuse: float = 0.65,
        albedo: float = 0.8,
        cull_backfaces: bool = False,
    ) -> None:
        super().__init__()
        faces = torch.as_tensor(faces)
        uv = torch.as_tensor(uv)
        if faces.dim() != 2 or faces.shape[-1] != 3 or faces.is_floating_point():
            raise ValueError(f"faces must be an integer (F, 3) tensor, got {tuple(faces.shape)} {faces.dtype}")
        if uv.dim() != 2 or uv.shape[-1] != 2:
            raise ValueError(f"uv must have shape (V, 2), got {tuple(uv.shape)}")
        if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= uv.shape[0]):
            raise ValueError(
                f"faces index vertices in [{int(faces.min())}, {int(faces.max())}] but uv has {uv.shape[0]} rows"
            )
        self.image_size = check_image_size(image_size)
        self.register_buffer("faces", faces.long())
        self.register_buffer("uv", uv.float())
        self.register_buffer("light_dir", _light_tensor(light_dir))
        self.ambient, self.diffuse, self.albedo = float(ambient), float(diffuse), float(albedo)
        self.cull_backfaces = bool(cull_backfaces)

    def forward(self, verts: Tensor) -> dict[str, Tensor]:
        # faces were checked against uv once, in the constructor; only verts can be wrong here.
        if verts.dim() != 3 or verts.shape[-1] != 3 or not verts.is_floating_point():
            raise ValueError(f"verts must be a float (B, V, 3) tensor, got {tuple(verts.shape)} {verts.dtype}")
        if verts.shape[1] != self.uv.shape[0]:
            raise ValueError(f"verts has {verts.shape[1]} vertices but the renderer's uv has {self.uv.shape[0]}")
        B, (H, W) = verts.shape[0], self.image_size
        # Normals and uv are interpolated in the same pass as depth.
        attrs = torch.cat([vertex_normals(verts, self.faces), self.uv.to(verts).expand(B, -1, -1)], dim=-1)
        pix, _, (depth, nx, ny, nz, u, v) = rasterize_packed(
            verts, self.faces, H, W, self.cull_backfaces, attrs, bary=False
        )
        grey = _lambert((nx, ny, nz), self.light_dir, self.ambient, self.diffuse, self.albedo)
        ones = torch.ones_like(grey)
        return {
            "render": _to_image(pix, [grey, grey, grey], B, H, W),
            "uv": _to_image(pix, [u, v, ones], B, H, W),
            "mask": _to_image(pix, [ones], B, H, W),
            "depth": _to_image(pix, [depth], B, H, W),
        }

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, faces={self.faces.shape[0]}, light_dir={self.light_dir.tolist()}, "
            f"ambient={self.ambient}, diffuse={self.diffuse}, albedo={self.albedo}, "
            f"cull_backfaces={self.cull_backfaces}"
        )
