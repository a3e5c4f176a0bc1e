"""Transforms: shapes, normalisation, one random draw per clip, PySlowFast's test crops, AUG.INTERPOLATION and
AUG.COLOR_JITTER."""

import math

import pytest
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2

from mvit_video.config import load_config
from mvit_video.data import build_train_transform
from mvit_video.data.transforms import (
    BICUBIC,
    BILINEAR,
    INTERPOLATIONS,
    EvalTransform,
    RandAugmentSpec,
    TrainTransform,
    _geometric_op,
    _RandAugment,
    affine_resample,
    parse_rand_augment,
    uniform_crop_offsets,
)

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def ramp_clip(num_frames=4, height=120, width=160):
    """uint8 (T, H, W, 3): identical frames whose red channel grows left to right, green top to bottom."""
    red = torch.linspace(0, 255, width).round().to(torch.uint8).expand(height, width)
    green = torch.linspace(0, 255, height).round().to(torch.uint8)[:, None].expand(height, width)
    frame = torch.stack([red, green, torch.full_like(red, 77)], dim=-1)
    return frame.expand(num_frames, height, width, 3).contiguous()


def full_augmentation(crop=64):
    return TrainTransform(
        crop, MEAN, STD, jitter_scales=(64, 96), rand_augment=RandAugmentSpec(9.0, 4, 0.5), erase_prob=1.0
    )


def test_train_output_is_normalised_float_c_t_h_w():
    frames = torch.full((8, 90, 120, 3), 200, dtype=torch.uint8)
    out = TrainTransform(64, MEAN, STD, jitter_scales=(72, 80))(frames)
    assert out.shape == (3, 8, 64, 64) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, (200 / 255 - 0.45) / 0.225), atol=1e-5)


def test_relative_scale_uses_a_random_resized_crop():
    transform = TrainTransform(48, MEAN, STD, relative_scales=(0.08, 1.0), relative_aspect=(0.75, 1.3333))
    assert transform(ramp_clip(height=60, width=200)).shape == (3, 4, 48, 48)


def test_every_random_step_is_the_same_for_all_frames_of_a_clip():
    torch.manual_seed(0)
    transform = full_augmentation()
    for _ in range(10):
        out = transform(ramp_clip())  # (3, T, S, S) from identical frames
        assert all(torch.equal(out[:, 0], out[:, t]) for t in range(1, out.shape[1]))


def test_flip_is_applied_to_the_whole_clip_about_half_the_time():
    torch.manual_seed(0)
    transform = TrainTransform(64, MEAN, STD, jitter_scales=(80, 80))
    flipped = 0
    for _ in range(40):
        out = transform(ramp_clip())
        red = out[0]  # (T, S, S)
        slopes = red[:, :, -1].mean(-1) - red[:, :, 0].mean(-1)  # per frame: right edge minus left edge
        assert (slopes > 0).all() or (slopes < 0).all()
        flipped += int((slopes < 0).all())
    assert 10 <= flipped <= 30


def test_rand_augment_changes_pixels_but_not_the_shape():
    torch.manual_seed(1)
    plain = TrainTransform(64, MEAN, STD, jitter_scales=(64, 64), random_flip=False)
    augmented = TrainTransform(64, MEAN, STD, jitter_scales=(64, 64), random_flip=False,
                               rand_augment=RandAugmentSpec(10.0, 3))
    clip = ramp_clip(height=64, width=64)
    outs = [augmented(clip) for _ in range(5)]
    assert all(o.shape == (3, 4, 64, 64) for o in outs)
    assert any(not torch.allclose(o, plain(clip)) for o in outs)


def test_parse_rand_augment():
    assert parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == RandAugmentSpec(7.0, 4, 0.5)
    assert parse_rand_augment("rand-m9-mstd0.5-inc1") == RandAugmentSpec(9.0, 2, 0.5)
    for bad in ("autoaug-v0", "rand-m9", "rand-m9-inc0", "rand-x3-inc1", "rand-mabc-inc1", "rand-m12-inc1"):
        with pytest.raises(ValueError, match="AUG.AA_TYPE"):
            parse_rand_augment(bad)


def test_crop_offsets_follow_pyslowfast_uniform_crop():
    assert uniform_crop_offsets(224, 398, 224, 3) == [(0, 0), (0, 87), (0, 174)]
    assert uniform_crop_offsets(397, 224, 224, 3) == [(0, 0), (87, 0), (173, 0)]  # centre rounded up
    assert uniform_crop_offsets(256, 341, 224, 1) == [(16, 59)]
    with pytest.raises(ValueError):
        uniform_crop_offsets(200, 300, 224, 3)
    with pytest.raises(ValueError):
        uniform_crop_offsets(224, 300, 224, 2)


def test_three_test_crops_cover_left_centre_and_right():
    frames = ramp_clip(num_frames=2, height=112, width=200)  # red = x * 255 / 199
    views = EvalTransform(112, 112, 3, MEAN, STD)(frames)
    assert views.shape == (3, 3, 2, 112, 112)
    red = views[:, 0, 0] * 0.225 + 0.45  # back to [0, 1]: (crop, H, W)
    assert red[0, :, 0].max() < 0.01 and red[2, :, -1].min() > 0.99  # first and last columns
    centre = red[1].mean().item()
    assert abs(centre - 0.5) < 0.01


def test_one_test_crop_is_the_centre_of_the_short_side_scale():
    frames = ramp_clip(num_frames=2, height=100, width=200)
    views = EvalTransform(64, 48, 1, MEAN, STD)(frames)  # resized to 64 x 128, crop at x = 40
    assert views.shape == (1, 3, 2, 48, 48)
    red = views[0, 0, 0] * 0.225 + 0.45
    assert abs(red.mean().item() - 0.5) < 0.01


def pyslowfast_views(frames, short_side, crop, num_crops):
    """PySlowFast's test path in float: normalise, bilinear short-side resize, uniform_crop."""
    video = ((frames.float() / 255 - 0.45) / 0.225).permute(3, 0, 1, 2)  # (C, T, H, W)
    height, width = video.shape[-2:]
    if width < height:
        size = (int(math.floor(height / width * short_side)), short_side)
    else:
        size = (short_side, int(math.floor(width / height * short_side)))
    video = nnf.interpolate(video, size=size, mode="bilinear", align_corners=False)
    height, width = size
    views = []
    for index in range(num_crops) if num_crops == 3 else [1]:
        y, x = int(math.ceil((height - crop) / 2)), int(math.ceil((width - crop) / 2))
        if height > width:
            y = {0: 0, 1: y, 2: height - crop}[index]
        else:
            x = {0: 0, 1: x, 2: width - crop}[index]
        views.append(video[:, :, y : y + crop, x : x + crop])
    return torch.stack(views)


@pytest.mark.parametrize("height, width, short_side, crop, num_crops", [
    (90, 160, 64, 64, 3), (160, 90, 64, 64, 3), (90, 161, 72, 64, 1), (64, 64, 64, 64, 3),
])
def test_test_views_match_pyslowfast_up_to_uint8_rounding(height, width, short_side, crop, num_crops):
    torch.manual_seed(0)
    smooth = nnf.interpolate(torch.rand(3, 3, height // 8, width // 8) * 255, size=(height, width), mode="bilinear")
    frames = smooth.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # (T, H, W, 3)
    ours = EvalTransform(short_side, crop, num_crops, MEAN, STD)(frames)
    reference = pyslowfast_views(frames, short_side, crop, num_crops)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 2 / 255 / 0.225  # one uint8 step after resizing, plus rounding


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        EvalTransform(224, 256, 3, MEAN, STD)
    with pytest.raises(ValueError):
        EvalTransform(256, 224, 2, MEAN, STD)
    with pytest.raises(ValueError):
        TrainTransform(224, MEAN, STD, jitter_scales=(200, 320))
    with pytest.raises(ValueError):
        TrainTransform(224, MEAN, STD, erase_mode="rand")


def textured_video(num_frames=2, size=48, seed=0):
    """uint8 (T, 3, H, W) noise: interpolation kernels give visibly different results on it."""
    generator = torch.Generator().manual_seed(seed)
    return tv_tensors.Video(torch.randint(0, 256, (num_frames, 3, size, size), dtype=torch.uint8, generator=generator))


@pytest.mark.parametrize("op, magnitude", [("ShearX", 0.3), ("ShearY", -0.2), ("TranslateX", 7.0),
                                           ("TranslateY", -5.0), ("Rotate", 25.0)])
def test_bicubic_warp_has_torchvisions_geometry(op, magnitude):
    video = textured_video()
    # torchvision's own RandAugment operation, bilinear
    reference = v2.RandAugment(fill=128)._apply_image_or_video_transform(video, op, magnitude, BILINEAR, {
        tv_tensors.Video: 128})
    angle, translate, shear, center = _geometric_op(op, magnitude)
    ours = affine_resample(video.as_subclass(torch.Tensor), angle, translate, shear, center, 128, "bilinear")
    assert (ours.int() - reference.as_subclass(torch.Tensor).int()).abs().max() <= 1
    bicubic = affine_resample(video.as_subclass(torch.Tensor), angle, translate, shear, center, 128, "bicubic")
    assert bicubic.dtype == torch.uint8 and bicubic.shape == video.shape
    if op.startswith("Translate"):
        assert torch.equal(bicubic, ours)  # a whole-pixel shift: every kernel gives the same pixels
    else:
        assert (bicubic.int() - ours.int()).abs().float().mean() > 1.0


def test_rand_augment_resamples_bicubically_when_asked():
    video = textured_video()
    augment = _RandAugment(interpolation=BICUBIC, fill=128)
    bicubic = augment._apply_image_or_video_transform(video, "Rotate", 20.0, BICUBIC, augment._fill)
    expected = affine_resample(video.as_subclass(torch.Tensor), *_geometric_op("Rotate", 20.0), 128, "bicubic")
    assert torch.equal(bicubic, expected)
    bilinear = augment._apply_image_or_video_transform(video, "Rotate", 20.0, BILINEAR, augment._fill)
    assert not torch.equal(bicubic, bilinear)


def _aug_cfg(*opts):
    return load_config(None, ["AUG.ENABLE", "True", "DATA.TRAIN_CROP_SIZE", "48", "DATA.TRAIN_JITTER_SCALES",
                              "[48, 48]", "AUG.RE_PROB", "0.0", "DATA.RANDOM_FLIP", "False", *opts])


def test_aug_interpolation_reaches_rand_augment():
    clip = textured_video(size=48).permute(0, 2, 3, 1).contiguous()  # (T, H, W, 3)
    outputs = {}
    for name in ("bicubic", "bilinear"):
        transform = build_train_transform(_aug_cfg("AUG.INTERPOLATION", name, "AUG.AA_TYPE", "rand-m9-n1-inc1"))
        assert transform.rand_augment.interpolation == INTERPOLATIONS[name]
        outputs[name] = []
        for seed in range(12):
            torch.manual_seed(seed)
            outputs[name].append(transform(clip))
    differ = [not torch.equal(a, b) for a, b in zip(outputs["bicubic"], outputs["bilinear"])]
    # the same seeds draw the same operations: only the geometric ones differ
    assert 0 < sum(differ) < len(differ)


def test_colour_jitter_only_without_rand_augment_and_once_per_clip():
    clip = ramp_clip(num_frames=3, height=48, width=48)
    assert build_train_transform(_aug_cfg()).color_jitter is None  # AA_TYPE set: RandAugment, as timm
    jitter = build_train_transform(_aug_cfg("AUG.AA_TYPE", "", "AUG.COLOR_JITTER", "0.4"))
    plain = build_train_transform(_aug_cfg("AUG.AA_TYPE", "", "AUG.COLOR_JITTER", "0.0"))
    assert jitter.color_jitter is not None and plain.color_jitter is None and jitter.rand_augment is None
    torch.manual_seed(0)
    jittered = jitter(clip)
    assert not torch.allclose(jittered, plain(clip))
    assert torch.equal(jittered[:, 0], jittered[:, 1]) and torch.equal(jittered[:, 0], jittered[:, 2])
    with pytest.raises(ValueError, match="colour jitter applies only without RandAugment"):
        TrainTransform(48, MEAN, STD, jitter_scales=(48, 48), rand_augment=RandAugmentSpec(9.0), color_jitter=0.4)
