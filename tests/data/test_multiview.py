"""Multi-view test: all views from one decode, identical to decoding and transforming each view on its own."""

import pytest
import torch

from mvit_video.data.clip_sampling import ClipSpec, temporal_view_indices
from mvit_video.data.kinetics import VideoRecord
from mvit_video.data.multiview import MultiViewTestDataset, union_positions
from mvit_video.data.transforms import EvalTransform
from mvit_video.data.video import VideoReader, decode_frames

from .indexed_video import read_index, write_indexed_video
from .video_files import write_clip

MEAN, STD = (0.45,) * 3, (0.225,) * 3


@pytest.fixture(scope="module")
def landscape_clip(tmp_path_factory):
    # 128 x 96 frames, 64 x 48 after resizing: the three 48 x 48 crops are left, centre and right.
    return str(write_indexed_video(tmp_path_factory.mktemp("mv") / "clip.mp4", num_frames=60, fps=30))


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("mv") / "synthetic.mp4", "rotate_clockwise", seed=5, num_frames=60)


def make_dataset(path, num_clips=5, num_crops=3, clip=ClipSpec(8, 2), use_offset=True):
    transform = EvalTransform(48, 48, num_crops, MEAN, STD)
    return MultiViewTestDataset([VideoRecord(str(path), 0)], clip, transform, num_clips, use_offset, backend="pyav")


def views_one_by_one(dataset, path):
    """PySlowFast's way: decode each view's clip separately, then resize and crop it."""
    with VideoReader(path) as video:
        clips = dataset.view_indices(video)
    views = []
    for indices in clips:
        crops = dataset.transform(decode_frames(path, indices, backend="pyav"))  # (num_crops, 3, T, S, S)
        views.extend(crops)
    return torch.stack(views)


@pytest.mark.parametrize("use_offset", [True, False])
@pytest.mark.parametrize("num_crops", [1, 3])
@pytest.mark.parametrize("video", ["landscape_clip", "synthetic_clip"])
def test_one_decode_gives_the_same_views_as_decoding_each_view(request, video, monkeypatch, use_offset, num_crops):
    path = request.getfixturevalue(video)
    dataset = make_dataset(path, num_crops=num_crops, use_offset=use_offset)
    calls = []

    opened = []
    real_frames, real_init = VideoReader.frames, VideoReader.__init__

    def counting_frames(self, indices):
        calls.append(list(indices))
        return real_frames(self, indices)

    monkeypatch.setattr(VideoReader, "frames", counting_frames)
    monkeypatch.setattr(VideoReader, "__init__", lambda self, *a: opened.append(a) or real_init(self, *a))
    item = dataset[0]
    assert len(opened) == 1  # the file is opened once
    assert len(calls) == 1 and calls[0] == sorted(set(calls[0]))  # one call, with the union of the indices
    assert item["views"].shape == (5 * num_crops, 3, 8, 48, 48) and item["failed"] == ""
    monkeypatch.undo()
    assert torch.equal(item["views"], views_one_by_one(dataset, path))


def test_views_are_clip_major_and_the_crops_differ(landscape_clip):
    dataset = make_dataset(landscape_clip, num_clips=2)
    views = dataset[0]["views"]  # view v = clip v // 3, crop v % 3
    reference = views_one_by_one(dataset, landscape_clip)
    assert torch.equal(views[4], reference[4])
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[0], views[3])


def test_decoded_union_holds_exactly_the_requested_frames(tmp_path):
    path = write_indexed_video(tmp_path / "indexed.mp4", num_frames=90, fps=30)
    dataset = make_dataset(path, num_clips=4, clip=ClipSpec(8, 4))
    frames, positions = dataset.decode_union(str(path))
    expected = temporal_view_indices(ClipSpec(8, 4), 90, 30.0, 4, use_offset=True)
    # Offset sampling spreads the clips from the first frame to (within num_clips - 1 frames of) the last one.
    assert expected[0][0] == 0 and expected[-1][-1] >= 89 - 3
    assert frames.shape[0] == len(set(i for clip in expected for i in clip))  # overlapping frames decoded once
    for clip, clip_positions in zip(expected, positions):
        assert [read_index(frames[p].numpy()) for p in clip_positions] == clip


def test_union_positions():
    union, positions = union_positions([[0, 4, 4, 8], [6, 8, 10, 10]])
    assert union == [0, 4, 6, 8, 10]
    assert positions == [[0, 1, 1, 3], [2, 3, 4, 4]]


def test_short_video_views_repeat_the_last_frame(tmp_path):
    path = write_indexed_video(tmp_path / "short.mp4", num_frames=10, fps=30)
    dataset = make_dataset(path, num_clips=3, clip=ClipSpec(8, 4))
    frames, positions = dataset.decode_union(str(path))
    for clip_positions in positions:
        assert [read_index(frames[p].numpy()) for p in clip_positions] == [0, 4, 8, 9, 9, 9, 9, 9]
    assert dataset[0]["views"].shape == (9, 3, 8, 48, 48)


def test_collate_views_stacks_videos(landscape_clip):
    dataset = MultiViewTestDataset(
        [VideoRecord(landscape_clip, 4), VideoRecord(landscape_clip, 7)], ClipSpec(4, 2),
        EvalTransform(48, 48, 1, MEAN, STD), num_clips=2, backend="pyav",
    )
    batch = dataset.collate_fn([dataset[0], dataset[1]])
    assert batch["views"].shape == (2, 2, 3, 4, 48, 48)
    assert batch["labels"].tolist() == [4, 7] and batch["indices"].tolist() == [0, 1]
    assert batch["paths"] == [landscape_clip] * 2 and batch["failed"] == ["", ""]
