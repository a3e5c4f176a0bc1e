"""Clip sampling: T x tau at the target frame rate, PySlowFast's test-clip formulas, short videos."""

import math
import random

import pytest
import torch

from mvit_video.data.clip_sampling import (
    ClipSpec,
    clip_frame_indices,
    offset_clip_starts,
    temporal_view_indices,
    train_clip_indices,
)


def pyslowfast_indices(video_size, clip_size, clip_idx, num_clips, use_offset, num_frames):
    """PySlowFast's get_start_end_idx (test branch) followed by temporal_sampling, written out independently."""
    delta = max(video_size - clip_size, 0)
    if use_offset:
        start = math.floor(delta / 2) if num_clips == 1 else clip_idx * math.floor(delta / (num_clips - 1))
    else:
        start = delta * clip_idx / num_clips
    end = start + clip_size - 1
    return torch.linspace(start, end, num_frames).clamp(0, video_size - 1).long().tolist()


def test_16x4_clip_at_30fps_spans_64_frames_like_pyslowfast():
    # linspace(0, 63, 16) truncated: the stride is 4 on average over the span.
    assert clip_frame_indices(0, ClipSpec(16, 4).span(30.0), 16, 1000) == [
        0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63,
    ]


@pytest.mark.parametrize("fps, span", [(30.0, 32), (60.0, 64), (15.0, 16), (25.0, 32 * 25 / 30)])
def test_stride_is_counted_at_the_target_fps(fps, span):
    clip = ClipSpec(num_frames=8, sampling_rate=4, target_fps=30)
    assert clip.span(fps) == pytest.approx(span)
    (indices,) = temporal_view_indices(clip, video_frames=10_000, fps=fps, num_clips=1, use_offset=True)
    assert indices[-1] - indices[0] == math.floor(span - 1) or indices[-1] - indices[0] == math.ceil(span - 1)


def test_a_60fps_clip_samples_the_same_instants_as_a_30fps_clip():
    clip = ClipSpec(num_frames=16, sampling_rate=4)
    at30 = clip_frame_indices(300, clip.span(30.0), 16, 10_000)
    at60 = clip_frame_indices(600, clip.span(60.0), 16, 10_000)
    # Same seconds, up to the truncation of each index and PySlowFast's "span - 1" end (1/60 s): a 60 fps
    # video is stepped by 2 tau.
    assert all(abs(a / 30 - b / 60) < 1 / 30 + 1 / 60 for a, b in zip(at30, at60))
    assert at60[-1] - at60[0] == 2 * (at30[-1] - at30[0]) + 1  # spans of 127 and 63 frames


@pytest.mark.parametrize("video_frames, fps", [(300, 30.0), (250, 25.0), (901, 29.97), (120, 60.0)])
@pytest.mark.parametrize("num_clips", [1, 3, 10])
@pytest.mark.parametrize("use_offset", [True, False])
def test_test_views_match_pyslowfast(video_frames, fps, num_clips, use_offset):
    clip = ClipSpec(16, 4)
    views = temporal_view_indices(clip, video_frames, fps, num_clips, use_offset)
    expected = [
        pyslowfast_indices(video_frames, clip.span(fps), i, num_clips, use_offset, 16) for i in range(num_clips)
    ]
    assert views == expected


def test_offset_views_spread_evenly_from_the_first_to_the_last_frame():
    span, video_frames = 64.0, 604
    starts = offset_clip_starts(span, video_frames, 10)
    steps = {b - a for a, b in zip(starts, starts[1:])}
    assert starts[0] == 0 and steps == {60.0}  # floor(540 / 9)
    assert video_frames - (starts[-1] + span) < 10  # the last clip ends within n - 1 frames of the end
    assert offset_clip_starts(span, video_frames, 1) == [270.0]  # one clip: the centre


def test_uniform_views_without_offset_stop_short_of_the_end():
    views = temporal_view_indices(ClipSpec(16, 4), 364, 30.0, 10, use_offset=False)
    assert [v[0] for v in views] == [30 * i for i in range(10)]  # delta 300, i * 300 / 10
    assert views[-1][-1] < 363


def test_short_video_repeats_its_last_frame():
    clip = ClipSpec(16, 4)
    for views in (temporal_view_indices(clip, 10, 30.0, 3, True), temporal_view_indices(clip, 10, 30.0, 3, False)):
        for indices in views:
            assert indices[:3] == [0, 4, 8] and set(indices[3:]) == {9}
    random.seed(0)
    assert train_clip_indices(clip, 10, 30.0) == [0, 4, 8] + [9] * 13
    assert clip_frame_indices(0, 64, 16, 1) == [0] * 16


def test_training_clips_start_anywhere_in_the_free_range():
    random.seed(0)
    clip = ClipSpec(8, 4)  # span 32
    starts = [train_clip_indices(clip, 100, 30.0)[0] for _ in range(400)]
    assert min(starts) <= 3 and max(starts) >= 64 and max(starts) <= 68
    ends = [train_clip_indices(clip, 100, 30.0)[-1] for _ in range(400)]
    assert max(ends) <= 99


def test_training_clips_follow_python_random_seed():
    clip = ClipSpec(8, 4)
    random.seed(3)
    first = [train_clip_indices(clip, 500, 30.0) for _ in range(5)]
    random.seed(3)
    assert [train_clip_indices(clip, 500, 30.0) for _ in range(5)] == first


def test_invalid_requests_raise():
    with pytest.raises(ValueError, match="temporal view"):
        temporal_view_indices(ClipSpec(8, 4), 100, 30.0, 0, True)
    with pytest.raises(ValueError, match="at least one frame"):
        clip_frame_indices(0, 32, 8, 0)
