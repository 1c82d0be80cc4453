"""The MediaPipe face-mesh topology: 468 surface vertices (+10 iris landmarks) and its triangles.

The triangle list is read from the installed ``mediapipe`` package (``FACE_LANDMARKS_TESSELATION``, whose
connections come in closed triples, one per triangle), so no mesh file is shipped or downloaded.
"""

from __future__ import annotations

import functools

import numpy as np

NUM_LANDMARKS = 478  # 468 mesh vertices + 10 iris points
NUM_MESH_VERTICES = 468

# Points used for the face-size measure and the crop (the face oval, as MediaPipe defines it).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
LEFT_EYE_CORNERS = (263, 362)  # subject's left eye (image right)
RIGHT_EYE_CORNERS = (33, 133)


@functools.lru_cache(maxsize=1)
def mediapipe_triangles() -> np.ndarray:
    """Triangles (T, 3) int64 of the 468-vertex face mesh, oriented consistently.

    Raises:
        RuntimeError: the installed mediapipe does not expose the tessellation in closed triples.
    """
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    conns = [(c.start, c.end) for c in FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION]
    if len(conns) % 3:
        raise RuntimeError(f"face tessellation has {len(conns)} connections, not a multiple of 3")
    tris = []
    for k in range(0, len(conns), 3):
        (a, b), (b2, c), (c2, a2) = conns[k : k + 3]
        if b != b2 or c != c2 or a != a2:
            raise RuntimeError(f"face tessellation connections {k}..{k + 2} do not form a triangle")
        tris.append((a, b, c))
    tri = np.asarray(tris, dtype=np.int64)
    # Duplicates exist in some releases of the list; a doubled triangle would double-shade nothing but is noise.
    _, keep = np.unique(np.sort(tri, axis=1), axis=0, return_index=True)
    return tri[np.sort(keep)]
