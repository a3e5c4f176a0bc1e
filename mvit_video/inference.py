"""Predicting on videos: the top-k classes of a whole video, or a timeline of windows along a long one.

:func:`predict` classifies a video as the multi-view test does (:mod:`.data.multiview`): ``num_clips`` uniformly
spaced T x tau clips (DATA.NUM_FRAMES x DATA.SAMPLING_RATE) times TEST.NUM_SPATIAL_CROPS crops of the test
transform, and the softmax of all these views combined by DATA.ENSEMBLE_METHOD (``sum``: averaged; ``max``:
element-wise maximum). Only the frames of those clips are decoded.

:func:`predict_timeline` lays windows of ``window`` seconds every ``stride`` seconds over the whole video, the last
one ending at the video's end (:func:`.data.clip_sampling.sliding_windows`), and classifies each window by one T x
tau clip centred in it (:func:`.data.clip_sampling.window_clip_indices`: the clip spans what the model was trained
on, T x tau frames at DATA.TARGET_FPS, whatever the window's length) with the same crops, combined the same way.
The video is decoded once, front to back (:mod:`.data.streaming`); frames are resized as they arrive and only those
an open window still needs are kept, so memory does not grow with the video's length. Times are frame index / fps.

Both take a video file or its decoded frames: a uint8 (0..255) or float (0..1) tensor or array of shape
``(T, H, W, 3)``, RGB, the layout the decoder returns. A ready, normalised ``(C, T, H, W)`` clip needs none of
this: ``model(clip[None]).softmax(-1)``.
"""

import contextlib
import os
from bisect import bisect_left
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from fvcore.common.config import CfgNode
from torch import nn
from tqdm import tqdm

from .data import build_eval_transform, load_classnames
from .data.clip_sampling import ClipSpec, sliding_windows, temporal_view_indices, window_clip_indices
from .data.multiview import MultiViewTestDataset, union_positions
from .data.streaming import ClipStream
from .data.transforms import EvalTransform
from .data.video import VideoDecodeError, VideoReader
from .engine.meters import check_ensemble_method
from .pretrained import LoadedModel

Video = Union[str, os.PathLike, torch.Tensor, np.ndarray]
ClassNames = Union[str, os.PathLike, Sequence[str], None]

__all__ = ["Prediction", "Timeline", "TimelineWindow", "ViewSettings", "predict", "predict_timeline",
           "resolve_classnames", "view_settings"]


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of a video, or of one window of it, best first.

    ``labels``, ``scores``, ``indices``: the k class names, their probabilities and their class indices.
    ``probabilities``: float32 ``(num_classes,)``, the ``num_views`` views' softmax combined by DATA.ENSEMBLE_METHOD:
    averaged for ``sum`` (the multi-view test's sum divided by the number of views, so it still sums to 1), their
    element-wise maximum for ``max``.
    """

    labels: List[str]
    scores: List[float]
    indices: List[int]
    probabilities: torch.Tensor
    num_views: int

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def score(self) -> float:
        return self.scores[0]

    def to_dict(self) -> dict:
        """The top-k as plain values, for JSON."""
        top = [{"label": n, "index": i, "score": s} for n, i, s in zip(self.labels, self.indices, self.scores)]
        return {"top": top, "num_views": self.num_views}


@dataclass(frozen=True)
class TimelineWindow:
    """One window of a timeline: ``[start, end)`` seconds and its prediction."""

    start: float
    end: float
    prediction: Prediction

    @property
    def label(self) -> str:
        return self.prediction.label

    @property
    def score(self) -> float:
        return self.prediction.score

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, **self.prediction.to_dict()}


@dataclass(frozen=True)
class Timeline:
    """The windows of :func:`predict_timeline`, in time order, covering ``[0, duration]``.

    ``peak_buffered_frames``: the most decoded frames held at once while streaming (independent of the length).
    """

    windows: List[TimelineWindow]
    fps: float
    num_frames: int
    peak_buffered_frames: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @cached_property
    def _centres(self) -> List[float]:
        return [(w.start + w.end) / 2 for w in self.windows]

    def window_at(self, time: float) -> TimelineWindow:
        """The window whose centre is nearest to ``time`` (seconds); it always contains ``time``."""
        i = bisect_left(self._centres, time)
        if i == len(self.windows) or (i > 0 and time - self._centres[i - 1] <= self._centres[i] - time):
            i -= 1
        return self.windows[i]

    def to_dict(self) -> dict:
        return {"fps": self.fps, "num_frames": self.num_frames, "duration": self.duration,
                "windows": [w.to_dict() for w in self.windows]}


@dataclass(frozen=True)
class ViewSettings:
    """What the configuration says about test views, as plain values; ``batch_size`` counts clips per forward,
    ``ensemble`` is DATA.ENSEMBLE_METHOD."""

    clip: ClipSpec
    transform: EvalTransform
    num_clips: int
    use_offset: bool
    backend: str
    batch_size: int
    ensemble: str


def view_settings(cfg: CfgNode, num_clips: Optional[int] = None, batch_size: Optional[int] = None) -> ViewSettings:
    """The test views of ``cfg`` (DATA.*, TEST.NUM_ENSEMBLE_VIEWS unless ``num_clips``, TEST.BATCH_SIZE unless
    ``batch_size``). Raises ValueError for ``num_clips`` or ``batch_size`` below 1, or an unknown
    DATA.ENSEMBLE_METHOD."""
    num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS if num_clips is None else num_clips
    batch_size = cfg.TEST.BATCH_SIZE if batch_size is None else batch_size
    if num_clips < 1 or batch_size < 1:
        raise ValueError(f"need at least one clip per video and per batch, got {num_clips} and {batch_size}")
    check_ensemble_method(cfg.DATA.ENSEMBLE_METHOD)
    return ViewSettings(
        clip=ClipSpec(cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TARGET_FPS),
        transform=build_eval_transform(cfg, "test"),
        num_clips=num_clips,
        use_offset=cfg.DATA.USE_OFFSET_SAMPLING,
        backend=cfg.DATA.DECODING_BACKEND,
        batch_size=batch_size,
        ensemble=cfg.DATA.ENSEMBLE_METHOD,
    )


def resolve_classnames(classnames: ClassNames, default: str, num_classes: int) -> List[str]:
    """Names of the ``num_classes`` outputs: ``classnames`` (a list, or what ``load_classnames`` takes: a shipped
    list such as "kinetics400" or a file), else ``default`` (DATA.CLASSNAMES), else "class_<i>".

    Raises:
        FileNotFoundError: neither a shipped list nor a file.
        ValueError: the number of names differs from ``num_classes`` (the source is named).
    """
    source = classnames if classnames is not None else (default or None)
    if source is None:
        return [f"class_{i}" for i in range(num_classes)]
    named = isinstance(source, (str, os.PathLike))
    names = load_classnames(os.fspath(source)) if named else [str(name) for name in source]
    if len(names) != num_classes:
        origin = f"class names {os.fspath(source)!r}" if named else "the class-name list"
        raise ValueError(f"{origin}: {len(names)} names, but the model predicts {num_classes} classes")
    return names


def _unpack(model, cfg: Optional[CfgNode], classnames: ClassNames) -> Tuple[nn.Module, CfgNode, ClassNames]:
    """A :class:`LoadedModel` brings its own config and class names; the arguments, when given, still win."""
    if isinstance(model, LoadedModel):
        return model.model, cfg or model.cfg, model.classnames if classnames is None else classnames
    if cfg is None:
        raise TypeError("cfg is required unless model is a LoadedModel (mvit_video.load_model)")
    return model, cfg, classnames


def predict(
    video: Video,
    model: Union[nn.Module, LoadedModel],
    cfg: Optional[CfgNode] = None,
    topk: int = 5,
    classnames: ClassNames = None,
    num_clips: Optional[int] = None,
    fps: Optional[float] = None,
    batch_size: Optional[int] = None,
) -> Prediction:
    """Classifies a whole video from its multi-view test views (see the module docstring).

    Args:
        video: a file, or frames ``(T, H, W, 3)`` (uint8 0..255 or float 0..1), RGB.
        model: returns logits ``(B, num_classes)``; run on its own device, in eval mode (restored afterwards). Or
            what :func:`mvit_video.load_model` returns, which brings ``cfg`` and the class names.
        cfg: the configuration the model was trained with (clip size, crops, DATA.CLASSNAMES).
        topk: how many classes to return.
        classnames: overrides DATA.CLASSNAMES (see :func:`resolve_classnames`).
        num_clips: temporal clips, TEST.NUM_ENSEMBLE_VIEWS by default.
        fps: frame rate of tensor frames (DATA.TARGET_FPS by default); a file's own rate is used for files.
        batch_size: views per forward pass, TEST.BATCH_SIZE by default.
    Returns:
        A :class:`Prediction`.
    Raises:
        VideoDecodeError: the file cannot be read. ValueError/TypeError: frames of the wrong shape or type, a bad
        ``topk``, or class names that do not match the model. FileNotFoundError: unknown class-name file.
    """
    model, cfg, classnames = _unpack(model, cfg, classnames)
    _check_topk(topk)
    settings = view_settings(cfg, num_clips, batch_size)
    views = _multiview(video, settings, _tensor_fps(fps, cfg))  # (V, 3, T, S, S)
    probabilities = _combine_views(_view_probabilities(model, views, settings.batch_size), settings.ensemble)
    names = resolve_classnames(classnames, cfg.DATA.CLASSNAMES, len(probabilities))
    return _top(probabilities, topk, names, len(views))


def predict_timeline(
    video: Video,
    model: Union[nn.Module, LoadedModel],
    cfg: Optional[CfgNode],
    window: float,
    stride: Optional[float] = None,
    topk: int = 5,
    classnames: ClassNames = None,
    fps: Optional[float] = None,
    batch_size: Optional[int] = None,
    progress: bool = False,
) -> Timeline:
    """Classifies windows of ``window`` seconds every ``stride`` (default ``window``) seconds over a whole video.

    Decodes the video once, streaming (see the module docstring); ``progress`` shows a tqdm bar over its frames.
    Other arguments as :func:`predict`; ``batch_size`` counts clips, so a forward pass holds
    ``batch_size // TEST.NUM_SPATIAL_CROPS`` windows.

    Returns:
        A :class:`Timeline`.
    Raises:
        ValueError: a non-positive window or stride, or a stride longer than the window; and as :func:`predict`.
        VideoDecodeError: the file cannot be read, or it breaks before its last window.
    """
    model, cfg, classnames = _unpack(model, cfg, classnames)
    _check_topk(topk)
    settings = view_settings(cfg, 1, batch_size)
    frames, num_frames, fps, name = _frame_source(video, _tensor_fps(fps, cfg), settings.backend)
    windows = _window_clips(settings.clip, window, window if stride is None else stride, fps, num_frames)
    transform = settings.transform
    bar = tqdm(frames, total=num_frames, desc=os.path.basename(name), unit="frame", disable=not progress)
    # (H, W, 3) -> (3, h, w): frames are buffered resized, resizing being per frame
    stream = ClipStream(bar, windows, prepare=lambda frame: transform.resize(frame[None])[0])
    per_batch = max(1, settings.batch_size // transform.num_crops)
    try:
        times, scores = _classify_windows(model, stream, transform, per_batch, settings.ensemble)
    except EOFError as err:
        raise VideoDecodeError(name, "truncated or corrupt video", str(err)) from None
    finally:
        bar.close()
    names = resolve_classnames(classnames, cfg.DATA.CLASSNAMES, scores.shape[-1])
    entries = [
        TimelineWindow(start, end, _top(row, topk, names, transform.num_crops))
        for (start, end), row in zip(times, scores)
    ]
    return Timeline(entries, fps, num_frames, stream.peak_buffered)


def _check_topk(topk: int) -> None:
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")


def _tensor_fps(fps: Optional[float], cfg: CfgNode) -> float:
    fps = cfg.DATA.TARGET_FPS if fps is None else fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return float(fps)


def _is_path(video: Video) -> bool:
    return isinstance(video, (str, os.PathLike))


def _as_frames(video: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
    """Checks decoded frames and returns them as uint8 ``(T, H, W, 3)`` on the CPU.

    Raises:
        ValueError: not ``(T, H, W, 3)`` with T >= 1, or float values outside [0, 1].
        TypeError: neither a tensor nor an array, or neither uint8 nor floating point.
    """
    if not isinstance(video, (torch.Tensor, np.ndarray)):
        raise TypeError(f"expected a video file path or a (T, H, W, 3) tensor or array, got {type(video).__name__}")
    frames = torch.as_tensor(video).cpu()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        hint = ""
        if frames.ndim == 4 and frames.shape[0] == 3:
            hint = " (this looks like a (C, T, H, W) clip: pass frames, e.g. clip.permute(1, 2, 3, 0))"
        raise ValueError(f"video frames must be RGB of shape (T, H, W, 3), got {tuple(frames.shape)}{hint}")
    if frames.dtype == torch.uint8:
        return frames
    if not frames.is_floating_point():
        raise TypeError(f"video frames must be uint8 (0..255) or float (0..1), got {frames.dtype}")
    low, high = frames.min().item(), frames.max().item()
    if low < 0 or high > 1:
        raise ValueError(
            f"float video frames must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]: pass uint8 frames or "
            f"divide by 255 (a normalised clip goes to the model directly)"
        )
    return (frames * 255).round().to(torch.uint8)


def _multiview(video: Video, settings: ViewSettings, fps: float) -> torch.Tensor:
    """The test views of a file or of frames: float32 ``(num_clips * num_crops, 3, T, S, S)``, clip-major."""
    dataset = MultiViewTestDataset(
        [], settings.clip, settings.transform, settings.num_clips, settings.use_offset, settings.backend
    )
    if _is_path(video):
        return dataset.decode_views(os.fspath(video))
    frames = _as_frames(video)
    clips = temporal_view_indices(settings.clip, len(frames), fps, settings.num_clips, settings.use_offset)
    union, positions = union_positions(clips)
    return dataset.cut_views(frames[union], positions)


def _frame_source(video: Video, fps: float, backend: str) -> Tuple[Iterator[torch.Tensor], int, float, str]:
    """(uint8 (H, W, 3) frames one by one, number of frames, fps, a name for messages); a file is opened once, here,
    and closed when its frames have been read. Raises VideoDecodeError for a file that cannot be opened."""
    if _is_path(video):
        reader = VideoReader(video, backend)
        info = reader.info
        return _streamed(reader), info.num_frames, info.fps, reader.path
    frames = _as_frames(video)
    return iter(frames), len(frames), fps, "frames"


def _streamed(reader: VideoReader) -> Iterator[torch.Tensor]:
    """Every frame of ``reader`` in one pass from the start; closes it at the end."""
    with reader:
        for frame in reader.iter_frames():
            yield torch.from_numpy(frame)


def _window_clips(
    clip: ClipSpec, window: float, stride: float, fps: float, num_frames: int
) -> Iterator[Tuple[Tuple[float, float], List[int]]]:
    """((start, end), frame indices of the window's clip), lazily, for every window over the video.

    Raises ValueError at once for a bad window or stride (see :func:`sliding_windows`).
    """
    windows = sliding_windows(num_frames / fps, window, stride)
    return (((start, end), window_clip_indices(clip, start, end, fps, num_frames)) for start, end in windows)


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _view_probabilities(model: nn.Module, views: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, 3, T, S, S) views -> (N, K) float32 softmax on the CPU, ``batch_size`` views per forward pass."""
    device = _device(model)
    with torch.inference_mode(), _evaluating(model):
        return torch.cat([model(chunk.to(device)).float().softmax(dim=-1).cpu() for chunk in views.split(batch_size)])


def _combine_views(probabilities: torch.Tensor, ensemble: str, dim: int = 0) -> torch.Tensor:
    """Views' softmax along ``dim`` -> one score per class: their mean ("sum") or element-wise maximum ("max")."""
    return probabilities.mean(dim=dim) if ensemble == "sum" else probabilities.amax(dim=dim)


def _window_probabilities(model: nn.Module, batch: List[torch.Tensor], ensemble: str) -> torch.Tensor:
    """B windows of (num_crops, 3, T, S, S) -> (B, K): each window's crops combined by ``ensemble``."""
    views = torch.cat(batch)
    return _combine_views(_view_probabilities(model, views, len(views)).unflatten(0, (len(batch), -1)), ensemble, 1)


def _classify_windows(
    model: nn.Module, stream: ClipStream, transform: EvalTransform, per_batch: int, ensemble: str
) -> Tuple[List[Tuple[float, float]], torch.Tensor]:
    """((start, end) of each window, (num_windows, K) probabilities), ``per_batch`` windows per forward pass."""
    times, batch, probabilities = [], [], []
    for key, frames in stream:
        times.append(key)
        batch.append(transform.crop_views(torch.stack(frames)))  # (num_crops, 3, T, S, S)
        if len(batch) == per_batch:
            probabilities.append(_window_probabilities(model, batch, ensemble))
            batch = []
    if batch:
        probabilities.append(_window_probabilities(model, batch, ensemble))
    return times, torch.cat(probabilities)


def _top(probabilities: torch.Tensor, k: int, names: Sequence[str], num_views: int) -> Prediction:
    scores, indices = probabilities.topk(min(k, len(probabilities)))
    order = indices.tolist()
    return Prediction([names[i] for i in order], scores.tolist(), order, probabilities, num_views)
