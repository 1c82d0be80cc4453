"""The 52 expression codes of the default face model: MediaPipe's (ARKit-style) blendshape names, in its order.

They are person-independent (a score of 0.8 on ``jawOpen`` means an open jaw on anyone), which is what makes
cross-identity reenactment and named sliders work. ``_neutral`` is MediaPipe's own first entry and kept so that
indices match the landmarker's output.
"""

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)

NUM_BLENDSHAPES = len(BLENDSHAPE_NAMES)  # 52

# Slider groups (used by viz); every name except _neutral belongs to exactly one group.
BLENDSHAPE_GROUPS: dict[str, tuple[str, ...]] = {
    "brows": tuple(n for n in BLENDSHAPE_NAMES if n.startswith("brow")),
    "eyes": tuple(n for n in BLENDSHAPE_NAMES if n.startswith("eye")),
    "cheeks_nose": tuple(n for n in BLENDSHAPE_NAMES if n.startswith(("cheek", "nose"))),
    "mouth": tuple(n for n in BLENDSHAPE_NAMES if n.startswith("mouth")),
    "jaw": tuple(n for n in BLENDSHAPE_NAMES if n.startswith("jaw")),
}
