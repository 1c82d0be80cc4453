from dataclasses import replace

import numpy as np
import pytest

from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.reenact.codes import choose_rest_frame
from selfie_avatar.training.checkpoint import open_run
from selfie_avatar.utils.images import SIGNED, to_uint8
from selfie_avatar.viz.sliders import SliderValues, set_code, slider_images

# MediaPipe face-mesh vertices: the outer lip contour and the brows.
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]
BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]


@pytest.fixture(scope="module")
def avatar(tiny_run):
    run = open_run(tiny_run, "last")
    renderer = AvatarRenderer(run.avatar, run.subject.face_model(), run.subject.size)
    rest = choose_rest_frame(run.subject.tracking, run.subject.train_indices)
    codes = run.subject.codes([rest])
    return renderer, run.subject, codes, SliderValues.from_codes(codes, float(codes.scale[0]))


def _region_change(a, b, vertices, rows, pad=2):
    """Mean absolute change inside the box around the given mesh vertices."""
    pts = vertices[rows, :2]
    x0, y0 = np.floor(pts.min(0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1 + pad
    d = np.abs(a.astype(float) - b.astype(float))[max(y0, 0):y1, max(x0, 0):x1]
    return d.mean()


def test_neutral_values_reproduce_the_rest_frame(avatar):
    renderer, subject, codes, neutral = avatar
    out = slider_images(renderer, neutral, float(codes.scale[0]))
    ref = to_uint8(renderer(codes)["image"], SIGNED)[0]
    assert np.abs(out["image"].astype(int) - ref.astype(int)).max() <= 2  # only the Euler round trip differs
    assert out["render"].shape == (renderer.size, renderer.size, 3) and out["vertices"].shape[1] == 3


def _clean_rig(renderer):
    """A copy of the subject's rig whose jawOpen moves only the lower face and browInnerUp only the brows.

    The fixture's rig is regressed from 24 frames (under a second of video), so its codes are noisy; a clean rig
    isolates what is tested here: that a code's geometric effect reaches the image where it happens.
    """
    import copy

    import torch

    rig = copy.deepcopy(renderer.face_model)
    names = rig.expression_names
    t = rig.template
    height = float(t[:, 1].max() - t[:, 1].min())
    mouth_y = float(t[LIPS, 1].mean())
    basis = torch.zeros_like(rig.basis)
    below = t[:, 1] > mouth_y
    basis[names.index("jawOpen"), below, 1] = 0.12 * height
    basis[names.index("browInnerUp"), BROWS, 1] = -0.08 * height
    rig.basis.copy_(basis)
    return AvatarRenderer(_responsive(renderer.avatar), rig, renderer.size / renderer.factor)


def _responsive(avatar):
    """A copy of the avatar whose output head is random and whose fusion mask passes the decoder everywhere.

    With the background plate the image generator starts as the plate (a zero RGB head), and the fixture's 12
    tiny steps barely move it; its fusion logits also start saturated over the face at 64 px (the decoder's
    activations are large there), so at this point its image hardly depends on ``I_R``. (Trained runs differ:
    the 10-minute ``cpu`` runs in ``benchmarks/quality.py`` weight the decoder at 0.83-0.91 over the face.) These
    are plumbing tests, that a slider's geometric change reaches the pixels where it happens; how well a trained
    avatar follows is measured by ``evaluate`` and ``benchmarks/quality.py``.
    """
    import copy

    import torch

    avatar = copy.deepcopy(avatar)
    g = avatar.image_generator
    with torch.no_grad():
        g.to_out.conv.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(0))  # small: no clipping
        g.to_out.bias.zero_()
        g.fusion_mask.weight.zero_()
        g.fusion_mask.bias.zero_()
    return avatar


@pytest.mark.parametrize("code, moved, still", [("jawOpen", LIPS, BROWS), ("browInnerUp", BROWS, LIPS)])
def test_a_code_changes_its_own_region(avatar, code, moved, still):
    renderer, subject, codes, neutral = avatar
    renderer = _clean_rig(renderer)
    names = renderer.face_model.expression_names
    scale = float(codes.scale[0])
    base = slider_images(renderer, set_code(neutral, names, code, 0.0), scale)
    changed = slider_images(renderer, set_code(neutral, names, code, 1.0), scale)
    v = base["vertices"]
    # The generator's change is smaller than I_R's (a random head spreads it over its receptive field): the test is
    # that it is there and lies where the code moves the mesh, many times more than elsewhere.
    for key, least in (("render", 1.0), ("image", 0.5)):
        here = _region_change(base[key], changed[key], v, moved)
        there = _region_change(base[key], changed[key], v, still)
        assert here > least and here > 2 * there, (code, key, here, there)
    with pytest.raises(KeyError, match="not an expression code"):
        set_code(neutral, names, "noseWiggle", 1.0)


def test_yaw_moves_the_face(avatar):
    renderer, subject, codes, neutral = avatar
    scale = float(codes.scale[0])
    base = slider_images(renderer, neutral, scale)
    turned = slider_images(renderer, replace(neutral, yaw=neutral.yaw + 25), scale)
    nose = 1  # the nose tip swings sideways when the head turns
    assert abs(turned["vertices"][nose, 0] - base["vertices"][nose, 0]) > 0.03 * renderer.size
    assert np.abs(turned["image"].astype(float) - base["image"].astype(float)).mean() > 1.0


def test_panel_is_driven_without_display(avatar):
    pytest.importorskip("ipywidgets")
    from selfie_avatar.viz.slider_panel import SliderPanel

    renderer, subject, codes, neutral = avatar
    panel = SliderPanel(_clean_rig(renderer), subject, mesh_view=True)
    first = panel.last["image"].copy()
    panel.sliders["jawOpen"].value = 1.0
    opened = panel.last["image"].copy()
    assert np.abs(opened.astype(float) - first).mean() > 0.1
    panel.sliders["yaw"].value += 20
    assert np.abs(panel.last["image"].astype(float) - opened).mean() > 0.5
    panel.reset()
    assert np.abs(panel.last["image"].astype(int) - first.astype(int)).max() <= 2
    frame = subject.train_indices[-1]
    panel.snap(frame)
    got = np.array([panel.sliders[n].value for n in panel.names])
    lo = np.array([panel.sliders[n].min for n in panel.names])
    hi = np.array([panel.sliders[n].max for n in panel.names])
    np.testing.assert_allclose(got, np.clip(subject.tracking["expression"][frame], lo, hi), atol=0.01)
    assert len(panel.mesh.data) == 1


def test_code_groups_cover_both_face_models():
    from selfie_avatar.face_model import BLENDSHAPE_NAMES
    from selfie_avatar.viz.slider_panel import group_codes

    blend = group_codes(list(BLENDSHAPE_NAMES) + ["pca_0", "pca_1"])
    assert "jawOpen" in blend["jaw"] and "browInnerUp" in blend["brows"] and blend["pca"] == ["pca_0", "pca_1"]
    assert sum(len(v) for v in blend.values()) == len(BLENDSHAPE_NAMES) + 2
    flame = group_codes([f"exp_{k}" for k in range(5)] + ["jaw_x", "jaw_y", "jaw_z"])
    assert flame == {"expression": [f"exp_{k}" for k in range(5)], "jaw pose": ["jaw_x", "jaw_y", "jaw_z"]}
