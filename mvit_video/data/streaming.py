"""Streaming decode: a whole video in one front-to-back pass, and the clips of many windows from that pass.

:func:`iter_frames` decodes a file sequentially with PyAV and yields each frame once, then forgets it: frame ``i``
is the frame that ``VideoReader(path).frames([i])`` returns (:mod:`.video` defines frame indices by this very pass),
and memory does not depend on the length of the video.

:class:`ClipStream` cuts clips out of such a pass. It is given the frame indices of each clip, clips in the order
of their first (and last) frame, as sliding windows are. It keeps the frames that a clip still to be completed
needs in a ring buffer (a deque ordered by frame index), yields each clip as soon as its last frame has arrived,
and drops the frames that no open or later clip can need. The buffer never holds more than the sampled frames of
the clips that overlap one position of the video (T x the number of windows open at once), however long the video.
"""

import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Deque, List, Optional, Tuple, Union

import numpy as np

from .video import VideoReader

__all__ = ["ClipStream", "iter_frames"]


def iter_frames(path: Union[str, os.PathLike]) -> Iterator[np.ndarray]:
    """Yields every frame of ``path`` in order, as uint8 ``(H, W, 3)`` RGB arrays, decoding it once from the start.

    Raises (when iterated):
        VideoDecodeError: a missing, empty or non-video file, no video stream, or a stream that breaks mid-way
            (after the frames decoded before the break).
    """
    with VideoReader(path) as video:
        yield from video.iter_frames()


@dataclass(frozen=True)
class _OpenClip:
    key: Hashable
    indices: Sequence[int]
    wanted: frozenset
    first: int
    last: int


def _open_clip(key: Hashable, indices: Sequence[int]) -> _OpenClip:
    if not indices:
        raise ValueError(f"clip {key!r} has no frame indices")
    return _OpenClip(key, list(indices), frozenset(indices), min(indices), max(indices))


class ClipStream:
    """Clips ``(key, frame indices)`` cut from one sequential pass over ``frames``, with a bounded buffer.

    Iterating yields ``(key, [prepare(frame) for each index])`` per clip, in the given order, as soon as the clip's
    last frame has been read. ``prepare`` runs once per buffered frame as it arrives (e.g. resizing, so that the
    buffer holds small frames). ``peak_buffered`` is the largest number of frames the buffer has held.

    Raises (when iterated):
        ValueError: a clip without indices, or clips out of order (a first or last index below the previous clip's).
        EOFError: ``frames`` ended before the last frame of a clip.
    """

    def __init__(
        self,
        frames: Iterable[Any],
        clips: Iterable[Tuple[Hashable, Sequence[int]]],
        prepare: Callable[[Any], Any] = lambda frame: frame,
    ):
        self.frames = frames
        self.clips = clips
        self.prepare = prepare
        self.peak_buffered = 0

    def __iter__(self) -> Iterator[Tuple[Hashable, List[Any]]]:
        clips = (_open_clip(key, indices) for key, indices in self.clips)
        upcoming = next(clips, None)
        open_clips: Deque[_OpenClip] = deque()
        buffer: Deque[Tuple[int, Any]] = deque()  # (frame index, prepared frame), increasing index
        previous = None
        count = 0
        for index, frame in enumerate(self.frames):
            count = index + 1
            while upcoming is not None and upcoming.first <= index:
                _check_order(previous, upcoming)
                open_clips.append(upcoming)
                previous, upcoming = upcoming, next(clips, None)
            if any(index in clip.wanted for clip in open_clips):
                buffer.append((index, self.prepare(frame)))
                self.peak_buffered = max(self.peak_buffered, len(buffer))
            while open_clips and open_clips[0].last <= index:
                clip = open_clips.popleft()
                held = dict(buffer)
                yield clip.key, [held[i] for i in clip.indices]
            # Every index of an open or later clip is at least its first one.
            keep_from = open_clips[0].first if open_clips else (upcoming.first if upcoming else count)
            while buffer and buffer[0][0] < keep_from:
                buffer.popleft()
            if upcoming is None and not open_clips:
                return  # nothing left to cut: the rest of the video need not be decoded
        waiting = open_clips[0] if open_clips else upcoming
        if waiting is not None:
            raise EOFError(f"the video ends after {count} frames, before frame {waiting.last} of clip {waiting.key!r}")


def _check_order(previous: Optional[_OpenClip], clip: _OpenClip) -> None:
    if previous is not None and (clip.first < previous.first or clip.last < previous.last):
        raise ValueError(
            f"clip {clip.key!r} (frames {clip.first}..{clip.last}) comes after clip {previous.key!r} "
            f"(frames {previous.first}..{previous.last}): clips must be ordered by their first and last frames"
        )
