"""The ipywidgets panel around :func:`~selfie_avatar.viz.sliders.slider_images`.

Sliders for every expression code (grouped: brows, eyes, cheeks and nose, mouth, jaw, then the rest), head yaw,
pitch, roll, position and size; the avatar image, ``I_R`` and a plotly mesh view update when a slider is released
(``continuous_update=False``: one generator call per change, not per pixel dragged). Buttons reset to neutral (the
rest frame) and snap to any training frame's codes.

Tests drive it without displaying it (``panel.sliders[name].value = ...``), which is what a notebook user does with
the mouse.
"""

from __future__ import annotations

import time

import numpy as np

from selfie_avatar.face_model import BLENDSHAPE_GROUPS
from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
from selfie_avatar.reenact.codes import choose_rest_frame
from selfie_avatar.viz.mesh3d import mesh_display_xyz
from selfie_avatar.viz.sliders import SliderValues, slider_images, values_to_codes

POSE_RANGES = {"yaw": (-45.0, 45.0), "pitch": (-30.0, 30.0), "roll": (-30.0, 30.0), "zoom": (0.7, 1.3)}


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    return buf.tobytes()


def group_codes(names: list[str]) -> dict[str, list[str]]:
    """Expression code names by slider group: the blendshape groups, FLAME's ``exp_*`` and ``jaw_*``, the
    default model's ``pca_*``, and ``other``."""
    groups: dict[str, list[str]] = {g: [n for n in members if n in names] for g, members in BLENDSHAPE_GROUPS.items()}
    seen = {n for members in groups.values() for n in members}
    # FLAME's codes: expression coefficients and jaw rotation (radians); the default model's extra PCA codes.
    for group, prefix in (("expression", "exp_"), ("jaw pose", "jaw_"), ("pca", "pca_")):
        groups[group] = [n for n in names if n not in seen and n.startswith(prefix)]
        seen |= set(groups[group])
    groups["other"] = [n for n in names if n not in seen]
    return {g: m for g, m in groups.items() if m}


class SliderPanel:
    """Interactive sliders for a trained avatar.

    Args:
        renderer: the avatar renderer.
        subject: the subject folder (:class:`~selfie_avatar.tracking.subject.Subject`), for the rest and training
            frames' codes.
        mesh_view: add the plotly 3D mesh view (a ``FigureWidget``).

    Attributes:
        sliders: name -> slider widget (expression names, ``yaw``, ``pitch``, ``roll``, ``tx``, ``ty``, ``zoom``).
        widget: the whole panel, to ``display``.
        last: the images of the latest update (:func:`slider_images`'s dict).
    """

    def __init__(self, renderer: AvatarRenderer, subject, mesh_view: bool = True) -> None:
        import ipywidgets as w

        self.renderer, self.subject = renderer, subject
        self.names = renderer.face_model.expression_names
        self.tracking = subject.tracking
        self.rest_frame = choose_rest_frame(self.tracking, subject.train_indices)
        rest = subject.codes([self.rest_frame])
        self.rest_scale = float(rest.scale[0])
        self.neutral = SliderValues.from_codes(rest, self.rest_scale)
        self._updating = False
        self.sliders: dict[str, w.FloatSlider] = {}
        tabs = []
        for group, members in group_codes(self.names).items():
            signed = group in ("expression", "jaw pose", "pca", "other")  # blendshape scores lie in [0, 1]
            lo, hi = (-3.0, 3.0) if signed else (0.0, 1.0)
            if group == "jaw pose":
                lo, hi = -0.5, 0.5
            box = []
            for n in members:
                s = w.FloatSlider(min=lo, max=hi, step=0.01, description=n, continuous_update=False,
                                  style={"description_width": "150px"}, layout=w.Layout(width="420px"))
                s.add_class(f"sa-slider-{n}")  # CSS handles for the browser test and for user styling
                self.sliders[n] = s
                box.append(s)
            tabs.append((group, w.VBox(box)))
        size = float(subject.size)
        ranges = dict(POSE_RANGES, tx=(0.0, size), ty=(0.0, size))
        pose = []
        for n in ("yaw", "pitch", "roll", "tx", "ty", "zoom"):
            lo, hi = ranges[n]
            s = w.FloatSlider(min=lo, max=hi, step=0.01 if n == "zoom" else 0.5, description=n,
                              continuous_update=False)
            s.add_class(f"sa-slider-{n}")
            self.sliders[n] = s
            pose.append(s)
        tab = w.Tab(children=[b for _, b in tabs] + [w.VBox(pose)])
        for k, (g, _) in enumerate(tabs):
            tab.set_title(k, g)
        tab.set_title(len(tabs), "pose")
        self.reset_button = w.Button(description="reset to neutral")
        self.frame_picker = w.Dropdown(options=list(subject.train_indices), value=self.rest_frame,
                                       description="frame")
        self.snap_button = w.Button(description="snap to frame")
        self.reset_button.on_click(lambda _: self.reset())
        self.snap_button.on_click(lambda _: self.snap(int(self.frame_picker.value)))
        # Shown at 256 px whatever the avatar's size (pixels are read back at their own size).
        self.image = w.Image(format="png", layout=w.Layout(width="256px", height="256px"))
        self.render_image = w.Image(format="png", layout=w.Layout(width="256px", height="256px"))
        self.reset_button.add_class("sa-reset")
        self.image.add_class("sa-avatar")
        self.render_image.add_class("sa-render")
        self.timing = w.Label(value="")  # the last update's render + generator time
        self.timing.add_class("sa-timing")
        self.mesh = None
        views = [w.VBox([w.Label("avatar"), self.image]), w.VBox([w.Label("I_R"), self.render_image])]
        if mesh_view:
            import plotly.graph_objects as go

            from selfie_avatar.viz.mesh3d import mesh_figure

            # Created with its trace: the front end (JupyterLab, Voila) draws the traces a FigureWidget starts with;
            # later updates change that trace in place (replacing the trace list did not reach Voila's page).
            # Only its geometry: the update below runs the generator for the first images.
            first = renderer.geometry(values_to_codes(self.neutral, self.rest_scale))["vertices"][0]
            fig = mesh_figure(first, renderer.face_model.faces, height=360)
            fig.update_layout(width=360, margin=dict(l=0, r=0, t=0, b=0))
            self.mesh = go.FigureWidget(fig)
            self.mesh.add_class("sa-mesh")
            views.append(self.mesh)
        self.tab = tab
        self.widget = w.VBox([w.HBox(views), w.HBox([self.reset_button, self.frame_picker, self.snap_button,
                                                     self.timing]), tab])
        for s in self.sliders.values():
            s.observe(self._on_change, names="value")
        self.last: dict = {}
        self.set_values(self.neutral)

    # -- state <-> widgets ------------------------------------------------------------------------------------
    def values(self) -> SliderValues:
        """The current slider values."""
        v = {k: self.sliders[k].value for k in ("yaw", "pitch", "roll", "tx", "ty", "zoom")}
        return SliderValues(tuple(self.sliders[n].value for n in self.names), **v)

    def set_values(self, values: SliderValues) -> None:
        """Move every slider at once, then update the views once."""
        self._updating = True
        try:
            for n, x in zip(self.names, values.expression):
                self.sliders[n].value = float(x)
            for k in ("yaw", "pitch", "roll", "tx", "ty", "zoom"):
                self.sliders[k].value = float(getattr(values, k))
        finally:
            self._updating = False
        self.update()

    def reset(self) -> None:
        self.set_values(self.neutral)

    def snap(self, frame: int) -> None:
        """Set the sliders to a training frame's tracked codes."""
        self.set_values(SliderValues.from_codes(self.subject.codes([frame]), self.rest_scale))

    def _on_change(self, _change) -> None:
        if not self._updating:
            self.update()

    def update(self) -> dict:
        """Recompute the images for the current values and show them."""
        # Slider widgets round to their step; the images follow what the sliders show.
        t = time.perf_counter()
        self.last = slider_images(self.renderer, self.values(), self.rest_scale)
        self.timing.value = f"render + generator: {(time.perf_counter() - t) * 1000:.0f} ms"
        self.image.value = _png(self.last["image"])
        self.render_image.value = _png(self.last["render"])
        if self.mesh is not None:
            v = self.last["vertices"]
            with self.mesh.batch_update():  # the faces never change: only the positions are sent
                self.mesh.data[0].x, self.mesh.data[0].y, self.mesh.data[0].z = mesh_display_xyz(v)
        return self.last
