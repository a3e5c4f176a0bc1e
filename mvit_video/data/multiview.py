"""Multi-view test: every temporal clip x spatial crop of a video, from one decode of the video.

PySlowFast makes each of the ``num_clips x num_crops`` views of a video a separate dataset item, so a 10 x 3 test
opens and decodes every video 30 times. Here an item is a whole video: the frame indices of all its temporal
clips are computed first, their union is decoded once, resized once (resizing is per frame, so this changes
nothing), and every view is cut from those frames. The views are the ones PySlowFast produces: same frame
indices (:mod:`.clip_sampling`), same resize and crop windows (:class:`.transforms.EvalTransform`), same order
(view ``v`` is temporal clip ``v // num_crops``, spatial crop ``v % num_crops``).

A video that cannot be read is not dropped: its item has ``failed`` set to the reason and all-zero views, so that
the evaluator counts it as a miss.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .clip_sampling import ClipSpec, temporal_view_indices
from .datasets import DecodeFailure, FailureRecorder
from .video import VideoDecodeError, VideoReader
from .kinetics import VideoRecord
from .transforms import EvalTransform


def collate_views(batch: List[dict]) -> dict:
    """Batches test items.

    Returns:
        ``views`` float32 ``(B, num_views, 3, T, S, S)``; ``labels``, ``indices`` int64 ``(B,)``; ``paths`` list of
        str; ``failed``: list of str, the reason per video ("" when it was read).
    """
    return {
        "views": torch.stack([item["views"] for item in batch]),
        "labels": torch.tensor([item["label"] for item in batch]),
        "indices": torch.tensor([item["index"] for item in batch]),
        "paths": [item["path"] for item in batch],
        "failed": [item["failed"] for item in batch],
    }


def union_positions(clips: Sequence[Sequence[int]]) -> Tuple[List[int], List[List[int]]]:
    """The sorted union of the clips' frame indices, and each clip's positions within that union."""
    union = sorted(set(index for clip in clips for index in clip))
    position: Dict[int, int] = {frame: i for i, frame in enumerate(union)}
    return union, [[position[index] for index in clip] for clip in clips]


class MultiViewTestDataset(Dataset):
    """One item per video with all its test views.

    Item (a dict):
        ``views``: float32 ``(num_clips * num_crops, 3, T, S, S)``, clip-major; ``label``: int; ``index``: int;
        ``path``: str; ``failed``: "" or the reason the video could not be read (then ``views`` is all zeros).
    Use :func:`collate_views` (also ``dataset.collate_fn``) to batch items. Memory: a 10 x 3 view set of 16 x 224^2
    clips is 289 MB of float32, so test batches hold few videos.
    """

    collate_fn = staticmethod(collate_views)

    def __init__(
        self,
        records: Sequence[VideoRecord],
        clip: ClipSpec,
        transform: EvalTransform,
        num_clips: int,
        use_offset: bool = True,
        backend: Optional[str] = None,
    ):
        self.records = list(records)
        self.clip = clip
        self.transform = transform
        self.num_clips = num_clips
        self.use_offset = use_offset
        self.backend = backend
        self.recorder = FailureRecorder("test video")

    @property
    def num_views(self) -> int:
        """Views per video: temporal clips x spatial crops."""
        return self.num_clips * self.transform.num_crops

    @property
    def failures(self) -> List[DecodeFailure]:
        """Failures seen by this process; every failure is also in its item's ``failed`` field."""
        return self.recorder.failures

    def __len__(self) -> int:
        return len(self.records)

    def view_indices(self, video: VideoReader) -> List[List[int]]:
        """Frame indices of each temporal clip of an open video."""
        info = video.info
        return temporal_view_indices(self.clip, info.num_frames, info.fps, self.num_clips, self.use_offset)

    def decode_union(self, path: str) -> Tuple[torch.Tensor, List[List[int]]]:
        """Decodes the union of all clips' frames in one ``VideoReader.frames`` call on the file opened once.

        Returns:
            uint8 ``(N, H, W, 3)`` frames (N distinct indices, in order) and each clip's positions among them.
        Raises:
            VideoDecodeError: the file cannot be opened or decoded.
        """
        with VideoReader(path, self.backend) as video:
            union, positions = union_positions(self.view_indices(video))
            return video.frames(union), positions

    def cut_views(self, frames: torch.Tensor, positions: List[List[int]]) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` decoded frames -> float32 ``(num_views, 3, T, S, S)``, clip-major."""
        resized = self.transform.resize(frames)  # (N, 3, h, w), once for all clips
        return torch.cat([self.transform.crop_views(resized[clip]) for clip in positions])

    def decode_views(self, path: str) -> torch.Tensor:
        """All views of ``path`` from one decode; raises VideoDecodeError when it cannot be read."""
        return self.cut_views(*self.decode_union(path))

    def empty_views(self) -> torch.Tensor:
        """The all-zero views of a failed video, shaped like real ones so that batches still stack."""
        size = self.transform.crop_size
        return torch.zeros(self.num_views, 3, self.clip.num_frames, size, size)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            frames, positions = self.decode_union(record.path)
        except VideoDecodeError as err:  # report the video as failed, never stop the test
            views, failed = self.empty_views(), self.recorder.record(record.path, err).reason
        else:
            views, failed = self.cut_views(frames, positions), ""
        return {"views": views, "label": record.label, "index": index, "path": record.path, "failed": failed}
