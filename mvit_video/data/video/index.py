"""The frame index of a video: the presentation timestamp of every frame and where the keyframes are.

Frame ``i`` of a video is, by definition, the ``i``-th frame (0-based) that PyAV yields when the file is decoded
sequentially from the start. The index is built by demuxing the video packets without decoding them and sorting
their pts, so B-frames, a non-zero start pts and variable frame rates are handled, packets that an edit list hides
are left out, and a header that over-reports the frame count is ignored.

An index that cannot be trusted (packets without pts, duplicate pts, a stream that does not start on a keyframe)
is not seekable: such a file is decoded from the start, counting frames.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np

from . import mpeg4
from .sniff import VideoDecodeError


@dataclass(frozen=True)
class VideoInfo:
    """What a video really holds: frame count from demuxing, fps and duration checked against it."""

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


@dataclass(frozen=True)
class FrameIndex:
    """Per-file metadata: ``pts[i]`` is the timestamp of frame ``i`` (presentation order)."""

    info: VideoInfo
    time_base: Fraction
    pts: np.ndarray  # int64, sorted; empty when the index is not trusted
    key_index: np.ndarray  # presentation index of each keyframe, sorted
    key_pts: np.ndarray  # pts of each keyframe, in key_index order
    key_dts: np.ndarray  # dts of each keyframe (its pts where the container gives none)
    seekable: bool  # False: decode from the start and count frames
    open_gop: bool = False  # a keyframe after the first is followed (in decode order) by frames shown before it
    container_format: str = ""  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    pixel_format: str = ""  # decoder output format, e.g. "yuv420p"
    codec: str = ""  # FFmpeg decoder name, e.g. "h264"
    decode_order_pts: bool = False  # the codec reorders frames, yet the stored pts only ever increase in decode order

    @property
    def counted(self) -> bool:
        """Whether seeks are checked in counted mode (see :mod:`.pyav`): a decoded frame's pts need not be its own,
        because the codec may pack B-frames (MPEG-4 part 2, DivX/XviD), the container stores no presentation
        timestamps (AVI: FFmpeg guesses them), or the stored ones are decode order (a bad remux)."""
        return self.codec == "mpeg4" or self.container_format == "avi" or self.decode_order_pts

    def position_of(self, pts: int | None) -> int:
        """Return the index of the frame with timestamp ``pts``, or -1 when no frame has it."""
        if pts is None:
            return -1
        position = int(np.searchsorted(self.pts, pts))
        return position if position < len(self.pts) and self.pts[position] == pts else -1

    def gop_of(self, frames: np.ndarray) -> np.ndarray:
        """Return, for each frame index, the position in ``key_index`` of the keyframe it decodes from."""
        return np.searchsorted(self.key_index, frames, side="right") - 1


_MISSING = np.iinfo(np.int64).min  # a packet without this timestamp


@dataclass(frozen=True)
class _Packets:
    """The video packets in decode order: pts (their dts where missing), dts (their pts where missing), key flags."""

    pts: np.ndarray
    dts: np.ndarray
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.pts)


def _demux(container: av.container.InputContainer, stream: Any) -> _Packets:
    """Return the video packets in decode order, without decoding (compact arrays: memory stays small).

    A truncated file ends at a demux error or a cut-off last packet; what came before counts. MPEG-4 part 2 packets
    that decode to no frame (a dropped frame's N-VOP, see :mod:`.mpeg4`) are left out.
    """
    pts, dts, keys = array("q"), array("q"), array("b")
    corrupt_tail = False
    ctx = stream.codec_context
    vops = mpeg4.FrameCounter(ctx.extradata) if ctx.name == "mpeg4" else None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packets; edit-list frames never shown
                continue
            if vops is not None and not vops.yields_frame(bytes(packet)):
                continue
            corrupt_tail = packet.is_corrupt
            first = packet.pts if packet.pts is not None else packet.dts
            second = packet.dts if packet.dts is not None else packet.pts
            pts.append(_MISSING if first is None else first)
            dts.append(_MISSING if second is None else second)
            keys.append(packet.is_keyframe)
    except av.error.FFmpegError:
        pass
    # A cut packet at the very end is a truncated file: the decoder rejects it.
    end = len(pts) - 1 if corrupt_tail else len(pts)
    return _Packets(np.array(pts[:end], dtype=np.int64), np.array(dts[:end], dtype=np.int64),
                    np.array(keys[:end], dtype=bool))


def _stream_rate(stream: Any) -> float:
    """Return the container's frame rate for ``stream``, or 0.0 when it has none."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _info(path: str, stream: Any, num_frames: int, span: float | None) -> VideoInfo:
    """Build VideoInfo; ``span`` is the demuxed duration (None when the pts are unusable).

    The container's rate is kept when it agrees with the demuxed one within 5%, else the demuxed
    rate is used (a header can be wrong; the packets are what decodes).
    """
    rate = _stream_rate(stream)
    if span and span > 0:
        measured = num_frames / span
        fps = rate if rate and abs(rate - measured) <= 0.05 * measured else measured
        duration = span
    else:
        fps = rate or 30.0
        duration = num_frames / fps
    ctx = stream.codec_context
    return VideoInfo(path, float(fps), int(num_frames), float(duration), int(ctx.width), int(ctx.height))


def _time_base(stream: Any) -> Fraction:
    """Return the stream's time base (1/1 when the container gives none)."""
    return Fraction(stream.time_base) if stream.time_base else Fraction(1, 1)


def _last_duration(sorted_pts: np.ndarray) -> int:
    """Return the display duration of the last frame, in pts units (median frame step)."""
    if len(sorted_pts) < 2:
        return 1
    return int(np.median(np.diff(sorted_pts)))


def _has_leading_frames(packets: _Packets) -> bool:
    """Return whether a keyframe after the first is followed, in decode order, by a frame shown before it.

    Those leading frames (open GOP) reference the previous GOP: after a seek a decoder may drop them or show
    them damaged, so counting decoded frames from such a keyframe is wrong.
    """
    later_min = np.minimum.accumulate(packets.pts[::-1])[::-1]  # smallest pts from packet i on
    keys = np.flatnonzero(packets.keys[1:-1]) + 1
    return bool(np.any(later_min[keys + 1] < packets.pts[keys]))


def _seek_index(path: str, stream: Any, packets: _Packets) -> FrameIndex | None:
    """Return a seekable index built from demuxed packets, or None when they cannot be trusted.

    Untrusted: a packet without pts and dts, duplicate pts, or a stream that does not start on a
    keyframe presented first (the decoder would drop or mangle the frames before it).
    """
    pts = packets.pts
    sorted_pts = np.sort(pts)
    if np.any(pts == _MISSING) or np.any(np.diff(sorted_pts) == 0) or not packets.keys[0]:
        return None
    key_pts, key_dts = pts[packets.keys], packets.dts[packets.keys]
    key_index = np.searchsorted(sorted_pts, key_pts)
    if key_index.min() != 0:
        return None
    sort = np.argsort(key_index, kind="stable")
    time_base = _time_base(stream)
    span = float((sorted_pts[-1] - sorted_pts[0] + _last_duration(sorted_pts)) * time_base)
    info = _info(path, stream, len(sorted_pts), span)
    reorders = bool(getattr(stream.codec_context, "has_b_frames", False))
    return FrameIndex(
        info, time_base, sorted_pts, key_index[sort], key_pts[sort], key_dts[sort], True,
        open_gop=_has_leading_frames(packets), decode_order_pts=reorders and bool(np.all(np.diff(pts) > 0)),
    )


def read_index(
    path: str, container: av.container.InputContainer, stream: Any, count_frames: Callable[[], int]
) -> FrameIndex:
    """Demux ``container`` to its end and return the frame index of ``stream``.

    ``count_frames`` decodes the file from the start and returns how many frames it yields; it is called only
    for files without usable timestamps. Raises VideoDecodeError for a file with no video packet or no frame.
    """
    packets = _demux(container, stream)  # a truncated file's index ends at the cut
    if not len(packets):
        raise VideoDecodeError(path, "truncated or corrupt video", "no video packets")
    ctx = stream.codec_context
    names = {"container_format": container.format.name, "pixel_format": str(ctx.pix_fmt or ""), "codec": ctx.name}
    index = _seek_index(path, stream, packets)
    if index is not None:
        return replace(index, **names)
    count = count_frames()  # no usable timestamps: the only frame count to trust is a full decode
    if count == 0:
        raise VideoDecodeError(path, "truncated or corrupt video", "no frame decodes")
    empty = np.zeros(0, dtype=np.int64)
    info = _info(path, stream, count, None)
    return FrameIndex(info, _time_base(stream), empty, empty, empty, empty, False, **names)
