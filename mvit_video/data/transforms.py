"""Spatial transforms of decoded clips: training augmentation and the test crops, on uint8 video tensors.

Inputs are what the decoder returns, uint8 ``(T, H, W, 3)`` RGB frames; outputs are normalised float32 clips
``(3, T, H, W)`` (training) or ``(num_crops, 3, T, S, S)`` (test). Every random choice (scale, crop window, flip,
RandAugment operations, erased rectangle) is drawn once per clip and applied to all of its frames, so motion is
never broken by the augmentation.

Geometry follows PySlowFast: bilinear resizing without antialiasing, short side first; the test crops of
``uniform_crop`` (centre offset rounded up; three crops at the start, centre and end of the long side).
Resizing runs on uint8 frames, which differs from PySlowFast's float resizing by at most a rounding step.
RandAugment's geometric operations resample with AUG.INTERPOLATION (bicubic or bilinear), as in PySlowFast.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.functional import _get_inverse_affine_matrix
from torchvision.transforms.v2 import functional as F

BILINEAR = v2.InterpolationMode.BILINEAR
BICUBIC = v2.InterpolationMode.BICUBIC
INTERPOLATIONS = {"bilinear": BILINEAR, "bicubic": BICUBIC}
# RandAugment's operations that resample the frame: torchvision's tensor kernels do nearest or bilinear only.
_GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
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


def _geometric_op(transform_id: str, magnitude: float) -> Tuple[float, List[float], List[float], Optional[List[int]]]:
    """(angle clockwise, translation, shear, centre or None for the frame's centre) of one of torchvision's
    RandAugment geometric operations, as torchvision's RandAugment passes them to its affine kernels."""
    shear = math.degrees(math.atan(magnitude))
    return {
        "ShearX": (0.0, [0.0, 0.0], [shear, 0.0], [0, 0]),
        "ShearY": (0.0, [0.0, 0.0], [0.0, shear], [0, 0]),
        "TranslateX": (0.0, [float(int(magnitude)), 0.0], [0.0, 0.0], None),
        "TranslateY": (0.0, [0.0, float(int(magnitude))], [0.0, 0.0], None),
        # F.rotate turns counter-clockwise; the affine angle is clockwise
        "Rotate": (-magnitude, [0.0, 0.0], [0.0, 0.0], None),
    }[transform_id]


def affine_resample(video: torch.Tensor, angle: float, translate: Sequence[float], shear: Sequence[float],
                    center: Optional[Sequence[int]], fill: float, mode: str) -> torch.Tensor:
    """An affine warp of uint8 ``(..., 3, H, W)`` frames with ``grid_sample``'s ``mode`` ("bicubic", "bilinear"),
    with torchvision's geometry (``F.affine``'s arguments) and ``fill`` outside the frame. Same shape and dtype.

    Bicubic overshoot is clipped to 0..255.
    """
    height, width = video.shape[-2:]
    center_f = [0.0, 0.0] if center is None else [c - size * 0.5 for c, size in zip(center, (width, height))]
    inverse = torch.tensor(_get_inverse_affine_matrix(center_f, angle, list(translate), 1.0, list(shear))).view(2, 3)
    # output pixel centres, relative to the frame's centre -> input positions, normalised to -1..1
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5 - height / 2, torch.arange(width) + 0.5 - width / 2,
                            indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ inverse.T / torch.tensor([width / 2, height / 2])
    frames = video.reshape(-1, *video.shape[-3:]).float()  # (N, 3, H, W)
    # a fourth channel of ones says how much of each output pixel comes from inside the frame
    frames = torch.cat([frames, torch.ones_like(frames[:, :1])], dim=1)
    warped = torch.nn.functional.grid_sample(frames, grid.expand(frames.shape[0], -1, -1, -1), mode=mode,
                                             padding_mode="zeros", align_corners=False)
    inside = warped[:, 3:]
    out = (warped[:, :3] - fill) * inside + fill
    return out.round_().clamp_(0, 255).to(video.dtype).view(video.shape)


class _RandAugment(v2.RandAugment):
    """torchvision's RandAugment, whose geometric operations also resample bicubically when asked to."""

    def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
        if interpolation == BICUBIC and transform_id in _GEOMETRIC_OPS:
            angle, translate, shear, center = _geometric_op(transform_id, magnitude)
            return affine_resample(image, angle, translate, shear, center, _RAND_AUGMENT_FILL, "bicubic")
        return super()._apply_image_or_video_transform(image, transform_id, magnitude, interpolation, fill)


class VideoRandAugment:
    """RandAugment on a whole clip: one sequence of operations and magnitudes per clip, the same for every frame.

    As in timm, the magnitude is drawn from N(m, mstd) per clip and clipped to [0, 10]. Geometric operations resample
    with ``interpolation`` ("bicubic" or "bilinear", PySlowFast's AUG.INTERPOLATION).
    """

    def __init__(self, spec: RandAugmentSpec, interpolation: str = "bicubic"):
        """Raises ValueError on an unknown interpolation."""
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"AUG.INTERPOLATION = {interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
        self.spec = spec
        self.interpolation = INTERPOLATIONS[interpolation]

    def __call__(self, video: tv_tensors.Video) -> tv_tensors.Video:
        magnitude = self.spec.magnitude
        if self.spec.magnitude_std > 0:
            magnitude = float(torch.normal(magnitude, self.spec.magnitude_std, ()).clamp(0, _MAGNITUDE_MAX))
        augment = _RandAugment(
            num_ops=self.spec.num_ops,
            magnitude=round(magnitude / _MAGNITUDE_MAX * (_MAGNITUDE_BINS - 1)),
            num_magnitude_bins=_MAGNITUDE_BINS,
            interpolation=self.interpolation,
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

    In order, as PySlowFast with AUG.ENABLE: optional RandAugment on the decoded frames (geometric operations
    resampled with ``interpolation``), or else optional colour jitter (timm's rule: jitter only without
    RandAugment; brightness, contrast and saturation factors in [1 - j, 1 + j], drawn once per clip); then either an
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
        interpolation: str = "bicubic",
        color_jitter: float = 0.0,
    ):
        """Raises ValueError on a short side smaller than the crop, an unknown erase mode or interpolation, or colour
        jitter together with RandAugment."""
        if relative_scales is None and min(jitter_scales) < crop_size:
            raise ValueError(f"the short side jitter {list(jitter_scales)} must not be below the crop {crop_size}")
        if erase_mode not in ("pixel", "const"):
            raise ValueError(f"random erasing mode must be 'pixel' or 'const', got {erase_mode!r}")
        self.mean, self.std = list(mean), list(std)
        if rand_augment is not None and color_jitter > 0:
            raise ValueError("colour jitter applies only without RandAugment (timm's rule); give one of them")
        self.rand_augment = VideoRandAugment(rand_augment, interpolation) if rand_augment is not None else None
        self.color_jitter = v2.ColorJitter(color_jitter, color_jitter, color_jitter) if color_jitter > 0 else None
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
        if self.color_jitter is not None:
            video = self.color_jitter(video)
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
