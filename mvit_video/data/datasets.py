"""The training dataset: one randomly placed, augmented clip per video, and what happens to videos that fail.

A video that cannot be read (missing, empty, not a video, no video stream, truncated) never stops training and is
never skipped silently. Its item is replaced by another, randomly chosen video (at most ``max_retries`` times in a
row), a warning names the file the first time it fails in a process, and the failure travels with the item:
``item["failures"]`` lists every ``DecodeFailure(path, reason)`` met while producing it. This works unchanged with
DataLoader workers, whose own memory the main process cannot read: the collated batch carries the failures of its
items, and a :class:`FailureLog` in the training loop adds them up for the epoch summary. ``dataset.failures``
also keeps the failures seen in the current process (all of them when ``num_workers == 0``).
"""

import logging
import random
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

import torch
from torch.utils.data import Dataset

from .clip_sampling import ClipSpec, train_clip_indices
from .video import VideoDecodeError, VideoReader
from .kinetics import VideoRecord

logger = logging.getLogger(__name__)


class DecodeFailure(NamedTuple):
    """A video that could not be used, and why (e.g. "file not found", "truncated or corrupt video")."""

    path: str
    reason: str


class FailureRecorder:
    """Keeps the failures of one process and warns once per file."""

    def __init__(self, kind: str):
        self.kind = kind
        self.failures: List[DecodeFailure] = []
        self._warned: Set[str] = set()

    def record(self, path: str, err: VideoDecodeError) -> DecodeFailure:
        """Stores and returns the failure of ``path``; logs a warning the first time ``path`` fails here."""
        failure = DecodeFailure(path, err.reason)
        self.failures.append(failure)
        if path not in self._warned:
            self._warned.add(path)
            logger.warning("%s: cannot read %s (%s)", self.kind, path, failure.reason)
        return failure


class FailureLog:
    """Failures gathered from collated batches over an epoch; the source of the epoch summary with workers."""

    def __init__(self):
        self.failures: List[DecodeFailure] = []

    def update(self, failures: Iterable[DecodeFailure]) -> None:
        """Adds the failures of one batch (``batch["failures"]``)."""
        self.failures.extend(DecodeFailure(*failure) for failure in failures)

    @property
    def count(self) -> int:
        """Number of failed reads (a file that failed twice counts twice)."""
        return len(self.failures)

    def by_file(self) -> Dict[str, str]:
        """Each failed file once, with its last reason."""
        return {failure.path: failure.reason for failure in self.failures}

    def summary(self) -> str:
        """One line for the epoch log, e.g. ``"2 unreadable videos (3 reads replaced): a.mp4 (empty file), ..."``."""
        files = self.by_file()
        if not files:
            return "no unreadable videos"
        listed = ", ".join(f"{path} ({reason})" for path, reason in files.items())
        return f"{len(files)} unreadable videos ({self.count} reads replaced): {listed}"


def collate_clips(batch: List[dict]) -> dict:
    """Batches training items; repeated samples of a video become separate rows (PySlowFast's AUG.NUM_SAMPLE).

    Returns:
        ``frames`` float32 ``(B * num_samples, 3, T, S, S)``, ``labels`` and ``indices`` int64 ``(B * num_samples,)``,
        ``failures``: the list of every item's failures.
    """
    frames = torch.cat([item["frames"] for item in batch])
    repeats = batch[0]["frames"].shape[0]
    labels = torch.tensor([item["label"] for item in batch]).repeat_interleave(repeats)
    indices = torch.tensor([item["index"] for item in batch]).repeat_interleave(repeats)
    failures = [failure for item in batch for failure in item["failures"]]
    return {"frames": frames, "labels": labels, "indices": indices, "failures": failures}


class TrainClipDataset(Dataset):
    """One item per video: ``num_samples`` augmented copies of one random T x tau clip.

    Item (a dict):
        ``frames``: float32 ``(num_samples, 3, T, S, S)``; ``label``: int; ``index``: the index of the video actually
        used (another one when the requested video failed); ``failures``: list of :class:`DecodeFailure`.
    Use :func:`collate_clips` (also ``dataset.collate_fn``) to batch items.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        clip: ClipSpec,
        transform: Callable[[torch.Tensor], torch.Tensor],
        num_samples: int = 1,
        backend: Optional[str] = None,
        max_retries: int = 10,
    ):
        self.records = list(records)
        self.clip = clip
        self.transform = transform
        self.num_samples = num_samples
        self.backend = backend
        self.max_retries = max_retries
        self.recorder = FailureRecorder("training video")

    collate_fn = staticmethod(collate_clips)

    @property
    def failures(self) -> List[DecodeFailure]:
        """Failures seen by this process (in the main process, all of them only when ``num_workers == 0``)."""
        return self.recorder.failures

    def __len__(self) -> int:
        return len(self.records)

    def decode_clip(self, path: str) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` frames of one random clip of ``path``, the file opened once; raises
        VideoDecodeError."""
        with VideoReader(path, self.backend) as video:
            indices = train_clip_indices(self.clip, video.info.num_frames, video.info.fps)
            return video.frames(indices)

    def __getitem__(self, index: int) -> dict:
        """Raises RuntimeError when ``max_retries + 1`` videos in a row cannot be read (a broken dataset)."""
        failures: List[DecodeFailure] = []
        for _ in range(self.max_retries + 1):
            record = self.records[index]
            try:
                frames = self.decode_clip(record.path)
            except VideoDecodeError as err:  # replace the video, never stop training
                failures.append(self.recorder.record(record.path, err))
                index = random.randrange(len(self.records))
                continue
            clips = torch.stack([self.transform(frames) for _ in range(self.num_samples)])
            return {"frames": clips, "label": record.label, "index": index, "failures": failures}
        listed = "; ".join(f"{f.path} ({f.reason})" for f in failures)
        raise RuntimeError(f"{len(failures)} videos in a row could not be read; check the dataset: {listed}")
