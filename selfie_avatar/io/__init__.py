"""Video and image input/output: probe and stream videos upright, encode H.264 atomically, 8/16-bit images."""

from selfie_avatar.io.image import read_image, read_png16, write_image, write_png16
from selfie_avatar.io.video import VideoInfo, iter_frames, probe_video, read_video
from selfie_avatar.io.video_writer import VideoWriter, write_video

__all__ = [
    "VideoInfo",
    "VideoWriter",
    "iter_frames",
    "probe_video",
    "read_video",
    "write_video",
    "read_image",
    "write_image",
    "read_png16",
    "write_png16",
]
