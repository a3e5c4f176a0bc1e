"""Frame-exact decoding with PyAV: verified seeking keyframe to keyframe, or a sequential pass from the start.

Every frame decoded after a seek is checked against the frame index: the first must be the keyframe sought, then
pts must follow the index in order, and no frame may be flagged corrupt. Unwanted frames are sent with
skip_frame=NONREF, so the decoder drops those nothing references (most B-frames); only those may be missing from
the output. Any mismatch (a seek that lands elsewhere, a keyframe flag that lies, dropped frames) raises
SeekMismatch, and the caller decodes sequentially instead. Each seek is checked on its own, every time: nothing
learned from earlier calls decides whether a seek is trusted.

Counted mode is for streams whose decoder outputs frames in presentation order but labels them with permuted pts
(``FrameIndex.counted``: MPEG-4 part 2, AVI, or stored pts in decode order): above all MPEG-4 part 2 in AVI with
"packed B-frames" (DivX/XviD; UCF-101 and HMDB-51 are stored so), where each B-frame rides in the packet of the
P-frame after it and a placeholder packet follows. There a frame's position is counted
from the keyframe (nothing is skipped), the first frame must still be the keyframe with its exact pts, and the pts
seen since the keyframe must close up: no label before the keyframe, none twice, and before a request is accepted
the labels of the first n frames must be exactly the index's n timestamps from the keyframe on, for some n > 1
and again at least every few frames (a dropped or added frame never closes, and fails the seek). The keyframe alone
never closes: in an open-GOP AVI the keyframe packet's pts is the slot of the B-frame shown before it, which a
decoder drops after a seek, so only a later frame shows whether the count is right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .index import FrameIndex


class SeekMismatch(Exception):
    """Frames decoded after a seek disagree with the frame index."""


# Counted mode: how far a label may stray from its counted position, and how many frames may pass without the labels
# closing up, before the seek is refused. Packed B-frames shift labels by one and close up every other frame; x264
# allows 16 B-frames in a row.
_LABEL_WINDOW = 18


class DecodeFailed(Exception):
    """The decoder raised mid-stream (truncated or corrupt data)."""


def to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """Return the frame as a uint8 (H, W, 3) RGB array, pixel for pixel ``frame.to_ndarray(format="rgb24")``: the
    definition of a frame's pixels here.

    Pass one ``reformatter`` for all the frames of a video: its swscale context is then set up once, where
    ``to_ndarray`` sets up a new one per frame (most of the conversion time on small frames). The conversion runs on
    one thread: PyAV 17+ otherwise splits each frame over all cores, which next to a running decoder cost more than it
    gained (vtest.avi's 160 test frames: 397 ms against 352 ms, 2 cores); before PyAV 17 it was one thread anyway.
    """
    if reformatter is None:
        return frame.to_ndarray(format="rgb24")
    try:
        return reformatter.reformat(frame, format="rgb24", **_ONE_SWS_THREAD).to_ndarray()
    except TypeError:  # PyAV < 17: no ``threads`` argument, and its swscale is single-threaded
        if not _ONE_SWS_THREAD:
            raise
        _ONE_SWS_THREAD.clear()
        return reformatter.reformat(frame, format="rgb24").to_ndarray()


_ONE_SWS_THREAD: dict[str, int] = {"threads": 1}


def decoded(container: Any, stream: Any, skippable: Callable[[int], bool] | None = None) -> Iterator[av.VideoFrame]:
    """Yield decoded frames from the current position in presentation order.

    Packets whose pts ``skippable`` accepts are sent with skip_frame=NONREF: the decoder drops them
    when no other frame references them (unneeded B-frames), and decodes them otherwise.
    A cut-off last packet is not sent, as the frame index leaves it out. On a decode error the
    frames the decoder still holds are yielded where it allows, then DecodeFailed is raised.
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
    raise DecodeFailed(str(error))


def _is_keyframe(frame: av.VideoFrame) -> bool:
    """Return whether a decoded frame is intra-coded (a valid start of decoding)."""
    return bool(frame.key_frame) or frame.pict_type == av.video.frame.PictureType.I


def _seek_targets(index: FrameIndex, key_pos: int) -> list[int]:
    """Return the timestamps to seek to for keyframe ``key_pos``, latest first.

    Demuxers index by pts (Matroska), by shifted dts (MP4) or search by dts (MPEG-TS): the
    keyframe's pts, then its dts, then the previous keyframe's dts. Landing early only costs time.
    """
    candidates = [index.key_pts[key_pos], index.key_dts[key_pos]]
    if key_pos > 0:
        candidates.append(index.key_dts[key_pos - 1])
    return list(dict.fromkeys(int(ts) for ts in candidates))


def _frame_index(index: FrameIndex, frame: av.VideoFrame) -> int:
    """Return the index of a decoded frame; raise SeekMismatch when its pts is unknown."""
    position = index.position_of(frame.pts)
    if position < 0:
        raise SeekMismatch(f"frame pts {frame.pts} not in the demuxed index")
    return position


def _first_from(frames: Iterator[av.VideoFrame], index: FrameIndex, start: int) -> tuple[int, Any] | None:
    """Return the first (index, frame) with index >= ``start``, or None when the stream ends first.

    Earlier frames are skipped: a seek that landed early, or open-GOP leading frames.
    """
    for frame in frames:
        position = _frame_index(index, frame)
        if position >= start:
            return position, frame
    return None


def _verified_frames(
    container: Any, stream: Any, index: FrameIndex, key_pos: int, seek: bool, skip: np.ndarray | None
) -> Iterator[tuple[int, av.VideoFrame, bool]]:
    """Yield (index, frame, settled) from keyframe ``index.key_index[key_pos]`` on, checked against the index.

    The first frame must be that keyframe, decoded clean. With a boolean ``skip``, indices come from each frame's
    pts: they must increase, and only frames marked in ``skip`` (unwanted, non-key) may be missing between them;
    ``settled`` is always True. With ``skip`` None (counted mode, see the module), nothing is skipped, indices are
    counted, and ``settled`` says whether the labels seen so far are exactly the index's from the keyframe on.
    Raises SeekMismatch when the decoder's output does not follow the index, DecodeFailed on errors.
    """
    start = int(index.key_index[key_pos])

    def skippable(pts: int) -> bool:
        position = index.position_of(pts)
        return position >= 0 and bool(skip[position])

    for target in _seek_targets(index, key_pos) if seek else [None]:
        if target is not None:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = decoded(container, stream, skippable if skip is not None else None)
        first = _first_from(frames, index, start)
        if first is not None and first[0] == start:
            break  # otherwise the seek overshot: try an earlier timestamp
    else:
        raise SeekMismatch(f"no seek reached keyframe {start}")
    position, frame = first
    if not _is_keyframe(frame):
        raise SeekMismatch(f"frame {position} is not a keyframe after seeking")
    labels, highest, closed = {start}, start, start  # counted mode: labels seen, the largest, last closed position
    while True:
        if frame.is_corrupt:
            raise SeekMismatch(f"frame {position} decoded corrupt after seeking")
        yield position, frame, skip is not None or closed == position > start
        frame = next(frames, None)
        if frame is None:
            return
        previous, label = position, _frame_index(index, frame)
        if skip is not None:
            position = label
            if position <= previous or not skip[previous + 1 : position].all():
                raise SeekMismatch(f"decoded frame {position} right after frame {previous}")
            continue
        position = previous + 1
        if label in labels or label < start or abs(label - position) > _LABEL_WINDOW:
            raise SeekMismatch(f"frame {position} after keyframe {start} is labelled as frame {label}")
        labels.add(label)
        highest = max(highest, label)
        if highest == position:  # distinct labels from start on, as many as positions: exactly the index's
            closed = position
        elif position - closed > _LABEL_WINDOW:
            raise SeekMismatch(f"the labels after keyframe {start} do not close up by frame {position}")


def _settle(source: Iterator[tuple[int, av.VideoFrame, bool]], settled: bool) -> None:
    """Decode on from a counted-mode run until its labels close up (see the module); raise SeekMismatch if the
    stream ends first (the run refuses to go more than its label window without closing up)."""
    while not settled:
        step = next(source, None)
        if step is None:
            raise SeekMismatch("the frames decoded after a seek never matched the index's")
        settled = step[2]


def seeking_frames(
    container: Any, stream: Any, index: FrameIndex, wanted: np.ndarray, at_start: bool
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (index, frame) for the sorted unique ``wanted`` indices, seeking keyframe to keyframe.

    Seeks only when the next wanted frame's keyframe lies beyond what has been decoded; ``at_start``: the
    container has just been opened, so keyframe 0 needs no seek. In counted mode (``index.counted``, see the module)
    the request ends only once the labels decoded so far have closed up. Raises SeekMismatch or DecodeFailed for the
    caller to fall back.
    """
    key_pos = index.gop_of(wanted)
    skip = None
    if not index.counted:
        skip = np.ones(index.info.num_frames, dtype=bool)  # frames the decoder may drop if unreferenced
        skip[wanted] = False
        skip[index.key_index] = False
    source: Iterator[tuple[int, av.VideoFrame, bool]] | None = None
    decoded_to, settled = -1, True
    for target, pos in zip(wanted.tolist(), key_pos.tolist()):
        if source is None or int(index.key_index[pos]) > decoded_to + 1:
            if source is not None:
                _settle(source, settled)
            seek = source is not None or pos > 0 or not at_start
            source = _verified_frames(container, stream, index, pos, seek, skip)
        for position, frame, settled in source:
            decoded_to = position
            if position == target:
                yield position, frame
                break
        else:
            raise SeekMismatch(f"stream ended before frame {target}")
    if source is not None:
        _settle(source, settled)


def sequential_frames(container: Any, stream: Any, wanted: np.ndarray) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (index, frame) for the sorted unique ``wanted`` indices of a container opened just now, counting
    frames from the start (no seeking at all); stops after the last one.

    Raises DecodeFailed when the stream breaks, EOFError when it ends before the last wanted frame.
    """
    targets = iter(wanted.tolist())
    target = next(targets, None)
    for position, frame in enumerate(decoded(container, stream)):
        if position == target:
            yield position, frame
            target = next(targets, None)
            if target is None:
                return
    raise EOFError(f"the stream ends before frame {target}")
