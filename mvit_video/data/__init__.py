"""Video data: clip sampling, transforms, Kinetics-style datasets, the multi-view test and the synthetic dataset.

``build_dataset(cfg, split)`` and the two ``build_*_transform`` functions are the only code here that reads the
configuration; everything below them takes plain arguments.
"""

import os
from typing import List, Union

from fvcore.common.config import CfgNode

from .clip_sampling import ClipSpec, temporal_view_indices, train_clip_indices
from .datasets import DecodeFailure, FailureLog, TrainClipDataset, collate_clips
from .kinetics import (
    AnnotationError,
    VideoRecord,
    list_class_folders,
    load_classnames,
    read_csv_annotations,
    scan_class_folders,
)
from .multiview import MultiViewTestDataset, collate_views
from .transforms import EvalTransform, TrainTransform, parse_rand_augment

SPLITS = ("train", "val", "test")


def build_train_transform(cfg: CfgNode) -> TrainTransform:
    """The training augmentation described by DATA.* and AUG.* (see TrainTransform for the order of steps)."""
    data, aug = cfg.DATA, cfg.AUG
    use_rand_augment = aug.ENABLE and bool(aug.AA_TYPE)
    # timm's rule, as PySlowFast's ImageNet pipeline: colour jitter only when there is no RandAugment.
    color_jitter = aug.COLOR_JITTER if aug.ENABLE and not aug.AA_TYPE else 0.0
    return TrainTransform(
        crop_size=data.TRAIN_CROP_SIZE,
        mean=data.MEAN,
        std=data.STD,
        jitter_scales=data.TRAIN_JITTER_SCALES,
        relative_scales=data.TRAIN_JITTER_SCALES_RELATIVE or None,
        relative_aspect=data.TRAIN_JITTER_ASPECT_RELATIVE or None,
        random_flip=data.RANDOM_FLIP,
        rand_augment=parse_rand_augment(aug.AA_TYPE) if use_rand_augment else None,
        erase_prob=aug.RE_PROB if aug.ENABLE else 0.0,
        erase_mode=aug.RE_MODE,
        interpolation=aug.INTERPOLATION,
        color_jitter=color_jitter,
    )


def build_eval_transform(cfg: CfgNode, split: str) -> EvalTransform:
    """Test views (TEST.NUM_SPATIAL_CROPS crops) or, for ``split == "val"``, one centre crop."""
    num_crops = cfg.TEST.NUM_SPATIAL_CROPS if split == "test" else 1
    # PySlowFast: 3 crops tile a short side of TEST_CROP_SIZE; 1 crop is the centre of a short side of 256.
    short_side = cfg.DATA.TEST_CROP_SIZE if num_crops > 1 else cfg.DATA.TRAIN_JITTER_SCALES[0]
    return EvalTransform(short_side, cfg.DATA.TEST_CROP_SIZE, num_crops, cfg.DATA.MEAN, cfg.DATA.STD)


def has_split(data_dir: str, split: str) -> bool:
    """Whether ``data_dir`` holds ``split`` in either layout: ``{split}.csv`` or a ``{split}/`` folder."""
    return os.path.isfile(os.path.join(data_dir, f"{split}.csv")) or os.path.isdir(os.path.join(data_dir, split))


def build_records(cfg: CfgNode, split: str) -> List[VideoRecord]:
    """The videos and labels of ``split`` under DATA.PATH_TO_DATA_DIR, in the layout DATA.LAYOUT.

    Raises:
        FileNotFoundError: the split's CSV file or folder does not exist.
        AnnotationError: malformed CSV lines (all named), a label outside MODEL.NUM_CLASSES, or no videos.
    """
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    num_classes = cfg.MODEL.NUM_CLASSES
    if cfg.DATA.LAYOUT == "csv":
        csv_path = os.path.join(data_dir, f"{split}.csv")
        return read_csv_annotations(csv_path, cfg.DATA.PATH_LABEL_SEPARATOR, cfg.DATA.PATH_PREFIX, num_classes)
    train_dir = os.path.join(data_dir, "train")
    classnames = list_class_folders(train_dir) if os.path.isdir(train_dir) else None
    records, classnames = scan_class_folders(os.path.join(data_dir, split), classnames)
    if len(classnames) > num_classes:
        raise AnnotationError(f"{data_dir}: {len(classnames)} class folders but MODEL.NUM_CLASSES = {num_classes}")
    return records


def build_dataset(cfg: CfgNode, split: str) -> Union[TrainClipDataset, MultiViewTestDataset]:
    """The dataset of ``split``: "train" -> TrainClipDataset; "val" (1 view) and "test" -> MultiViewTestDataset.

    Batch it with ``DataLoader(dataset, collate_fn=dataset.collate_fn, ...)``.

    Raises:
        ValueError: unknown split.
        FileNotFoundError, AnnotationError: see :func:`build_records`.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    backend = cfg.DATA.DECODING_BACKEND
    records = build_records(cfg, split)
    clip = ClipSpec(cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TARGET_FPS)
    if split == "train":
        return TrainClipDataset(records, clip, build_train_transform(cfg), cfg.AUG.NUM_SAMPLE, backend)
    num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS if split == "test" else 1
    transform = build_eval_transform(cfg, split)
    return MultiViewTestDataset(records, clip, transform, num_clips, cfg.DATA.USE_OFFSET_SAMPLING, backend)


__all__ = [
    "AnnotationError",
    "ClipSpec",
    "DecodeFailure",
    "EvalTransform",
    "FailureLog",
    "MultiViewTestDataset",
    "SPLITS",
    "TrainClipDataset",
    "TrainTransform",
    "VideoRecord",
    "build_dataset",
    "build_eval_transform",
    "build_records",
    "build_train_transform",
    "has_split",
    "collate_clips",
    "collate_views",
    "load_classnames",
    "read_csv_annotations",
    "scan_class_folders",
    "temporal_view_indices",
    "train_clip_indices",
]
