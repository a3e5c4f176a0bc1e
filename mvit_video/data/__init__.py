"""Video data: clip sampling, transforms, Kinetics-style datasets, the multi-view test and the synthetic dataset.

``build_dataset(cfg, split)`` and the two ``build_*_transform`` functions are the only code here that reads the
configuration; everything below them takes plain arguments.
"""

import os
from typing import List, Optional, Tuple, Union

from fvcore.common.config import CfgNode

from .clip_sampling import ClipSpec, temporal_view_indices, train_clip_indices
from .datasets import DecodeFailure, FailureLog, TrainClipDataset, collate_clips
from .kinetics import (
    AnnotationError,
    VideoRecord,
    find_classnames,
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


def build_classnames(cfg: CfgNode) -> Tuple[Optional[List[str]], str]:
    """The dataset's class names (label id = index) and their source; see :func:`find_classnames`."""
    return find_classnames(cfg.DATA.PATH_TO_DATA_DIR, cfg.DATA.LAYOUT, cfg.DATA.CLASSNAMES)


def check_num_classes(cfg: CfgNode) -> Optional[List[str]]:
    """Refuses a MODEL.NUM_CLASSES that differs from the number of class names the data has; returns the names.

    Raises:
        AnnotationError: one line naming the key, the classes found and where they were found.
        FileNotFoundError: DATA.CLASSNAMES names no file.
    """
    names, source = build_classnames(cfg)
    num_classes = cfg.MODEL.NUM_CLASSES
    if names is not None and len(names) != num_classes:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise AnnotationError(
            f"MODEL.NUM_CLASSES = {num_classes}, but the data has {len(names)} classes ({shown}) from {source}; "
            f"set MODEL.NUM_CLASSES {len(names)}"
        )
    return names


def build_records(cfg: CfgNode, split: str) -> List[VideoRecord]:
    """The videos and labels of ``split`` under DATA.PATH_TO_DATA_DIR, in the layout DATA.LAYOUT.

    In the folder layout, label ids follow the class names of :func:`build_classnames` (by default the sorted class
    folders of the train split).

    Raises:
        FileNotFoundError: the split's CSV file or folder does not exist.
        AnnotationError: malformed CSV lines (all named), a label outside MODEL.NUM_CLASSES, a class folder that is
            not a class name, or no videos.
    """
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    num_classes = cfg.MODEL.NUM_CLASSES
    if cfg.DATA.LAYOUT == "csv":
        csv_path = os.path.join(data_dir, f"{split}.csv")
        return read_csv_annotations(csv_path, cfg.DATA.PATH_LABEL_SEPARATOR, cfg.DATA.PATH_PREFIX, num_classes)
    records, classnames = scan_class_folders(os.path.join(data_dir, split), build_classnames(cfg)[0])
    if len(classnames) > num_classes:
        raise AnnotationError(f"{data_dir}: {len(classnames)} class folders but MODEL.NUM_CLASSES = {num_classes}")
    return records


def describe_data(cfg: CfgNode) -> List[str]:
    """What the data of ``cfg`` holds, as lines: the class names and their source, then each split's videos and
    classes (and listed files that do not exist). The splits the run needs (train if TRAIN.ENABLE, test if
    TEST.ENABLE) must be readable; val is optional.

    Raises:
        FileNotFoundError: no data folder, no annotation file or folder of a needed split, no class-name file.
        AnnotationError: malformed annotations, or MODEL.NUM_CLASSES that does not match the class names.
    """
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"DATA.PATH_TO_DATA_DIR {data_dir!r}: no such folder")
    names, source = build_classnames(cfg)
    check_num_classes(cfg)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else ""
    lines = [f"{len(names)} classes ({shown}) from {source}" if names else
             f"no class names (DATA.CLASSNAMES empty, no {data_dir}/classnames.txt): reports use label indices"]
    needed = {"train": cfg.TRAIN.ENABLE, "val": False, "test": cfg.TEST.ENABLE}
    for split, required in needed.items():
        try:
            records = build_records(cfg, split)
        except FileNotFoundError:
            if required:
                raise
            lines.append(f"{split}: none")
            continue
        missing = [r.path for r in records if not os.path.isfile(r.path)]
        lines.append(f"{split}: {len(records)} videos of {len({r.label for r in records})} classes"
                     + (f"; {len(missing)} listed files do not exist (first: {missing[0]})" if missing else ""))
    return lines


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
    "build_classnames",
    "build_dataset",
    "build_eval_transform",
    "build_records",
    "build_train_transform",
    "check_num_classes",
    "has_split",
    "collate_clips",
    "collate_views",
    "describe_data",
    "load_classnames",
    "read_csv_annotations",
    "scan_class_folders",
    "temporal_view_indices",
    "train_clip_indices",
]
