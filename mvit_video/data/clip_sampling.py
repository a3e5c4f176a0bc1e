"""Clip sampling: which frames of a video make one T x tau clip, for training and for the multi-view test.

A clip is T frames taken with stride tau, where tau is counted in frames of a video played at ``target_fps``
(30 in PySlowFast). A video at another frame rate covers the same time span, so its clip spans
``T * tau * fps / target_fps`` of its own frames: a 60 fps video uses a stride of 2 tau, a 15 fps one tau / 2.

When in the video a clip starts is decided by pytorchvideo's clip samplers (``RandomClipSampler`` for training,
``ConstantClipsPerVideoSampler`` for uniform test clips) working in seconds, or, for PySlowFast's offset sampling,
by its formula in frames. A start is then turned into frame indices exactly as PySlowFast's ``temporal_sampling``
does: T points spaced evenly from the first to the last frame of the span, truncated to integers and clamped to
the video, so a video shorter than a clip repeats its last frame instead of failing.

For predicting along a long video, :func:`sliding_windows` lays windows over its whole duration and
:func:`window_clip_indices` takes one T x tau clip centred in each.
"""

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, List, Tuple

import torch
from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler, RandomClipSampler

# Window times are sums of user-given seconds: compare them with a tolerance far below a frame.
_TIME_EPS = 1e-6


@dataclass(frozen=True)
class ClipSpec:
    """A T x tau clip: ``num_frames`` frames with stride ``sampling_rate``, counted at ``target_fps``."""

    num_frames: int
    sampling_rate: int
    target_fps: float = 30.0

    def span(self, fps: float) -> float:
        """Frames of a video at ``fps`` covered by one clip (at least 1; fractional in general)."""
        return max(1.0, self.num_frames * self.sampling_rate * fps / self.target_fps)


def clip_frame_indices(start: float, span: float, num_frames: int, video_frames: int) -> List[int]:
    """The ``num_frames`` indices of the clip of ``span`` frames that starts at frame ``start``.

    PySlowFast's rule: ``linspace(start, start + span - 1, num_frames)``, truncated, clamped to
    ``[0, video_frames - 1]``. Indices past the end of a short video repeat its last frame.

    Raises:
        ValueError: ``video_frames`` < 1.
    """
    if video_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {video_frames}")
    points = torch.linspace(start, start + span - 1, num_frames)
    return points.clamp(0, video_frames - 1).long().tolist()


def random_clip_start(span: float, video_frames: int, fps: float) -> float:
    """A uniformly random start frame in ``[0, max(video_frames - span, 0)]``, drawn by pytorchvideo's
    ``RandomClipSampler`` in seconds (it uses Python's ``random``, which DataLoader seeds per worker)."""
    sampler = RandomClipSampler(clip_duration=Fraction(span) / Fraction(fps))
    clip = sampler(0.0, Fraction(video_frames) / Fraction(fps), {})
    return float(Fraction(clip.clip_start_sec) * Fraction(fps))


def uniform_clip_starts(span: float, video_frames: int, fps: float, num_clips: int) -> List[float]:
    """Start frames of ``num_clips`` clips at ``i * delta / num_clips``, ``delta = max(video_frames - span, 0)``.

    This is PySlowFast's sampling without offset (the last clip does not reach the end of the video), computed by
    pytorchvideo's ``ConstantClipsPerVideoSampler`` in seconds, with exact fractions.
    """
    sampler = ConstantClipsPerVideoSampler(clip_duration=Fraction(span) / Fraction(fps), clips_per_video=num_clips)
    duration = Fraction(video_frames) / Fraction(fps)
    # The sampler is stateful: each call returns the next of its clips.
    return [float(Fraction(sampler(0.0, duration, {}).clip_start_sec) * Fraction(fps)) for _ in range(num_clips)]


def offset_clip_starts(span: float, video_frames: int, num_clips: int) -> List[float]:
    """Start frames of PySlowFast's offset sampling (``DATA.USE_OFFSET_SAMPLING``).

    With ``delta = max(video_frames - span, 0)``: one clip starts at ``floor(delta / 2)`` (the centre clip);
    ``n > 1`` clips start at ``i * floor(delta / (n - 1))``, so the first clip starts at the first frame and the
    last one ends at, or within ``n - 1`` frames of, the last frame. This is PySlowFast's ``get_start_end_idx``
    with ``use_offset=True``, whose floor makes it slightly less than ``linspace(0, delta, n)``.
    """
    delta = max(video_frames - span, 0.0)
    if num_clips == 1:
        return [float(math.floor(delta / 2))]
    step = math.floor(delta / (num_clips - 1))
    return [float(i * step) for i in range(num_clips)]


def train_clip_indices(clip: ClipSpec, video_frames: int, fps: float) -> List[int]:
    """Frame indices of one randomly placed training clip of a video with ``video_frames`` frames at ``fps``."""
    span = clip.span(fps)
    start = random_clip_start(span, video_frames, fps)
    return clip_frame_indices(start, span, clip.num_frames, video_frames)


def temporal_view_indices(
    clip: ClipSpec, video_frames: int, fps: float, num_clips: int, use_offset: bool
) -> List[List[int]]:
    """Frame indices of the ``num_clips`` temporal test views of a video, in temporal order.

    Raises:
        ValueError: ``num_clips`` < 1.
    """
    if num_clips < 1:
        raise ValueError(f"need at least one temporal view, got {num_clips}")
    span = clip.span(fps)
    if use_offset:
        starts = offset_clip_starts(span, video_frames, num_clips)
    else:
        starts = uniform_clip_starts(span, video_frames, fps, num_clips)
    return [clip_frame_indices(start, span, clip.num_frames, video_frames) for start in starts]


def sliding_windows(duration: float, window: float, stride: float) -> Iterator[Tuple[float, float]]:
    """``(start, end)`` in seconds of windows of ``window`` seconds every ``stride`` seconds that cover a video.

    Windows start at ``0, stride, 2 * stride, ...`` while they end inside the video; when the last of them ends
    before ``duration``, one more window ends exactly at ``duration`` (it starts at ``duration - window``). A video
    shorter than one window gets the single window ``(0, duration)``. The arguments are checked at once; the
    windows come lazily, so a long video's windows are never all held at once.

    Raises:
        ValueError: a non-positive duration, window or stride, or ``stride > window`` (the windows would leave gaps).
    """
    if duration <= 0 or window <= 0 or stride <= 0:
        raise ValueError(f"need a positive duration, window and stride; got {duration}, {window}, {stride} s")
    if stride > window:
        raise ValueError(f"a stride of {stride} s is longer than the {window} s window: the windows would leave gaps")
    return _windows(duration, window, stride)


def _windows(duration: float, window: float, stride: float) -> Iterator[Tuple[float, float]]:
    if window >= duration - _TIME_EPS:
        yield 0.0, duration
        return
    k = 0
    while k * stride + window <= duration + _TIME_EPS:
        start = round(k * stride, 9)
        yield start, min(round(start + window, 9), duration)
        k += 1
    last_end = (k - 1) * stride + window
    if last_end < duration - _TIME_EPS:
        yield round(duration - window, 9), duration


def window_clip_indices(clip: ClipSpec, start: float, end: float, fps: float, video_frames: int) -> List[int]:
    """Frame indices of the T x tau clip centred in the window ``[start, end)`` seconds of a video at ``fps``.

    The clip has the span the model was trained on (``clip.span(fps)`` frames), whatever the window's length: a
    longer window is represented by its centre, a shorter one by a clip reaching past its ends. The clip is shifted
    to lie inside the video where the video is long enough, so the first and last windows repeat no frame.
    """
    span = clip.span(fps)
    centre = (start + end) / 2 * fps
    first = min(max(centre - span / 2, 0.0), max(video_frames - span, 0.0))
    return clip_frame_indices(first, span, clip.num_frames, video_frames)
