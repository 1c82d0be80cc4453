"""Interactive 3D views of a face mesh (plotly): rotate, zoom and hover in the notebook.

Model and screen space are x right, y down, z away from the camera. Plotly's default view has y up, so the mesh is
turned 180 degrees about the x axis for display (y and z negated: a rotation, so the mesh is not mirrored) and the
camera looks at the face from the front.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mesh_display_xyz", "mesh_figure", "sample_vertex_colours"]


def _array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def sample_vertex_colours(image: np.ndarray, screen: np.ndarray) -> np.ndarray:
    """Colour of the image under each projected vertex (nearest pixel), e.g. to paint the fitted mesh with the frame.

    Args:
        image: ``(H, W, 3)`` uint8.
        screen: ``(V, >=2)`` x, y in pixels (pixel (i, j) centred at (j + 0.5, i + 0.5)).

    Returns:
        ``(V, 3)`` uint8; vertices outside the image take the nearest border pixel.
    """
    img = np.asarray(image)
    pts = _array(screen)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"screen must be (V, 2) or (V, 3), got {pts.shape}")
    x = np.clip(np.floor(np.nan_to_num(pts[:, 0])), 0, img.shape[1] - 1).astype(int)
    y = np.clip(np.floor(np.nan_to_num(pts[:, 1])), 0, img.shape[0] - 1).astype(int)
    return img[y, x]


def mesh_display_xyz(vertices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plotly's x, y, z of ``(V, 3)`` vertices: y up and z towards the viewer, a 180-degree turn (not a mirror)."""
    v = _array(vertices).astype(np.float64)
    return v[:, 0], -v[:, 1], -v[:, 2]


def mesh_figure(vertices, faces, vertex_colours: np.ndarray | None = None, colour: str = "lightsteelblue",
                title: str | None = None, height: int = 480, wireframe: bool = False):
    """A plotly figure of a triangle mesh.

    Args:
        vertices: ``(V, 3)`` positions (numpy or torch) in model or screen space (x right, y down, z away).
        faces: ``(T, 3)`` vertex indices.
        vertex_colours: ``(V, 3)`` uint8 RGB per vertex (see :func:`sample_vertex_colours`); default one colour.
        colour: the mesh colour without ``vertex_colours``.
        title: figure title.
        height: figure height in pixels.
        wireframe: draw the triangle edges too (slower in the browser for full meshes).

    Returns:
        ``plotly.graph_objects.Figure`` (shows itself when it ends a notebook cell).

    Raises:
        ValueError: wrong shapes, or face indices outside the vertices.
    """
    import plotly.graph_objects as go

    v = _array(vertices).astype(np.float64)
    f = _array(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be (T, 3) integer indices, got {f.shape} {f.dtype}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces index vertices 0..{len(v) - 1}, got {f.min()}..{f.max()}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf (a frame without a face?)")
    x, y, z = mesh_display_xyz(v)
    mesh = dict(x=x, y=y, z=z, i=f[:, 0], j=f[:, 1], k=f[:, 2], flatshading=False,
                lighting=dict(ambient=0.5, diffuse=0.7, specular=0.15, roughness=0.6),
                lightposition=dict(x=0, y=0, z=1e5), hoverinfo="skip", name="mesh")
    if vertex_colours is not None:
        vc = np.asarray(vertex_colours)
        if vc.shape != (len(v), 3):
            raise ValueError(f"vertex_colours must be ({len(v)}, 3), got {vc.shape}")
        mesh["vertexcolor"] = [f"rgb({r},{g},{b})" for r, g, b in vc.astype(int)]
    else:
        mesh["color"] = colour
    data = [go.Mesh3d(**mesh)]
    if wireframe:
        tri = np.concatenate([f, f[:, :1], np.full((len(f), 1), -1)], 1).ravel()
        pts = np.where(tri[:, None] >= 0, np.stack([x, y, z], 1)[np.maximum(tri, 0)], np.nan)
        data.append(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines",
                                 line=dict(color="black", width=1), hoverinfo="skip", name="edges"))
    fig = go.Figure(data=data)
    fig.update_layout(
        title=title, height=height, margin=dict(l=0, r=0, t=40 if title else 0, b=0), showlegend=False,
        scene=dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False,
                   camera=dict(eye=dict(x=0, y=0, z=2.0), up=dict(x=0, y=1, z=0))),
    )
    return fig
