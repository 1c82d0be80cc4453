"""Figures for the notebooks: image panels, landmarks, tracking error over time, loss curves.

Every function returns a ``matplotlib.figure.Figure`` built without ``pyplot``, so nothing accumulates in pyplot's
global figure list (notebooks and tests make many); Jupyter shows a figure that ends a cell. Images follow the
project's conventions: numpy ``(H, W, 3)`` uint8 RGB, or torch ``(3, H, W)`` / ``(1, 3, H, W)`` floats in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from selfie_avatar.tracking.status import INTERPOLATED, MISSING
from selfie_avatar.utils.images import to_uint8

__all__ = ["as_rgb", "features_to_image", "uv_image", "mesh_overlay", "image_panels", "landmark_figure",
           "tracking_error_figure", "series_figure", "expression_figure", "loss_curves_figure", "metric_series"]


def as_rgb(image) -> np.ndarray:
    """Any image the project handles -> ``(H, W, 3)`` uint8 RGB, for showing it (``utils.images.to_uint8`` converts).

    Accepts numpy ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (uint8, or floats in [0, 1]) and torch ``(C, H, W)`` or
    ``(1, C, H, W)`` floats in [0, 1] with C of 1 or 3.

    Raises:
        ValueError: any other shape.
    """
    if hasattr(image, "detach"):  # torch: channels first
        t = image.detach().float().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"a torch image must be (C, H, W) or (1, C, H, W) with C 1 or 3, got {tuple(image.shape)}")
        image = t.permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"an image must be (H, W), (H, W, 1) or (H, W, 3), got {a.shape}")
    return to_uint8(a)


def features_to_image(features, channels: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """Three channels of a feature map as an RGB picture, each stretched between its 1st and 99th percentile.

    Neural textures and background features are unbounded; a fixed mapping such as ``(x + 1) / 2`` shows an
    untrained network as flat grey, the stretch shows its structure. Use it to look, not to compare scales.

    Args:
        features: torch or numpy ``(C, H, W)`` or ``(1, C, H, W)``.
        channels: which three channels go to red, green and blue.
    """
    x = features.detach().float().cpu().numpy() if hasattr(features, "detach") else np.asarray(features, np.float32)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"features must be (C, H, W) or (1, C, H, W), got {x.shape}")
    if len(channels) != 3 or max(channels) >= x.shape[0]:
        raise ValueError(f"channels must name 3 of the {x.shape[0]} feature channels, got {tuple(channels)}")
    out = np.empty((x.shape[1], x.shape[2], 3), np.float32)
    for k, c in enumerate(channels):
        lo, hi = np.percentile(x[c], [1, 99])
        out[..., k] = (x[c] - lo) / max(hi - lo, 1e-8)
    return as_rgb(out)


def uv_image(uv: np.ndarray) -> np.ndarray:
    """``I_UV`` ``(H, W, 3)`` floats (u, v, coverage) as a picture: u in red, v in green, black off the face."""
    uv = np.asarray(uv, np.float32)
    if uv.ndim != 3 or uv.shape[2] != 3:
        raise ValueError(f"I_UV must be (H, W, 3) with channels u, v, mask, got {uv.shape}")
    rgb = np.zeros_like(uv)
    rgb[..., :2] = uv[..., :2]
    rgb[uv[..., 2] <= 0.5] = 0
    return as_rgb(rgb)


def mesh_overlay(frame: np.ndarray, render: np.ndarray, uv: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """The fitted mesh's shaded render ``I_R`` blended over the frame where the mesh covers it.

    Args:
        frame, render: ``(H, W, 3)`` uint8.
        uv: ``(H, W, 3)`` ``I_UV`` (its third channel is the coverage mask).
        alpha: weight of the render.
    """
    frame, render = as_rgb(frame), as_rgb(render)
    if frame.shape != render.shape or np.shape(uv)[:2] != frame.shape[:2]:
        raise ValueError(f"frame {frame.shape}, render {render.shape} and uv {np.shape(uv)} must be the same size")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    covered = np.asarray(uv)[..., 2] > 0.5
    out = frame.copy()
    blend = (1 - alpha) * frame.astype(np.float32) + alpha * render.astype(np.float32)
    out[covered] = (blend[covered] + 0.5).astype(np.uint8)
    return out


def image_panels(images: Mapping[str, object] | Sequence, ncols: int | None = None, size: float = 2.4,
                 title: str | None = None) -> Figure:
    """A grid of images with titles.

    Args:
        images: ``{title: image}`` or a sequence of images (see :func:`as_rgb` for what an image may be).
        ncols: images per row (default: all in one row, at most 6).
        size: inches per panel (its width; the height follows the tallest image's aspect ratio).
        title: a title above the grid.
    """
    items = list(images.items()) if isinstance(images, Mapping) else [("", im) for im in images]
    if not items:
        raise ValueError("image_panels needs at least one image")
    ncols = min(len(items), 6) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = math.ceil(len(items) / ncols)
    pictures = [as_rgb(im) for _, im in items]
    aspect = max(p.shape[0] / p.shape[1] for p in pictures)  # panel height / width: wide panels get short rows
    fig = Figure(figsize=(size * ncols, size * aspect * nrows + 0.3 * nrows + (0.4 if title else 0)),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, _), picture in zip(axes.flat, items, pictures):
        ax.imshow(picture, interpolation="nearest")
        if name:
            ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def landmark_figure(image, points: np.ndarray, size: float = 4.0, title: str | None = None,
                    highlight: Sequence[int] = ()) -> Figure:
    """An image with 2D points (crop pixels, pixel (i, j) centred at (j + 0.5, i + 0.5)) drawn over it.

    Args:
        image: the frame.
        points: ``(P, >=2)`` x, y in pixels; NaN rows (a frame without a face) are skipped.
        highlight: indices drawn larger and in another colour (e.g. the lips).
    """
    img = as_rgb(image)
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"points must be (P, 2) or (P, 3), got {pts.shape}")
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.subplots()
    ax.imshow(img, interpolation="nearest", extent=(0, img.shape[1], img.shape[0], 0))
    ok = np.isfinite(pts[:, :2]).all(1)
    ax.scatter(pts[ok, 0], pts[ok, 1], s=1.5, c="lime", linewidths=0)
    hi = np.array([i for i in highlight if ok[i]], int)
    if len(hi):
        ax.scatter(pts[hi, 0], pts[hi, 1], s=8, c="red", linewidths=0)
    ax.set_axis_off()
    ax.set_title(title or f"{int(ok.sum())} landmarks", fontsize=9)
    return fig


def tracking_error_figure(error_px: np.ndarray, status: np.ndarray | None = None, fps: float | None = None,
                          face_size: np.ndarray | None = None) -> Figure:
    """Landmark reprojection error per frame, with frames whose face was interpolated or missing shaded.

    Args:
        error_px: ``(N,)`` mean 2D distance fitted mesh <-> detected landmarks (NaN where not detected).
        status: ``(N,)`` per-frame status codes (``prepare.sequence``: detected, interpolated, missing).
        fps: frames per second: the x axis is in seconds when given, else in frames.
        face_size: ``(N,)`` landmark extent in pixels; the title then gives the mean error in percent of it.
    """
    err = np.asarray(error_px, np.float64)
    if err.ndim != 1:
        raise ValueError(f"error_px must be (N,), got {err.shape}")
    for name, arr in (("status", status), ("face_size", face_size)):
        if arr is not None and np.shape(arr) != err.shape:
            raise ValueError(f"{name} must be {err.shape} like error_px, got {np.shape(arr)}")
    t = np.arange(len(err)) / fps if fps else np.arange(len(err))
    fig = Figure(figsize=(8, 2.8), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, err, lw=1.2, color="tab:blue", label="error (px)")
    if np.isfinite(err).any():
        ax.axhline(np.nanmean(err), color="tab:blue", ls=":", lw=1, label=f"mean {np.nanmean(err):.2f} px")
    if status is not None:
        step = (t[1] - t[0]) if len(t) > 1 else 1.0
        for code, colour, label in ((INTERPOLATED, "orange", "interpolated"), (MISSING, "red", "missing")):
            hit = np.flatnonzero(np.asarray(status) == code)
            for k, i in enumerate(hit):
                ax.axvspan(t[i] - step / 2, t[i] + step / 2, color=colour, alpha=0.25, lw=0,
                           label=label if k == 0 else None)
    title = "tracking: fitted mesh vs detected landmarks"
    if face_size is not None:
        size = np.asarray(face_size, np.float64)
        rel = err / np.where(size > 0, size, np.nan)
        if np.isfinite(rel).any():
            title += f" (mean {100 * np.nanmean(rel):.2f}% of the face size)"
    ax.set_xlabel("seconds" if fps else "frame")
    ax.set_ylabel("landmark error (px)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def series_figure(series: Mapping[str, np.ndarray], fps: float | None = None, ylabel: str = "",
                  title: str | None = None) -> Figure:
    """Several per-frame curves on one axis, e.g. head yaw, pitch and roll (``tracking["euler_deg"][:, k]``).

    Args:
        series: ``{label: (N,) values}``, all the same length; NaN gaps stay gaps.
        fps: frames per second: the x axis is in seconds when given, else in frames.
    """
    if not series:
        raise ValueError("series_figure needs at least one curve")
    lengths = {k: np.shape(v) for k, v in series.items()}
    if len(set(lengths.values())) != 1 or len(next(iter(lengths.values()))) != 1:
        raise ValueError(f"every curve must be (N,) with the same N, got {lengths}")
    n = next(iter(lengths.values()))[0]
    t = np.arange(n) / fps if fps else np.arange(n)
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.subplots()
    for label, values in series.items():
        ax.plot(t, np.asarray(values, np.float64), lw=1.2, label=label)
    ax.set_xlabel("seconds" if fps else "frame")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def expression_figure(codes: np.ndarray, names: Sequence[str], top: int | None = 16,
                      title: str | None = None) -> Figure:
    """One frame's expression codes as horizontal bars, the largest magnitudes first.

    Args:
        codes: ``(E,)`` expression code (e.g. ``tracking["expression"][i]``: 52 blendshape scores + PCA).
        names: ``(E,)`` their names (``tracking["expression_names"]``).
        top: show only this many (None: all).
    """
    c = np.asarray(codes, np.float64)
    if c.ndim != 1 or len(c) != len(names):
        raise ValueError(f"codes must be (E,) with one name each, got {c.shape} and {len(names)} names")
    order = np.argsort(-np.abs(np.nan_to_num(c)), kind="stable")[: top or len(c)]
    fig = Figure(figsize=(6, 0.22 * len(order) + 0.8), layout="constrained")
    ax = fig.subplots()
    ax.barh(range(len(order)), c[order], color=["tab:blue" if v >= 0 else "tab:orange" for v in c[order]])
    ax.set_yticks(range(len(order)), [str(names[k]) for k in order], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_title(title or "expression codes (largest first)", fontsize=10)
    return fig


def metric_series(rows: Sequence[Mapping[str, str]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of one logged key from ``training.run.read_metrics`` rows (empty cells skipped)."""
    pairs = [(float(r["step"]), float(r[key])) for r in rows
             if r.get(key) not in (None, "") and r.get("step") not in (None, "")]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, vals = np.array(pairs).T
    return steps, vals


def loss_curves_figure(rows: Sequence[Mapping[str, str]], keys: Sequence[str] | None = None, ncols: int = 3,
                       smooth: int = 1) -> Figure:
    """Loss terms and held-out figures against the training step, one panel each.

    Args:
        rows: ``training.run.read_metrics(run_dir)``.
        keys: which logged keys (default: every ``train/*`` and ``val/*`` key that has values).
        ncols: panels per row.
        smooth: width of a moving average drawn over the raw curve (1: none).
    """
    if not rows:
        raise ValueError("no metrics rows: has the run logged anything yet? (read_metrics(run_dir))")
    if keys is None:
        keys = sorted(k for k in rows[0] if k.split("/")[0] in ("train", "val"))
    series = {k: metric_series(rows, k) for k in keys}
    series = {k: v for k, v in series.items() if len(v[0])}
    if not series:
        raise ValueError(f"none of {list(keys)} has values in these rows")
    ncols = max(1, min(ncols, len(series)))
    nrows = math.ceil(len(series) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(series):]:
        ax.set_axis_off()
    for ax, (key, (steps, vals)) in zip(axes.flat, series.items()):
        ax.plot(steps, vals, lw=1, alpha=0.5 if smooth > 1 else 1, marker="o" if len(vals) < 8 else None, ms=3)
        if smooth > 1 and len(vals) >= smooth:
            ax.plot(steps[smooth - 1:], np.convolve(vals, np.ones(smooth) / smooth, "valid"), lw=1.5)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    return fig
