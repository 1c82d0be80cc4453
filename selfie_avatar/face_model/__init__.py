"""Face models: the ``FaceModel`` interface and the default blendshape model on the MediaPipe topology."""

from selfie_avatar.face_model.base import FaceModel
from selfie_avatar.face_model.blendshape import BlendshapeFaceModel, frontal_uv, load_face_model, save_face_model
from selfie_avatar.face_model.names import BLENDSHAPE_GROUPS, BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from selfie_avatar.face_model.topology import NUM_LANDMARKS, NUM_MESH_VERTICES, mediapipe_triangles

__all__ = [
    "FaceModel", "BlendshapeFaceModel", "frontal_uv", "load_face_model", "save_face_model",
    "BLENDSHAPE_GROUPS", "BLENDSHAPE_NAMES", "NUM_BLENDSHAPES", "NUM_LANDMARKS", "NUM_MESH_VERTICES",
    "mediapipe_triangles",
]
