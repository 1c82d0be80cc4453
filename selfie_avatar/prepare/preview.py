"""Pictures of a prepared subject: ``preview.png`` (a contact sheet) and ``tracking.mp4`` (side by side).

Panels, left to right / top to bottom: the crop with its landmarks, the shaded render ``I_R`` over the crop, the
UV image ``I_UV`` (u in red, v in green), and the matte.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from selfie_avatar.io.image import write_image
from selfie_avatar.io.video_writer import VideoWriter

PANEL_NAMES = ("frame + landmarks", "render I_R over frame", "UV I_UV", "matte")


def draw_points(img: np.ndarray, points: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
    """Mark 2D points (P, >=2) on a copy of ``img`` (one pixel each plus neighbours; vectorised)."""
    out = img.copy()
    h, w = out.shape[:2]
    p = np.round(points[:, :2] - 0.5).astype(int)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x, y = p[:, 0] + dx, p[:, 1] + dy
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        out[y[ok], x[ok]] = colour
    return out


def panels(crop, render, uv, matte, landmarks, valid: bool) -> list[np.ndarray]:
    """The four (S, S, 3) uint8 panels of one frame (uint8 arithmetic: this runs for every frame)."""
    lm = draw_points(crop, landmarks) if valid else crop
    covered = uv[..., 2] > 0.5
    over = crop.copy()
    over[covered] = cv2.addWeighted(crop, 0.3, render, 0.7, 0)[covered]
    uv_img = np.zeros_like(crop)
    uv_img[..., :2] = (uv[..., :2] * 255).astype(np.uint8)
    uv_img[~covered] = 0
    m = (np.clip(matte, 0, 1) * 255).astype(np.uint8)
    return [lm, over, uv_img, cv2.cvtColor(m, cv2.COLOR_GRAY2RGB)]


class PreviewCollector:
    """Collects preview material while frames stream through ``prepare``.

    Args:
        num_frames: frames in the clip (the sheet shows ``columns`` of them, evenly spaced).
        size: panel side.
        write_video: also write ``tracking.mp4``.
        video_scale: panel scale in the video; above 128 px panels are halved, which makes the video four times
            cheaper to encode (it runs for every frame) and still shows what the tracking did.
    """

    def __init__(self, num_frames: int, size: int, columns: int = 6, write_video: bool = True) -> None:
        self.size = size
        self.picks = set(np.linspace(0, num_frames - 1, min(columns, num_frames)).round().astype(int).tolist())
        self.columns: dict[int, list[np.ndarray]] = {}
        self.write_video = write_video
        self.video_scale = 0.5 if size > 128 else 1.0
        self._writer = None

    def open(self, video_path: Path, fps: float) -> None:
        if self.write_video:
            self._writer = VideoWriter(video_path, fps, crf=23, preset="ultrafast").__enter__()

    def add(self, index, crop, render, uv, matte, landmarks, valid) -> None:
        if index not in self.picks and self._writer is None:
            return
        p = panels(crop, render, uv, matte, landmarks, valid)
        if index in self.picks:
            self.columns[index] = p
        if self._writer is not None:
            strip = np.concatenate(p, 1)
            if self.video_scale != 1:
                strip = cv2.resize(strip, None, fx=self.video_scale, fy=self.video_scale, interpolation=cv2.INTER_AREA)
            self._writer.write(strip)

    def finish(self, sheet_path: Path) -> None:
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
            self._writer = None
        write_image(sheet_path, contact_sheet(self.columns, self.size))


def contact_sheet(columns: dict[int, list[np.ndarray]], size: int) -> np.ndarray:
    """Rows = panel kinds, columns = frames; a label strip on top of each column and row names on the left."""
    label_w, label_h = 150, 22
    keys = sorted(columns)
    rows = len(PANEL_NAMES)
    sheet = np.full((label_h + rows * size, label_w + len(keys) * size, 3), 255, np.uint8)
    for c, k in enumerate(keys):
        x = label_w + c * size
        cv2.putText(sheet, f"frame {k}", (x + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for r, panel in enumerate(columns[k]):
            sheet[label_h + r * size: label_h + (r + 1) * size, x: x + size] = panel
    for r, name in enumerate(PANEL_NAMES):
        y = label_h + r * size + size // 2
        for j, part in enumerate(name.split(" over ") if " over " in name else [name]):
            cv2.putText(sheet, part + (" over" if j == 0 and " over " in name else ""), (4, y + 18 * j),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet
