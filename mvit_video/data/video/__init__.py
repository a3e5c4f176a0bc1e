"""Frame-exact video reading: a file opened once as a :class:`VideoReader`, frames returned by index.

Frame ``i`` of a video is the ``i``-th frame of a sequential PyAV decode of the file, whichever backend serves it.
Modules: :mod:`.sniff` (opening files, :class:`VideoDecodeError`), :mod:`.index` (the demuxed frame index),
:mod:`.pyav` and :mod:`.decord_backend` (one per backend) and :mod:`.reader` (:class:`VideoReader`).
"""

from .index import VideoInfo
from .reader import VideoReader, available_backends, decode_frames, default_backend, probe_video
from .sniff import VideoDecodeError

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "available_backends", "decode_frames", "default_backend",
           "probe_video"]
