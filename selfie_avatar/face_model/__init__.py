"""Face models: the ``FaceModel`` interface, the default blendshape model on the MediaPipe topology, and FLAME."""

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.face_model.blendshape import BlendshapeFaceModel
from selfie_avatar.face_model.files import load_face_model, save_face_model
from selfie_avatar.face_model.uv import frontal_uv
from selfie_avatar.face_model.names import BLENDSHAPE_GROUPS, BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from selfie_avatar.face_model.topology import NUM_LANDMARKS, NUM_MESH_VERTICES, mediapipe_triangles
from selfie_avatar.face_model.flame import FLAME, load_flame_arrays
from selfie_avatar.face_model.flame_face_model import FlameFaceModel, uv_from_texture_space
from selfie_avatar.face_model.landmark_embedding import LandmarkEmbedding, load_landmark_embedding

__all__ = [
    "FaceModel", "BlendshapeFaceModel", "frontal_uv", "load_face_model", "save_face_model",
    "BLENDSHAPE_GROUPS", "BLENDSHAPE_NAMES", "NUM_BLENDSHAPES", "NUM_LANDMARKS", "NUM_MESH_VERTICES",
    "mediapipe_triangles", "FLAME", "load_flame_arrays", "FlameFaceModel", "uv_from_texture_space",
    "LandmarkEmbedding", "load_landmark_embedding",
]
