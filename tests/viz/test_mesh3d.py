"""The plotly mesh view: shapes checked, turned for display without mirroring, coloured per vertex."""

import numpy as np
import pytest
import torch

from selfie_avatar.viz.mesh3d import mesh_figure, sample_vertex_colours

VERTS = np.array([[0, 0, 0], [10, 0, 1], [0, 10, 2], [10, 10, 3]], np.float32)
FACES = np.array([[0, 1, 2], [1, 3, 2]])


def test_mesh_figure_turns_y_and_z_for_display():
    fig = mesh_figure(torch.from_numpy(VERTS), torch.from_numpy(FACES), title="t")
    mesh = fig.data[0]
    assert mesh.type == "mesh3d" and list(mesh.i) == [0, 1] and list(mesh.k) == [2, 2]
    assert list(mesh.x) == [0, 10, 0, 10] and list(mesh.y) == [0, 0, -10, -10] and list(mesh.z) == [0, -1, -2, -3]
    assert fig.layout.title.text == "t" and fig.layout.scene.aspectmode == "data"


def test_mesh_figure_vertex_colours_and_wireframe():
    colours = np.array([[255, 0, 0]] * 4, np.uint8)
    fig = mesh_figure(VERTS, FACES, vertex_colours=colours, wireframe=True)
    assert fig.data[0].vertexcolor[0] == "rgb(255,0,0)" and fig.data[1].type == "scatter3d"
    with pytest.raises(ValueError, match="vertex_colours"):
        mesh_figure(VERTS, FACES, vertex_colours=colours[:2])


def test_mesh_figure_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        mesh_figure(VERTS[:, :2], FACES)
    with pytest.raises(ValueError, match="faces index"):
        mesh_figure(VERTS, FACES + 5)
    with pytest.raises(ValueError, match="integer"):
        mesh_figure(VERTS, FACES.astype(float))
    bad = VERTS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mesh_figure(bad, FACES)


def test_sample_vertex_colours_takes_the_pixel_under_each_vertex():
    img = np.zeros((4, 4, 3), np.uint8)
    img[1, 2] = [9, 8, 7]
    pts = np.array([[2.5, 1.5], [100.0, -3.0]])  # centre of pixel (row 1, col 2); far outside -> clamped
    out = sample_vertex_colours(img, pts)
    assert out[0].tolist() == [9, 8, 7] and out[1].tolist() == img[0, 3].tolist()
    with pytest.raises(ValueError, match="screen"):
        sample_vertex_colours(img, np.zeros(3))
