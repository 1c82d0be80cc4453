"""The image and curve figures: inputs checked, the right things drawn."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from selfie_avatar.tracking.status import DETECTED, INTERPOLATED, MISSING
from selfie_avatar.viz.plots import (expression_figure, features_to_image, image_panels, landmark_figure,
                                     loss_curves_figure, mesh_overlay, metric_series, series_figure, as_rgb,
                                     tracking_error_figure, uv_image)


def _images(fig: Figure) -> list:
    return [im for ax in fig.axes for im in ax.get_images()]


def test_as_rgb_accepts_the_project_image_kinds():
    grey = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    out = as_rgb(grey)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[-1, -1, 2] == 255
    assert as_rgb(np.full((2, 2, 3), 7, np.uint8))[0, 0, 0] == 7
    t = torch.zeros(1, 3, 5, 6)
    t[:, 0] = 1
    assert as_rgb(t).shape == (5, 6, 3) and as_rgb(t)[0, 0].tolist() == [255, 0, 0]
    assert as_rgb(torch.ones(1, 4, 4)).shape == (4, 4, 3)
    assert as_rgb(np.full((2, 2), 2.0))[0, 0, 0] == 255  # clipped, not wrapped
    with pytest.raises(ValueError, match="torch image"):
        as_rgb(torch.zeros(2, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="image must be"):
        as_rgb(np.zeros((4, 4, 2)))


def test_features_to_image_stretches_each_channel():
    x = torch.zeros(1, 5, 8, 8)
    x[0, 0] = torch.linspace(-50, 50, 64).reshape(8, 8)
    x[0, 1] = torch.linspace(0, 0.001, 64).reshape(8, 8)
    img = features_to_image(x)
    assert img.shape == (8, 8, 3)
    for c in (0, 1):  # both span the range whatever their scale
        assert img[..., c].min() == 0 and img[..., c].max() == 255
    assert features_to_image(x, channels=(2, 3, 4)).max() == 0  # constant channels stay dark, no division by zero
    with pytest.raises(ValueError, match="channels"):
        features_to_image(x, channels=(0, 1, 5))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        features_to_image(torch.zeros(8, 8))


def test_uv_image_and_mesh_overlay():
    uv = np.zeros((4, 4, 3), np.float32)
    uv[:2, :, 0] = 1.0
    uv[:2, :, 2] = 1.0  # covered: the top half
    pic = uv_image(uv)
    assert pic[0, 0].tolist() == [255, 0, 0] and pic[3, 3].tolist() == [0, 0, 0]
    frame = np.full((4, 4, 3), 100, np.uint8)
    render = np.full((4, 4, 3), 200, np.uint8)
    over = mesh_overlay(frame, render, uv, alpha=0.5)
    assert over[0, 0, 0] == 150 and over[3, 3, 0] == 100
    with pytest.raises(ValueError, match="same size"):
        mesh_overlay(frame, render[:2], uv)
    with pytest.raises(ValueError, match="alpha"):
        mesh_overlay(frame, render, uv, alpha=2)
    with pytest.raises(ValueError, match="I_UV"):
        uv_image(uv[..., :2])


def test_image_panels_lays_out_every_image_with_its_title():
    imgs = {f"im{k}": np.full((6, 6, 3), 40 * k, np.uint8) for k in range(5)}
    fig = image_panels(imgs, ncols=2, title="t")
    assert len(_images(fig)) == 5 and len(fig.axes) == 6  # 3 rows x 2, one left empty
    assert [ax.get_title() for ax in fig.axes[:5]] == list(imgs)
    assert len(_images(image_panels([np.zeros((3, 3))] * 3))) == 3
    with pytest.raises(ValueError, match="at least one"):
        image_panels({})


def test_landmark_figure_skips_missing_points():
    pts = np.array([[1.0, 2.0, 0], [3.0, 4.0, 0], [np.nan, np.nan, np.nan]])
    fig = landmark_figure(np.zeros((8, 8, 3), np.uint8), pts, highlight=[1, 2])
    offsets = [c.get_offsets() for c in fig.axes[0].collections]
    assert len(offsets[0]) == 2 and len(offsets[1]) == 1 and "2 landmarks" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="points"):
        landmark_figure(np.zeros((8, 8, 3), np.uint8), np.zeros(5))


def test_tracking_error_figure_marks_gaps_and_reports_relative_error():
    err = np.array([1.0, 2.0, np.nan, 1.0, np.nan])
    status = np.array([DETECTED, DETECTED, INTERPOLATED, DETECTED, MISSING])
    fig = tracking_error_figure(err, status, fps=25, face_size=np.full(5, 100.0))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "interpolated" in labels and "missing" in labels
    assert "1.33% of the face size" in ax.get_title() and ax.get_xlabel() == "seconds"
    with pytest.raises(ValueError, match="status"):
        tracking_error_figure(err, status[:3])


def test_series_and_expression_figures():
    fig = series_figure({"yaw": np.arange(4.0), "pitch": np.zeros(4)}, ylabel="deg")
    assert len(fig.axes[0].get_lines()) == 2 and fig.axes[0].get_xlabel() == "frame"
    with pytest.raises(ValueError, match="same N"):
        series_figure({"a": np.zeros(3), "b": np.zeros(4)})
    fig = expression_figure(np.array([0.1, -0.9, 0.5]), ["a", "b", "c"], top=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "c"]
    with pytest.raises(ValueError, match="one name each"):
        expression_figure(np.zeros(3), ["a"])


def test_loss_curves_from_metrics_rows():
    rows = [{"step": str(s), "train/reconstruction": str(1.0 / s), "val/psnr": "" if s % 2 else str(10 + s),
             "epoch": ""} for s in range(1, 9)]
    steps, vals = metric_series(rows, "val/psnr")
    assert steps.tolist() == [2, 4, 6, 8] and vals.tolist() == [12, 14, 16, 18]
    fig = loss_curves_figure(rows, smooth=3)
    assert [ax.get_title() for ax in fig.axes] == ["train/reconstruction", "val/psnr"]
    assert len(fig.axes[0].get_lines()) == 2  # raw + moving average
    with pytest.raises(ValueError, match="no metrics rows"):
        loss_curves_figure([])
    with pytest.raises(ValueError, match="none of"):
        loss_curves_figure(rows, keys=["train/absent"])
