"""render stage: differentiable mesh rasterisation, shading and the weak-perspective camera (pure PyTorch).
Rotations live in ``selfie_avatar.geometry``."""

from .camera import OrthoCamera, project
from .rasterize import Fragments, Rasterizer, interpolate, rasterize
from .shading import MeshRenderer, render_uv, shade, vertex_normals

__all__ = [
    "Fragments",
    "MeshRenderer",
    "OrthoCamera",
    "Rasterizer",
    "interpolate",
    "project",
    "rasterize",
    "render_uv",
    "shade",
    "vertex_normals",
]
