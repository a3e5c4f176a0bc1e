"""Spatial transforms of decoded clips: training augmentation and the test crops, on uint8 video tensors.

Inputs are what the decoder returns, uint8 ``(T, H, W, 3)`` RGB frames; outputs are normalised float32 clips
``(3, T, H, W)`` (training) or ``(num_crops, 3, T, S, S)`` (test). Every random choice (scale, crop window, flip,
RandAugment operations, erased rectangle) is drawn once per clip and applied to all of its frames, so motion is
never broken by the augmentation.

Geometry follows PySlowFast: bilinear resizing without antialiasing, short side first; the test crops of
``uniform_crop`` (centre offset rounded up; three crops at the start, centre and end of the long side).
Resizing runs on uint8 frames, which differs from PySlowFast's float resizing by at most a rounding step.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

BILINEAR = v2.InterpolationMode.BILINEAR
# RandAugment magnitudes use timm's scale of 0..10; with 101 bins a magnitude keeps one decimal.
_MAGNITUDE_MAX = 10.0
_MAGNITUDE_BINS = 101
# timm fills the area uncovered by a geometric operation with grey.
_RAND_AUGMENT_FILL = 128


@dataclass(frozen=True)
class RandAugmentSpec:
    """RandAugment settings parsed from a timm policy string such as ``rand-m7-n4-mstd0.5-inc1``."""

    magnitude: float
    num_ops: int = 2
    magnitude_std: float = 0.0


def parse_rand_augment(policy: str) -> RandAugmentSpec:
    """Parses timm's ``rand-m<magnitude>-n<num_ops>-mstd<std>-inc<0|1>`` (AUG.AA_TYPE).

    Returns:
        The magnitude (0..10), number of operations per clip and magnitude noise.
    Raises:
        ValueError: the string is not a RandAugment policy, has an unknown or malformed field, or asks for
            ``inc0`` (torchvision's operations all grow in strength with the magnitude, as timm's ``inc1``).
    """
    fields = policy.split("-")
    if fields[0] != "rand":
        raise ValueError(f"AUG.AA_TYPE = {policy!r}: only RandAugment policies ('rand-m9-n2-...') are supported")
    values = {"m": None, "n": "2", "mstd": "0", "inc": "0"}
    for field in fields[1:]:
        # Longest names first: "mstd" also starts with "m".
        name = next((key for key in ("mstd", "inc", "m", "n") if field.startswith(key)), None)
        if name is None:
            raise ValueError(f"AUG.AA_TYPE = {policy!r}: unknown field {field!r} (supported: m, n, mstd, inc)")
        values[name] = field[len(name) :]
    try:
        spec = RandAugmentSpec(float(values["m"]), int(values["n"]), float(values["mstd"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"AUG.AA_TYPE = {policy!r}: malformed or missing field ({err})") from err
    if values["inc"] != "1":
        raise ValueError(f"AUG.AA_TYPE = {policy!r}: only increasing-severity operations are implemented; add '-inc1'")
    if not (0 <= spec.magnitude <= _MAGNITUDE_MAX and spec.num_ops >= 0 and math.isfinite(spec.magnitude_std)):
        raise ValueError(f"AUG.AA_TYPE = {policy!r}: need 0 <= m <= 10, n >= 0 and a finite mstd")
    return spec


class VideoRandAugment:
    """RandAugment on a whole clip: one sequence of operations and magnitudes per clip, the same for every frame.

    As in timm, the magnitude is drawn from N(m, mstd) per clip and clipped to [0, 10]. Geometric operations use
    bilinear interpolation: torchvision has no bicubic kernel for tensors.
    """

    def __init__(self, spec: RandAugmentSpec):
        self.spec = spec

    def __call__(self, video: tv_tensors.Video) -> tv_tensors.Video:
        magnitude = self.spec.magnitude
        if self.spec.magnitude_std > 0:
            magnitude = float(torch.normal(magnitude, self.spec.magnitude_std, ()).clamp(0, _MAGNITUDE_MAX))
        augment = v2.RandAugment(
            num_ops=self.spec.num_ops,
            magnitude=round(magnitude / _MAGNITUDE_MAX * (_MAGNITUDE_BINS - 1)),
            num_magnitude_bins=_MAGNITUDE_BINS,
            interpolation=BILINEAR,
            fill=_RAND_AUGMENT_FILL,
        )
        return augment(video)


def to_video(frames: torch.Tensor) -> tv_tensors.Video:
    """uint8 ``(T, H, W, 3)`` frames as a torchvision Video ``(T, 3, H, W)`` (a view: no copy)."""
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


def normalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` -> float32 ``(x / 255 - mean) / std``, same shape."""
    return F.normalize(F.to_dtype(video, torch.float32, scale=True), list(mean), list(std))


def short_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """PySlowFast's resized ``(height, width)``: the short side becomes ``size``, the long side is floored."""
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``(..., 3, H, W)`` frames so that the short side is ``size`` (no antialiasing)."""
    height, width = video.shape[-2:]
    if min(height, width) == size:
        return video
    return F.resize(video, list(short_side_size(height, width, size)), interpolation=BILINEAR, antialias=False)


def uniform_crop_offsets(height: int, width: int, size: int, num_crops: int) -> List[Tuple[int, int]]:
    """Top-left ``(y, x)`` of the test crops of ``size`` x ``size``, as PySlowFast's ``uniform_crop``.

    One crop is the centre crop; three crops are the start, centre and end of the long side (left, centre,
    right for landscape frames; top, centre, bottom for portrait ones). The centre offset is rounded up.

    Raises:
        ValueError: ``num_crops`` is not 1 or 3, or the crop does not fit in the frame.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"TEST.NUM_SPATIAL_CROPS must be 1 or 3, got {num_crops}")
    if size > height or size > width:
        raise ValueError(f"a {size}x{size} crop does not fit in a {height}x{width} frame")
    centre = (int(math.ceil((height - size) / 2)), int(math.ceil((width - size) / 2)))
    if num_crops == 1:
        return [centre]
    if height > width:
        return [(0, centre[1]), centre, (height - size, centre[1])]
    return [(centre[0], 0), centre, (centre[0], width - size)]


class TrainTransform:
    """Training augmentation of one decoded clip: uint8 ``(T, H, W, 3)`` -> float32 ``(3, T, S, S)``.

    In order, as PySlowFast with AUG.ENABLE: optional RandAugment on the decoded frames; then either an
    Inception-style random resized crop (when ``relative_scales`` is given) or a random short side in
    ``jitter_scales`` followed by a random ``crop_size`` crop; a horizontal flip with probability 0.5; normalisation;
    optional random erasing of one rectangle through all frames.
    """

    def __init__(
        self,
        crop_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        jitter_scales: Sequence[int] = (256, 320),
        relative_scales: Optional[Sequence[float]] = None,
        relative_aspect: Optional[Sequence[float]] = None,
        random_flip: bool = True,
        rand_augment: Optional[RandAugmentSpec] = None,
        erase_prob: float = 0.0,
        erase_mode: str = "pixel",
    ):
        """Raises ValueError on a short side smaller than the crop or an unknown erase mode."""
        if relative_scales is None and min(jitter_scales) < crop_size:
            raise ValueError(f"the short side jitter {list(jitter_scales)} must not be below the crop {crop_size}")
        if erase_mode not in ("pixel", "const"):
            raise ValueError(f"random erasing mode must be 'pixel' or 'const', got {erase_mode!r}")
        self.mean, self.std = list(mean), list(std)
        self.rand_augment = VideoRandAugment(rand_augment) if rand_augment is not None else None
        self.geometry = v2.Compose(
            self._crop_steps(crop_size, jitter_scales, relative_scales, relative_aspect)
            + ([v2.RandomHorizontalFlip(0.5)] if random_flip else [])
        )
        # "pixel": per-pixel normal noise in normalised units (timm's mode); "const": zeros, i.e. the mean colour.
        erase_value = "random" if erase_mode == "pixel" else 0.0
        self.erase = v2.RandomErasing(erase_prob, scale=(0.02, 1 / 3), value=erase_value) if erase_prob > 0 else None

    @staticmethod
    def _crop_steps(
        crop_size: int,
        jitter_scales: Sequence[int],
        relative_scales: Optional[Sequence[float]],
        relative_aspect: Optional[Sequence[float]],
    ) -> list:
        """Random resized crop, or random short side then random crop."""
        if relative_scales is not None:
            ratio = tuple(relative_aspect) if relative_aspect is not None else (3 / 4, 4 / 3)
            return [v2.RandomResizedCrop(crop_size, tuple(relative_scales), ratio, BILINEAR, antialias=False)]
        low, high = jitter_scales
        return [v2.RandomResize(low, high + 1, BILINEAR, antialias=False), v2.RandomCrop(crop_size)]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        video = to_video(frames)  # (T, H, W, 3) -> (T, 3, H, W)
        if self.rand_augment is not None:
            video = self.rand_augment(video)
        video = self.geometry(video)
        clip = tv_tensors.Video(normalize(video, self.mean, self.std))
        if self.erase is not None:
            clip = self.erase(clip)
        return clip.as_subclass(torch.Tensor).permute(1, 0, 2, 3)  # (T, 3, S, S) -> (3, T, S, S)


class EvalTransform:
    """Deterministic test views of a clip: short side to ``short_side``, then ``num_crops`` crops of ``crop_size``.

    PySlowFast's recipe is ``short_side = crop_size`` for 3 crops (the crops tile the long side) and
    ``short_side = TRAIN_JITTER_SCALES[0]`` (256) for a single centre crop. Resizing is per frame, so resizing the
    frames of several clips together gives the same views as resizing each clip on its own.
    """

    def __init__(self, short_side: int, crop_size: int, num_crops: int, mean: Sequence[float], std: Sequence[float]):
        """Raises ValueError when ``num_crops`` is not 1 or 3 or the crop is larger than the short side."""
        if num_crops not in (1, 3):
            raise ValueError(f"TEST.NUM_SPATIAL_CROPS must be 1 or 3, got {num_crops}")
        if crop_size > short_side:
            raise ValueError(f"the test crop {crop_size} is larger than the short side {short_side}")
        self.short_side, self.crop_size, self.num_crops = short_side, crop_size, num_crops
        self.mean, self.std = list(mean), list(std)

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` -> uint8 ``(N, 3, h, w)`` with short side ``short_side``."""
        return resize_short_side(frames.permute(0, 3, 1, 2), self.short_side)

    def crop_views(self, video: torch.Tensor) -> torch.Tensor:
        """Resized uint8 ``(T, 3, h, w)`` -> float32 ``(num_crops, 3, T, S, S)``, crops in left/centre/right order."""
        size = self.crop_size
        offsets = uniform_crop_offsets(video.shape[-2], video.shape[-1], size, self.num_crops)
        crops = [video[:, :, y : y + size, x : x + size] for y, x in offsets]
        views = normalize(torch.stack(crops), self.mean, self.std)  # (num_crops, T, 3, S, S)
        return views.transpose(1, 2)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> float32 ``(num_crops, 3, T, S, S)``."""
        return self.crop_views(self.resize(frames))
