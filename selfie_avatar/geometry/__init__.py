"""geometry: rotations (Euler angles, axis-angle, 6D, SO(3) projection) and 2D similarity warps, the one home of
the conventions that the face models, the rasteriser's camera, tracking, the encoder, the training augmentation and
the sliders share. Pure PyTorch, no other stage."""

from selfie_avatar.geometry.rotation import (axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle,
                                             matrix_to_euler, matrix_to_rotation_6d, orthonormalize,
                                             rotation_6d_to_matrix)
from selfie_avatar.geometry.similarity import similarity_matrix, warp_images, warp_points

__all__ = ["axis_angle_to_matrix", "euler_to_matrix", "matrix_to_axis_angle", "matrix_to_euler",
           "matrix_to_rotation_6d", "orthonormalize", "rotation_6d_to_matrix", "similarity_matrix", "warp_images",
           "warp_points"]
