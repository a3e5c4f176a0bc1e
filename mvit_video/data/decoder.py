"""Frame-exact video decoding with decord or PyAV.

Frame ``i`` of a video is, by definition, the ``i``-th frame (0-based) that PyAV yields when the
file is decoded sequentially from the start. :func:`decode_frames` returns exactly those frames for
any list of indices, but decodes only the span it needs: it seeks to the keyframe before the first
wanted frame and stops after the last one.

Seeking is only as good as the file's metadata, so nothing from the header is trusted blindly:

* The frame table (the presentation timestamp of every frame) comes from demuxing the video packets
  without decoding them and sorting their pts, so B-frames, a non-zero start pts and variable frame
  rates are handled, and a header that over-reports the frame count is ignored. Tables are cached
  per (path, mtime, size).
* A table that cannot be trusted (packets without pts, duplicate pts, a stream that does not start
  on a keyframe) disables seeking for that file: it is decoded from the start, counting frames.
* Every frame decoded after a seek is checked: the first must be the keyframe sought, then pts
  must follow the table in order, and no frame may be flagged corrupt. Unwanted frames are sent
  with skip_frame=NONREF, so the decoder drops those nothing references (most B-frames); only
  those may be missing from the output. On any mismatch
  (wrong keyframe index, a seek that lands elsewhere, dropped frames) the request is redone by a
  sequential decode from the start and the file is no longer seeked.
* decord is used only on containers and 8-bit pixel formats where it was checked frame- and
  pixel-exact (MP4/MOV, Matroska/WebM, AVI; not MPEG-TS or 10-bit), and only when its frame count,
  timestamps and keyframes agree with the demuxed table; otherwise (and whenever decord fails)
  the PyAV path serves the request.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch

__all__ = ["VideoDecodeError", "VideoInfo", "available_backends", "default_backend", "probe_video", "decode_frames"]

_BACKENDS = ("decord", "pyav")
# PySlowFast configs say DECODING_BACKEND: torchvision, whose video reader is PyAV.
_ALIASES = {"decord": "decord", "pyav": "pyav", "av": "pyav", "torchvision": "pyav"}
_CACHE_SIZE = 512
# Containers where decord's seeking has been checked frame-exact. On MPEG-TS, decord 0.6.0 returns
# frame i+30 for frame i (one GOP off) while its count, timestamps and keyframes all look right.
_DECORD_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})
# decord's RGB conversion matches PyAV's for these 8-bit formats; for yuv420p10le it is off by up to 20.
_DECORD_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})

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
class _FrameTable:
    """Per-file metadata: ``pts[i]`` is the timestamp of frame ``i`` (presentation order)."""

    info: VideoInfo
    stream_index: int
    time_base: Fraction
    pts: np.ndarray  # int64, sorted; empty when the table is not trusted
    key_index: np.ndarray  # presentation index of each keyframe, sorted
    key_pts: np.ndarray  # pts of each keyframe, in key_index order
    key_dts: np.ndarray  # dts of each keyframe (its pts where the container gives none)
    seekable: bool  # False: decode from the start and count frames
    container_format: str = ""  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    pixel_format: str = ""  # decoder output format, e.g. "yuv420p"
    index_of_pts: dict[int, int] = field(default_factory=dict, compare=False)


class _SeekMismatch(Exception):
    """Frames decoded after a seek disagree with the frame table."""


class _DecodeFailed(Exception):
    """The decoder raised mid-stream (truncated or corrupt data)."""


# ---------------------------------------------------------------------------------------------
# Backends


def available_backends() -> list[str]:
    """Return the usable backends, "decord" first when it can be imported, then "pyav"."""
    return ["decord", "pyav"] if importlib.util.find_spec("decord") is not None else ["pyav"]


def default_backend() -> str:
    """Return "decord" where it is installed, else "pyav"."""
    return available_backends()[0]


def _resolve_backend(backend: str | None) -> str:
    """Map a backend name or alias to "decord"/"pyav"; raise ValueError for unknown names.

    A known backend that is not installed falls back to "pyav" (frames are identical by design).
    """
    if backend is None:
        return default_backend()
    name = _ALIASES.get(str(backend).lower())
    if name is None:
        raise ValueError(
            f"unknown video decoding backend {backend!r}; supported: {list(_BACKENDS)} "
            f"(aliases: {sorted(set(_ALIASES) - set(_BACKENDS))})"
        )
    if name not in available_backends():
        warnings.warn(f"video backend {name!r} is not installed; using 'pyav'", stacklevel=3)
        return "pyav"
    return name


def _num_threads() -> int:
    """Threads for one decode: torch's setting, which DataLoader workers lower to 1."""
    return max(1, torch.get_num_threads())


# ---------------------------------------------------------------------------------------------
# Opening files and the frame table


def _check_file(path: str) -> os.stat_result:
    """Return ``os.stat(path)``; raise VideoDecodeError for a missing, non-regular or empty file."""
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
    return st


def _looks_like_video(path: str) -> bool:
    """Return whether the file starts with the signature of a known video container."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head[4:8] in _ISO_BOXES or head.startswith(_MAGIC) or head[:3] == b"\x00\x00\x01"


def _open(path: str) -> av.container.InputContainer:
    """Open ``path`` with PyAV; raise VideoDecodeError (not a video / truncated) on failure."""
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = "truncated or corrupt video" if _looks_like_video(path) else "not a video file"
        raise VideoDecodeError(path, reason, str(exc)) from None


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """Return the first real video stream (cover art skipped); raise VideoDecodeError if none."""
    streams = list(container.streams.video)
    if not streams:
        raise VideoDecodeError(path, "no video stream")
    for stream in streams:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return streams[0]


def _open_video(path: str, threads: int = 1) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return (container, video stream) with other streams discarded."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
    except VideoDecodeError:
        container.close()
        raise
    discard_all = getattr(getattr(av.stream, "Discard", None), "all", None)  # PyAV >= 14
    for other in container.streams:
        if other.index != stream.index and discard_all is not None:
            other.discard = discard_all  # the demuxer then skips their data
    # FFmpeg's default (0) means one thread per core, too many inside DataLoader workers.
    stream.codec_context.thread_count = threads
    if threads > 1:
        stream.thread_type = "AUTO"  # frame + slice threading; output is identical to 1 thread
    return container, stream


def _demux(container: av.container.InputContainer, stream: Any) -> list[tuple[Any, Any, bool]]:
    """Return [(pts, dts, is_keyframe)] of the video packets in decode order, without decoding.

    A truncated file ends at a demux error or a cut-off last packet; what came before counts.
    """
    packets: list[tuple[Any, Any, bool]] = []
    corrupt_tail = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packets; edit-list frames never shown
                continue
            corrupt_tail = packet.is_corrupt
            packets.append((packet.pts, packet.dts, packet.is_keyframe))
    except av.error.FFmpegError:
        return packets
    # A cut packet at the very end is a truncated file: the decoder rejects it.
    return packets[:-1] if corrupt_tail else packets


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


def _count_by_decoding(path: str) -> int:
    """Return how many frames a sequential decode yields (for files whose table is untrusted)."""
    container, stream = _open_video(path, _num_threads())
    with container:
        count = 0
        try:
            for _ in _decoded(container, stream):
                count += 1
        except _DecodeFailed:
            pass
    return count


def _build_table(path: str) -> _FrameTable:
    """Demux ``path`` and return its frame table; raise VideoDecodeError for unusable files."""
    container, stream = _open_video(path)
    with container:
        packets = _demux(container, stream)  # a truncated file's table ends at the cut
        if not packets:
            raise VideoDecodeError(path, "truncated or corrupt video", "no video packets")
        table = _seek_table(path, stream, packets)
        if table is not None:
            return replace(table, container_format=container.format.name, pixel_format=_pixel_format(stream))
        # No usable timestamps: the only frame count to trust is a full decode.
        count = _count_by_decoding(path)
        if count == 0:
            raise VideoDecodeError(path, "truncated or corrupt video", "no frame decodes")
        empty = np.zeros(0, dtype=np.int64)
        info = _info(path, stream, count, None)
        return _FrameTable(
            info, stream.index, _time_base(stream), empty, empty, empty, empty, False, container.format.name
        )


def _pixel_format(stream: Any) -> str:
    """Return the name of the pixel format the decoder outputs ("" when unknown)."""
    return str(stream.codec_context.pix_fmt or "")


def _time_base(stream: Any) -> Fraction:
    """Return the stream's time base (1/1 when the container gives none)."""
    return Fraction(stream.time_base) if stream.time_base else Fraction(1, 1)


def _seek_table(path: str, stream: Any, packets: list[tuple[Any, Any, bool]]) -> _FrameTable | None:
    """Return a seekable frame table built from demuxed packets, or None when they cannot be trusted.

    Untrusted: a packet without pts and dts, duplicate pts, or a stream that does not start on a
    keyframe presented first (the decoder would drop or mangle the frames before it).
    """
    pts = [p if p is not None else d for p, d, _ in packets]
    if any(p is None for p in pts) or len(set(pts)) != len(pts) or not packets[0][2]:
        return None
    sorted_pts = np.sort(np.asarray(pts, dtype=np.int64))
    keys = [(p, p if d is None else d) for p, (_, d, key) in zip(pts, packets) if key]
    key_pts, key_dts = np.array(keys, dtype=np.int64).reshape(-1, 2).T
    key_index = np.searchsorted(sorted_pts, key_pts)
    if key_index.min() != 0:
        return None
    sort = np.argsort(key_index, kind="stable")
    time_base = _time_base(stream)
    span = float((sorted_pts[-1] - sorted_pts[0] + _last_duration(sorted_pts)) * time_base)
    info = _info(path, stream, len(sorted_pts), span)
    index_of = {int(p): i for i, p in enumerate(sorted_pts)}
    keys = (key_index[sort], key_pts[sort], key_dts[sort])
    return _FrameTable(info, stream.index, time_base, sorted_pts, *keys, True, index_of_pts=index_of)


def _last_duration(sorted_pts: np.ndarray) -> int:
    """Return the display duration of the last frame, in pts units (median frame step)."""
    if len(sorted_pts) < 2:
        return 1
    return int(np.median(np.diff(sorted_pts)))


_cache: OrderedDict[tuple[str, int, int], _FrameTable] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(path: str) -> tuple[str, int, int]:
    """Return (absolute path, mtime_ns, size) after checking the file exists and is non-empty."""
    st = _check_file(path)
    return os.path.abspath(path), st.st_mtime_ns, st.st_size


def _table(path: str) -> _FrameTable:
    """Return the cached frame table of ``path``, demuxing it on a miss."""
    key = _cache_key(path)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    table = _build_table(path)
    _store(key, table)
    return table


def _store(key: tuple[str, int, int], table: _FrameTable) -> None:
    """Insert ``table`` in the LRU cache, evicting the least recently used entry when full."""
    with _cache_lock:
        _cache[key] = table
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _distrust(path: str, table: _FrameTable) -> None:
    """Stop seeking in ``path``: its keyframes or timestamps proved wrong."""
    try:
        _store(_cache_key(path), replace(table, seekable=False))
    except VideoDecodeError:
        pass


def probe_video(path: str | os.PathLike[str], backend: str | None = None) -> VideoInfo:
    """Return the VideoInfo of ``path`` (frame count from demuxed packets, not the header).

    ``backend`` is validated only: metadata always comes from demuxing with PyAV.
    Raises VideoDecodeError for unusable files and ValueError for an unknown backend.
    """
    _resolve_backend(backend)
    path = os.fspath(path)
    info = _table(path).info
    return info if info.path == path else replace(info, path=path)  # cached under another spelling


# ---------------------------------------------------------------------------------------------
# PyAV decoding


def _decoded(
    container: Any, stream: Any, skippable: Callable[[int], bool] | None = None
) -> Iterator[av.VideoFrame]:
    """Yield decoded frames from the current position in presentation order.

    Packets whose pts ``skippable`` accepts are sent with skip_frame=NONREF: the decoder drops them
    when no other frame references them (unneeded B-frames), and decodes them otherwise.
    A cut-off last packet is not sent, as the frame table leaves it out. On a decode error the
    frames the decoder still holds are yielded where it allows, then _DecodeFailed is raised.
    """
    ctx = stream.codec_context
    skipping: bool | None = None  # unknown: an earlier pass over this container may have left NONREF

    def send(packet: av.Packet) -> list[av.VideoFrame]:
        nonlocal skipping
        skip = skippable is not None and packet.pts is not None and skippable(packet.pts)
        if skip is not skipping:  # frame threads read it when the packet is submitted
            ctx.skip_frame, skipping = ("NONREF" if skip else "DEFAULT"), skip
        return packet.decode()

    held = None  # a corrupt packet waits until we know whether it is the cut end of the file
    try:
        for packet in container.demux(stream):
            if held is not None:
                if packet.size:  # corrupt mid-stream: the decoder decides, as in a plain decode
                    yield from send(held)
                held = None
            if packet.is_corrupt and packet.size:
                held = packet
                continue
            yield from send(packet)
        return
    except av.error.FFmpegError as exc:
        error = exc
    try:
        yield from ctx.decode(None)
    except av.error.FFmpegError:
        pass  # with frame threads the error can resurface here; what is lost is lost
    raise _DecodeFailed(str(error))


def _is_keyframe(frame: av.VideoFrame) -> bool:
    """Return whether a decoded frame is intra-coded (a valid start of decoding)."""
    return bool(frame.key_frame) or frame.pict_type == av.video.frame.PictureType.I


def _seek_targets(table: _FrameTable, key_pos: int) -> list[int]:
    """Return the timestamps to seek to for keyframe ``key_pos``, latest first.

    Demuxers index by pts (Matroska), by shifted dts (MP4) or search by dts (MPEG-TS): the
    keyframe's pts, then its dts, then the previous keyframe's dts. Landing early only costs time.
    """
    candidates = [table.key_pts[key_pos], table.key_dts[key_pos]]
    if key_pos > 0:
        candidates.append(table.key_dts[key_pos - 1])
    return list(dict.fromkeys(int(ts) for ts in candidates))


def _frame_index(table: _FrameTable, frame: av.VideoFrame) -> int:
    """Return the table index of a decoded frame; raise _SeekMismatch when its pts is unknown."""
    index = table.index_of_pts.get(frame.pts, -1) if frame.pts is not None else -1
    if index < 0:
        raise _SeekMismatch(f"frame pts {frame.pts} not in the demuxed table")
    return index


def _first_from(frames: Iterator[av.VideoFrame], table: _FrameTable, start: int) -> tuple[int, Any] | None:
    """Return the first (index, frame) with index >= ``start``, or None when the stream ends first.

    Earlier frames are skipped: a seek that landed early, or open-GOP leading frames.
    """
    for frame in frames:
        index = _frame_index(table, frame)
        if index >= start:
            return index, frame
    return None


def _verified_frames(
    container: Any, stream: Any, table: _FrameTable, key_pos: int, seek: bool, skip: np.ndarray
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (index, frame) from keyframe ``table.key_index[key_pos]`` on, checked against the table.

    The first frame must be that keyframe, decoded clean; then indices must increase, and only
    frames marked in the boolean ``skip`` (unwanted, non-key) may be missing between them.
    Raises _SeekMismatch when the decoder's output does not follow the table, _DecodeFailed on errors.
    """
    start = int(table.key_index[key_pos])
    index_of = table.index_of_pts

    def skippable(pts: int) -> bool:
        index = index_of.get(pts, -1)
        return index >= 0 and bool(skip[index])

    for target in _seek_targets(table, key_pos) if seek else [None]:
        if target is not None:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = _decoded(container, stream, skippable)
        first = _first_from(frames, table, start)
        if first is not None and first[0] == start:
            break  # otherwise the seek overshot: try an earlier timestamp
    else:
        raise _SeekMismatch(f"no seek reached keyframe {start}")
    index, frame = first
    if not _is_keyframe(frame):
        raise _SeekMismatch(f"frame {index} is not a keyframe after seeking")
    while True:
        if frame.is_corrupt:
            raise _SeekMismatch(f"frame {index} decoded corrupt after seeking")
        yield index, frame
        frame = next(frames, None)
        if frame is None:
            return
        previous, index = index, _frame_index(table, frame)
        if index <= previous or not skip[previous + 1 : index].all():
            raise _SeekMismatch(f"decoded frame {index} right after frame {previous}")


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Return the frame as a uint8 (H, W, 3) RGB array, exactly as PyAV's reference decode does."""
    return frame.to_ndarray(format="rgb24")


def _decode_pyav_seeking(path: str, table: _FrameTable, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Return {index: rgb} for the sorted unique ``wanted`` indices, seeking keyframe to keyframe.

    Seeks only when the next wanted frame's keyframe lies beyond what has been decoded.
    Raises _SeekMismatch or _DecodeFailed for the caller to fall back.
    """
    key_pos = np.searchsorted(table.key_index, wanted, side="right") - 1
    skip = np.ones(table.info.num_frames, dtype=bool)  # frames the decoder may drop if unreferenced
    skip[wanted] = False
    skip[table.key_index] = False
    frames: dict[int, np.ndarray] = {}
    container, stream = _open_video(path, _num_threads())
    with container:
        source: Iterator[tuple[int, av.VideoFrame]] | None = None
        decoded_to = -1
        for target, pos in zip(wanted.tolist(), key_pos.tolist()):
            if source is None or int(table.key_index[pos]) > decoded_to + 1:
                # At open the demuxer is already at the first packet: no seek for keyframe 0.
                seek = source is not None or pos > 0
                source = _verified_frames(container, stream, table, pos, seek, skip)
            for index, frame in source:
                decoded_to = index
                if index == target:
                    frames[index] = _to_rgb(frame)
                    break
            else:
                raise _SeekMismatch(f"stream ended before frame {target}")
    return frames


def _decode_pyav_sequential(path: str, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Return {index: rgb} by decoding from the start and counting frames (no seeking at all).

    Stops after the last wanted frame. Raises VideoDecodeError when the stream ends or breaks first.
    """
    wanted_set = set(wanted.tolist())
    last = int(wanted[-1])
    frames: dict[int, np.ndarray] = {}
    container, stream = _open_video(path, _num_threads())
    with container:
        try:
            for index, frame in enumerate(_decoded(container, stream)):
                if index in wanted_set:
                    frames[index] = _to_rgb(frame)
                if index >= last:
                    return frames
        except _DecodeFailed as exc:
            raise VideoDecodeError(path, "truncated or corrupt video", str(exc)) from None
    # Only indices inside the demuxed table get here, so a short stream is a broken one.
    raise VideoDecodeError(path, "truncated or corrupt video", f"the stream ends before frame {last}")


def _decode_pyav(path: str, table: _FrameTable, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """Return {index: rgb} with PyAV: verified seeking where the file allows, else sequential."""
    if table.seekable:
        try:
            return _decode_pyav_seeking(path, table, wanted)
        except _SeekMismatch:
            _distrust(path, table)
        except _DecodeFailed:
            pass  # maybe an artefact of the seek: the sequential pass decides
    return _decode_pyav_sequential(path, wanted)


# ---------------------------------------------------------------------------------------------
# decord decoding


def _decord_agrees(reader: Any, table: _FrameTable) -> bool:
    """Return whether decord's frame count, timestamps and keyframes match the demuxed table.

    decord trusts header frame counts (it hangs past the real end) and returns wrong frames when
    its own index disagrees with the stream, so any disagreement means "do not use decord here".
    """
    n = table.info.num_frames
    if len(reader) != n:
        return False
    seconds = (table.pts - table.pts[0]).astype(np.float64) * float(table.time_base)
    starts = np.asarray(reader.get_frame_timestamp(np.arange(n)), dtype=np.float64)[:, 0]
    min_step = float(np.min(np.diff(seconds))) if n > 1 else 1.0
    if np.max(np.abs(starts - seconds)) > min(2e-3, 0.25 * min_step):
        return False
    keys = np.asarray(reader.get_key_indices(), dtype=np.int64)
    return bool(np.array_equal(np.sort(keys), table.key_index))


def _decode_decord(path: str, table: _FrameTable, wanted: np.ndarray) -> dict[int, np.ndarray] | None:
    """Return {index: rgb} decoded by decord, or None when decord cannot be trusted for ``path``."""
    known_format = _DECORD_FORMATS & set(table.container_format.split(","))
    if not (table.seekable and known_format and table.pixel_format in _DECORD_PIXEL_FORMATS):
        return None
    import decord

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=_num_threads())
        if not _decord_agrees(reader, table):
            return None
        batch = reader.get_batch(wanted.tolist()).asnumpy()
    except Exception:  # any decord failure: the PyAV path decodes the file or reports why it cannot
        return None
    info = table.info
    if batch.shape != (len(wanted), info.height, info.width, 3) or batch.dtype != np.uint8:
        return None
    return dict(zip(wanted.tolist(), batch))


# ---------------------------------------------------------------------------------------------
# Public entry point


def _as_indices(indices: Iterable[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Return ``indices`` as a 1-D int64 array; raise TypeError/ValueError for non-integers."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise TypeError(f"frame indices must be integers, got dtype {array.dtype}")
    return array.astype(np.int64).reshape(-1)


def decode_frames(
    path: str | os.PathLike[str],
    indices: Iterable[int] | np.ndarray | torch.Tensor,
    backend: str | None = None,
) -> torch.Tensor:
    """Return the frames at 0-based ``indices`` as a uint8 (N, H, W, 3) RGB tensor, in the order asked.

    Frames are pixel-identical to a sequential PyAV decode of the file; repeated and unsorted
    indices are allowed, and each distinct frame is decoded once.
    Raises VideoDecodeError (reason "frame index out of range" for indices outside
    [0, num_frames)) and ValueError for an unknown backend.
    """
    name = _resolve_backend(backend)
    path = os.fspath(path)
    order = _as_indices(indices)
    table = _table(path)
    info = table.info
    if order.size == 0:
        return torch.zeros((0, info.height, info.width, 3), dtype=torch.uint8)
    bad = order[(order < 0) | (order >= info.num_frames)]
    if bad.size:
        detail = f"index {int(bad[0])}, video has {info.num_frames} frames"
        raise VideoDecodeError(path, "frame index out of range", detail)
    wanted = np.unique(order)
    frames = _decode_decord(path, table, wanted) if name == "decord" else None
    if frames is None:
        frames = _decode_pyav(path, table, wanted)
    try:
        return torch.from_numpy(np.stack([frames[i] for i in order.tolist()]))
    except ValueError:
        raise VideoDecodeError(path, "frame size changes mid-stream") from None
