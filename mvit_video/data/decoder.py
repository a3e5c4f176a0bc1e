"""The names that ``mvit_video.data.decoder`` has always exported, now defined in :mod:`mvit_video.data.video`."""

from .video import (
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    available_backends,
    decode_frames,
    default_backend,
    probe_video,
)

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "available_backends", "decode_frames", "default_backend",
           "probe_video"]
