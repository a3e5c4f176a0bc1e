"""decord as a decoding backend, used only where its frames are checked against PyAV's.

decord (0.6.0) counts decoded frames after a seek: it lands on a keyframe, checks that keyframe's pts, and counts
on. When a seek lands elsewhere its fallback path counts from an unchecked position, and on some H.264 MP4 files it
returns whole clips of wrong frames. So every call is validated here, whatever happened before:

* decord serves only containers and 8-bit pixel formats where its RGB conversion equals PyAV's (MP4/MOV,
  Matroska/WebM; not MPEG-TS, where decord 0.6.0 returns frame i+30 for frame i, nor 10-bit), codecs whose decoding
  is bit-exact by specification (H.264, HEVC, VP8, VP9, AV1: integer transforms; not MPEG-4 part 2, MS-MPEG4 or
  MPEG-2, whose IDCT may differ between FFmpeg builds: on OpenCV's vtest.avi decord's P-frames drift from PyAV's by
  up to 2/255 on dozens of pixels while the keyframes agree), files whose frame index is trusted, needs no counted
  mode (AVI, see .pyav) and has no open GOP, and only when its frame count, timestamps and keyframes agree with the
  demuxed index;
* each call also asks decord for the keyframe of every GOP it decodes from, and compares those keyframes with
  PyAV's verified decode of the same frames. Any difference, or any decord failure, and the call returns None: the
  PyAV path serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .index import FrameIndex

# Containers and pixel formats where decord's frames were checked pixel-exact against PyAV's.
_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})
_BIT_EXACT_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "libdav1d"})
_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})

# Returns PyAV's verified RGB frames for the given sorted indices ({index: (H, W, 3) uint8}); raises on failure.
ReferenceFrames = Callable[[np.ndarray], dict[int, np.ndarray]]


def supported(index: FrameIndex) -> bool:
    """Return whether decord may serve this file at all (container, codec, pixel format, trusted index, closed
    GOPs)."""
    known_format = _FORMATS & set(index.container_format.split(","))
    exact = index.codec in _BIT_EXACT_CODECS and index.pixel_format in _PIXEL_FORMATS
    return bool(index.seekable and not index.counted and not index.open_gop and known_format and exact)


def agrees(reader: Any, index: FrameIndex) -> bool:
    """Return whether decord's frame count, timestamps and keyframes match the demuxed index.

    decord trusts header frame counts (it hangs past the real end) and returns wrong frames when
    its own index disagrees with the stream, so any disagreement means "do not use decord here".
    """
    n = index.info.num_frames
    if len(reader) != n:
        return False
    seconds = (index.pts - index.pts[0]).astype(np.float64) * float(index.time_base)
    starts = np.asarray(reader.get_frame_timestamp(np.arange(n)), dtype=np.float64)[:, 0]
    min_step = float(np.min(np.diff(seconds))) if n > 1 else 1.0
    if np.max(np.abs(starts - seconds)) > min(2e-3, 0.25 * min_step):
        return False
    keys = np.asarray(reader.get_key_indices(), dtype=np.int64)
    return bool(np.array_equal(np.sort(keys), index.key_index))


class DecordFrames:
    """One decord reader over one file, opened on first use and kept for later calls."""

    def __init__(self, path: str, index: FrameIndex, threads: int) -> None:
        self.path, self.index, self.threads = path, index, threads
        self._reader: Any = None
        self._usable = supported(index)

    def _open(self) -> Any:
        """Return the decord reader, or None when decord cannot serve this file."""
        if self._usable and self._reader is None:
            import decord

            reader = None
            try:
                reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=self.threads)
                self._usable = agrees(reader, self.index)
            except Exception:  # any decord failure: the PyAV path decodes the file or reports why it cannot
                self._usable = False
            self._reader = reader if self._usable else None
        return self._reader

    def frames(self, wanted: np.ndarray, reference: ReferenceFrames) -> dict[int, np.ndarray] | None:
        """Return {index: rgb} for the sorted unique ``wanted`` indices, or None when decord is not used or its
        keyframes differ from ``reference``'s."""
        reader = self._open()
        if reader is None:
            return None
        keys = self.index.key_index[np.unique(self.index.gop_of(wanted))]
        batch_indices = np.union1d(wanted, keys)
        info = self.index.info
        try:
            batch = reader.get_batch(batch_indices.tolist()).asnumpy()
        except Exception:  # decord's state after a failure is unknown: stop using it for this file
            self._usable, self._reader = False, None
            return None
        if batch.shape != (len(batch_indices), info.height, info.width, 3) or batch.dtype != np.uint8:
            return None
        got = dict(zip(batch_indices.tolist(), batch))
        truth = reference(keys)
        if any(not np.array_equal(got[key], truth[key]) for key in keys.tolist()):
            return None
        return {position: got[position] for position in wanted.tolist()}
