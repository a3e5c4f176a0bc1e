"""VideoReader: one video file opened once, its frame index read once, frames returned by index."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from . import pyav
from .decord_backend import DecordFrames
from .index import VideoInfo, read_index
from .sniff import VideoDecodeError, check_file, open_video

_BACKENDS = ("pyav", "decord")
# PySlowFast configs say DECODING_BACKEND: torchvision, whose video reader is PyAV.
_ALIASES = {"decord": "decord", "pyav": "pyav", "av": "pyav", "torchvision": "pyav"}


def available_backends() -> list[str]:
    """Return the usable backends: "pyav" (the default), then "decord" when it can be imported."""
    return ["pyav", "decord"] if importlib.util.find_spec("decord") is not None else ["pyav"]


def default_backend() -> str:
    """Return "pyav": exact everywhere and, in tools/benchmark.py data, at least as fast as decord (DATASET.md)."""
    return "pyav"


def resolve_backend(backend: str | None) -> str:
    """Map a backend name or alias to "pyav"/"decord"; raise ValueError for unknown names.

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


def as_indices(indices: Iterable[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Return ``indices`` as a 1-D int64 array; raise TypeError for non-integers."""
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


class VideoReader:
    """A video file, opened once: ``.info`` and ``.frames(indices)``; use it as a context manager.

    Frame ``i`` is the ``i``-th frame of a sequential PyAV decode of the file, whichever backend is asked
    (see :mod:`.pyav` and :mod:`.decord_backend` for how seeks are checked). Opening demuxes the whole file once
    (packets only, no decoding) to build the frame index.

    Raises (at construction) VideoDecodeError for a missing, empty, non-video or broken file and ValueError for
    an unknown backend.
    """

    def __init__(self, path: str | os.PathLike[str], backend: str | None = None) -> None:
        self.path = os.fspath(path)
        self.backend = resolve_backend(backend)
        check_file(self.path)
        self._threads = _num_threads()
        self._container, self._stream = open_video(self.path, self._threads)
        try:
            self._index = read_index(self.path, self._container, self._stream, self._count_frames)
        except BaseException:
            self._container.close()
            raise
        self._at_start = False  # demuxing consumed the container
        self._seekable = self._index.seekable  # off for this reader after a seek proved wrong
        self._decord = DecordFrames(self.path, self._index, self._threads) if self.backend == "decord" else None
        self._reformatter = VideoReformatter()  # one RGB conversion context for all frames of the file

    @property
    def info(self) -> VideoInfo:
        """Frame count (from the demuxed packets, not the header), fps, duration and size."""
        return self._index.info

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (decord's reader is released with this object)."""
        self._container.close()
        self._decord = None

    def frames(self, indices: Iterable[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Return the frames at 0-based ``indices`` as a uint8 (N, H, W, 3) RGB tensor, in the order asked.

        Repeated and unsorted indices are allowed; each distinct frame is decoded and converted once (again, on a
        pass from the start, where a seek proves wrong).
        Raises VideoDecodeError (reason "frame index out of range" for indices outside [0, num_frames),
        "truncated or corrupt video" when the stream breaks, "frame size changes mid-stream").
        """
        order = as_indices(indices)
        info = self.info
        bad = order[(order < 0) | (order >= info.num_frames)]
        if bad.size:
            detail = f"index {int(bad[0])}, video has {info.num_frames} frames"
            raise VideoDecodeError(self.path, "frame index out of range", detail)
        wanted = np.unique(order)
        # torch's allocation, not numpy's: numpy asks for huge pages (MADV_HUGEPAGE), and where the kernel compacts
        # memory for those on the first touch (THP defrag "madvise", a common default) a 300 MB output of 720p
        # frames stalled for up to half a second, unevenly. Zeroed up front (on torch's threads) rather than faulted
        # in page by page between decoded frames: 10-30 ms less and steadier on a 150-450 MB test read
        # (vtest.avi 350 -> 320 ms, bigbuckbunny.mp4 310 -> 275 ms, 2 cores)
        result = torch.zeros((len(wanted), info.height, info.width, 3), dtype=torch.uint8)
        if not wanted.size:
            return result
        out = result.numpy()
        rgb = self._decord.frames(wanted, self._pyav_rgb) if self._decord is not None else None
        try:
            if rgb is not None:
                for k, position in enumerate(wanted.tolist()):
                    out[k] = rgb[position]
            else:
                slot = {position: k for k, position in enumerate(wanted.tolist())}

                def into_out(position: int, frame: Any) -> None:  # only kept frames, straight into the output
                    out[slot[position]] = pyav.to_rgb(frame, self._reformatter)

                for _ in self._pyav_frames(wanted, into_out):
                    pass
        except ValueError:
            raise VideoDecodeError(self.path, "frame size changes mid-stream") from None
        if not np.array_equal(order, wanted):
            result = result[torch.from_numpy(np.searchsorted(wanted, order))]
        return result

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Yield every frame in order as uint8 (H, W, 3) RGB arrays, decoding the file once from the start.

        Raises (when iterated) VideoDecodeError when the stream breaks, after the frames decoded before the break.
        """
        self._rewind()
        try:
            for frame in pyav.decoded(self._container, self._stream):
                yield pyav.to_rgb(frame, self._reformatter)
        except pyav.DecodeFailed as exc:
            raise VideoDecodeError(self.path, "truncated or corrupt video", str(exc)) from None
        finally:
            self._at_start = False

    def _pyav_rgb(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """{index: rgb} of the sorted unique ``wanted`` frames, decoded by PyAV (decord's reference)."""
        return dict(self._pyav_frames(wanted, lambda _, frame: pyav.to_rgb(frame, self._reformatter)))

    def _pyav_frames(self, wanted: np.ndarray, convert: Callable[[int, Any], Any]) -> Iterator[tuple[int, Any]]:
        """Yield (index, ``convert(index, frame)``) for the sorted unique ``wanted`` indices: verified seeking where
        the file allows, else (or after a seek proved wrong) a sequential pass from the start.

        ``convert`` runs as each frame is decoded, while it is in the cache and before the decoder needs its buffer
        again; after a seek proved wrong it runs again for every index, on the sequential pass's frames.
        """
        if self._seekable:
            frames: list[tuple[int, Any]] = []
            try:
                for position, frame in pyav.seeking_frames(self._container, self._stream, self._index, wanted,
                                                           self._at_start):
                    frames.append((position, convert(position, frame)))  # yielded once the request is verified
            except pyav.SeekMismatch:
                self._seekable = False  # this file's seeks are wrong: later calls go straight to the start
            except (pyav.DecodeFailed, ValueError):
                pass  # maybe an artefact of the seek (a broken or resized frame): the sequential pass decides
            else:
                yield from frames
                return
            finally:
                self._at_start = False
        self._rewind()
        try:
            for position, frame in pyav.sequential_frames(self._container, self._stream, wanted):
                yield position, convert(position, frame)
        except (pyav.DecodeFailed, EOFError) as exc:
            # Only indices inside the demuxed index get here, so a short stream is a broken one.
            raise VideoDecodeError(self.path, "truncated or corrupt video", str(exc)) from None
        finally:
            self._at_start = False

    def _rewind(self) -> None:
        """Reopen the container unless it is at the very start (seeking back is not trusted for this)."""
        if not self._at_start:
            self._container.close()
            self._container, self._stream = open_video(self.path, self._threads)
            self._at_start = True

    def _count_frames(self) -> int:
        """Return how many frames a sequential decode yields (for files whose index is untrusted)."""
        container, stream = open_video(self.path, self._threads)
        with container:
            count = 0
            try:
                for _ in pyav.decoded(container, stream):
                    count += 1
            except pyav.DecodeFailed:
                pass
        return count


def probe_video(path: str | os.PathLike[str], backend: str | None = None) -> VideoInfo:
    """Return the VideoInfo of ``path`` (frame count from demuxed packets, not the header).

    ``backend`` is validated only. Raises VideoDecodeError for unusable files, ValueError for an unknown backend.
    """
    with VideoReader(path, backend) as video:
        return video.info


def decode_frames(
    path: str | os.PathLike[str],
    indices: Iterable[int] | np.ndarray | torch.Tensor,
    backend: str | None = None,
) -> torch.Tensor:
    """Open ``path``, return ``VideoReader.frames(indices)`` and close it (a one-off read)."""
    with VideoReader(path, backend) as video:
        return video.frames(indices)
