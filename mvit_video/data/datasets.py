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
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set

import numpy as np
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
        ``failures``: the list of every item's failures, ``data_cpu_s``: the CPU seconds the items took to make.
    """
    frames = torch.cat([item["frames"] for item in batch])
    repeats = batch[0]["frames"].shape[0]
    labels = torch.tensor([item["label"] for item in batch]).repeat_interleave(repeats)
    indices = torch.tensor([item["index"] for item in batch]).repeat_interleave(repeats)
    failures = [failure for item in batch for failure in item["failures"]]
    cpu_seconds = sum(item["cpu_seconds"] for item in batch)
    return {"frames": frames, "labels": labels, "indices": indices, "failures": failures, "data_cpu_s": cpu_seconds}


@contextmanager
def seeded_draws(seed: int) -> Iterator[None]:
    """Inside the block, Python's, NumPy's and torch's (CPU) global generators start from ``seed``; after it, each is
    back where it was, so the caller's own stream of random numbers is untouched."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class TrainClipDataset(Dataset):
    """One item per video: ``num_samples`` augmented copies of one random T x tau clip.

    Item (a dict):
        ``frames``: float32 ``(num_samples, 3, T, S, S)``; ``label``: int; ``index``: the index of the video actually
        used (another one when the requested video failed); ``failures``: list of :class:`DecodeFailure`;
        ``cpu_seconds``: the CPU time spent making the item (decoding and transforms, failed reads included).
    Use :func:`collate_clips` (also ``dataset.collate_fn``) to batch items.

    After :meth:`set_seed`, an item's random draws (clip start, crop, flip, RandAugment, erasing, the ``num_samples``
    copies, the replacement of a failed video) depend on the seed and the index alone.
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
        self.seed: Optional[int] = None

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

    def set_seed(self, seed: Optional[int]) -> None:
        """Seeds every item from ``(seed, index)``: the same clips with any number of workers or processes, in any
        order, and in a resumed run. The trainer sets one seed per epoch, before it creates the epoch's DataLoader
        iterator (which copies the dataset into its workers). ``None`` draws from the process's generators."""
        self.seed = seed

    def __getitem__(self, index: int) -> dict:
        """Raises RuntimeError when ``max_retries + 1`` videos in a row cannot be read (a broken dataset)."""
        if self.seed is None:
            return self._read_item(index)
        with seeded_draws(int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])):
            return self._read_item(index)

    def _read_item(self, index: int) -> dict:
        failures: List[DecodeFailure] = []
        start = time.process_time()  # this process's CPU time: decoding (with its threads) and transforms
        for _ in range(self.max_retries + 1):
            record = self.records[index]
            try:
                frames = self.decode_clip(record.path)
            except VideoDecodeError as err:  # replace the video, never stop training
                failures.append(self.recorder.record(record.path, err))
                index = random.randrange(len(self.records))
                continue
            clips = torch.stack([self.transform(frames) for _ in range(self.num_samples)])
            return {"frames": clips, "label": record.label, "index": index, "failures": failures,
                    "cpu_seconds": time.process_time() - start}
        listed = "; ".join(f"{f.path} ({f.reason})" for f in failures)
        raise RuntimeError(f"{len(failures)} videos in a row could not be read; check the dataset: {listed}")
