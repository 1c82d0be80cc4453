"""viz: figures for the notebooks. Images (``plots``), one subject's stages and its mesh (``subject``, ``mesh3d``),
a run's panels and learned maps (``training``), runs and ablation grids side by side (``compare``). plotly is
imported only by ``mesh_figure``."""

from selfie_avatar.viz.compare import ablation_figure, metric_comparison_figure, sample_crops_figure
from selfie_avatar.viz.mesh3d import mesh_figure, sample_vertex_colours
from selfie_avatar.viz.plots import (as_rgb, expression_figure, features_to_image, image_panels, landmark_figure,
                                     loss_curves_figure, mesh_overlay, metric_series, series_figure,
                                     tracking_error_figure, uv_image)
from selfie_avatar.viz.subject import frame_panels, pick_frames, subject_mesh
from selfie_avatar.viz.training import avatar_frames, avatar_maps, run_panels

__all__ = [
    "ablation_figure", "as_rgb", "avatar_frames", "avatar_maps", "expression_figure", "features_to_image", "frame_panels",
    "image_panels", "landmark_figure", "loss_curves_figure", "mesh_figure", "mesh_overlay", "metric_comparison_figure",
    "metric_series", "pick_frames", "run_panels", "sample_crops_figure", "sample_vertex_colours", "series_figure",
    "subject_mesh", "tracking_error_figure", "uv_image",
]
