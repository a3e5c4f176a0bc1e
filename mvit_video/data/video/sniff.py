"""Opening a video file: what is wrong with a file that cannot be opened, and the one error type for it."""

from __future__ import annotations

import os
from typing import Any

import av

# First bytes of container formats: a file that starts like a video but fails to open is a broken
# video, anything else is not a video at all.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_MAGIC = (b"RIFF", b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3",
          b"\x00\x00\x00\x01", b"\x30\x26\xb2\x75")


class VideoDecodeError(RuntimeError):
    """A video cannot be probed or decoded; ``reason`` is a short human string, ``path`` the file."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        message = f"cannot decode video {self.path!r}: {reason}"
        super().__init__(f"{message} ({detail})" if detail else message)

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        # DataLoader workers pickle exceptions; the default reduce would pass only the message.
        return (type(self), (self.path, self.reason, self.detail))


def check_file(path: str) -> None:
    """Raise VideoDecodeError for a missing, unreadable, non-regular or empty file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "file not found") from None
    except OSError as exc:
        raise VideoDecodeError(path, "cannot read file", str(exc)) from None
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if st.st_size == 0:
        raise VideoDecodeError(path, "empty file")


def _looks_like_video(path: str) -> bool:
    """Return whether the file starts with the signature of a known video container."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head[4:8] in _ISO_BOXES or head.startswith(_MAGIC) or head[:3] == b"\x00\x00\x01"


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """Return the first real video stream (cover art skipped); raise VideoDecodeError if none."""
    streams = list(container.streams.video)
    if not streams:
        raise VideoDecodeError(path, "no video stream")
    for stream in streams:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return streams[0]


def open_video(path: str, threads: int = 1) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` with PyAV and return (container, video stream), other streams discarded.

    ``threads`` decoder threads (FFmpeg's default, one per core, is too many inside DataLoader workers).
    Raises VideoDecodeError: "not a video file", "truncated or corrupt video", "no video stream".
    """
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = "truncated or corrupt video" if _looks_like_video(path) else "not a video file"
        raise VideoDecodeError(path, reason, str(exc)) from None
    try:
        stream = _video_stream(container, path)
    except VideoDecodeError:
        container.close()
        raise
    discard_all = getattr(getattr(av.stream, "Discard", None), "all", None)  # PyAV >= 14
    for other in container.streams:
        if other.index != stream.index and discard_all is not None:
            other.discard = discard_all  # the demuxer then skips their data
    stream.codec_context.thread_count = threads
    if threads > 1:
        stream.thread_type = "AUTO"  # frame + slice threading; output is identical to 1 thread
    return container, stream
