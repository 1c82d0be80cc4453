"""render stage: differentiable mesh rasterisation, shading and the weak-perspective camera (pure PyTorch)."""

from .camera import OrthoCamera, project
from .rasterize import Fragments, Rasterizer, interpolate, rasterize
from .rotation import axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle, matrix_to_euler, orthonormalize
from .shading import MeshRenderer, render_uv, shade, vertex_normals

__all__ = [
    "Fragments",
    "MeshRenderer",
    "OrthoCamera",
    "Rasterizer",
    "axis_angle_to_matrix",
    "euler_to_matrix",
    "interpolate",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "orthonormalize",
    "project",
    "rasterize",
    "render_uv",
    "shade",
    "vertex_normals",
]
