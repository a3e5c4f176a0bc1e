"""Annotations (CSV, folders, class names), bad inputs in training and testing, build_dataset."""

import logging
import os

import pytest
import torch
from torch.utils.data import DataLoader

from mvit_video.config import get_cfg
from mvit_video.data import (
    AnnotationError,
    ClipSpec,
    EvalTransform,
    FailureLog,
    MultiViewTestDataset,
    TrainClipDataset,
    TrainTransform,
    VideoRecord,
    build_dataset,
    load_classnames,
    parse_rand_augment,
    read_csv_annotations,
    scan_class_folders,
)
from mvit_video.data.synthetic import CLASSNAMES, make_synthetic_dataset

from .video_files import write_bad_files, write_clip

MEAN, STD = (0.45,) * 3, (0.225,) * 3
CLIP = ClipSpec(num_frames=4, sampling_rate=4)


# ---------------------------------------------------------------------------------------------------------------------
# CSV files, folders, class names
# ---------------------------------------------------------------------------------------------------------------------
def test_csv_separator_prefix_and_relative_paths(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("a/x.mp4,3\n\nwith space.mp4,0\r\n/abs/y.mp4,1\n")
    records = read_csv_annotations(str(csv), separator=",", num_classes=4)
    assert records == [
        VideoRecord(str(tmp_path / "a/x.mp4"), 3),
        VideoRecord(str(tmp_path / "with space.mp4"), 0),
        VideoRecord("/abs/y.mp4", 1),
    ]
    prefixed = read_csv_annotations(str(csv), separator=",", prefix="/data/k400")
    assert [r.path for r in prefixed] == ["/data/k400/a/x.mp4", "/data/k400/with space.mp4", "/abs/y.mp4"]


def test_space_separated_csv_allows_spaces_in_paths(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_text("videos/my clip.mp4 7\n")
    assert read_csv_annotations(str(csv), num_classes=400) == [VideoRecord(str(tmp_path / "videos/my clip.mp4"), 7)]


def test_malformed_csv_names_the_file_and_every_bad_line(tmp_path):
    csv = tmp_path / "train.csv"
    lines = ["ok.mp4 1", "nolabel.mp4", "bad.mp4 cat", "big.mp4 400", "ok2.mp4 2", "neg.mp4 -1", "x.mp4",
             "y.mp4", "z.mp4", "w.mp4 400"]
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError) as err:
        read_csv_annotations(str(csv), num_classes=400)
    message = str(err.value)
    assert str(csv) in message and "8 malformed lines" in message
    assert "no label: lines 2, 7-9" in message
    assert "label is not an integer: line 3" in message
    assert "label out of range [0, 400): lines 4, 6, 10" in message


def test_missing_or_empty_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        read_csv_annotations(str(tmp_path / "nothing.csv"))
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(AnnotationError, match="no videos"):
        read_csv_annotations(str(tmp_path / "empty.csv"))


def test_class_folders_give_sorted_label_ids(tmp_path):
    for name in ("walking", "abseiling", "juggling"):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / f"{name}_1.mp4").write_bytes(b"")
    (tmp_path / "train" / "juggling" / "notes.txt").write_text("not a video")
    records, classnames = scan_class_folders(str(tmp_path / "train"))
    assert classnames == ["abseiling", "juggling", "walking"]
    assert [(os.path.basename(r.path), r.label) for r in records] == [
        ("abseiling_1.mp4", 0), ("juggling_1.mp4", 1), ("walking_1.mp4", 2),
    ]
    (tmp_path / "val" / "swimming").mkdir(parents=True)
    with pytest.raises(AnnotationError, match="swimming"):
        scan_class_folders(str(tmp_path / "val"), classnames)


def test_kinetics400_class_names_ship_with_the_package():
    names = load_classnames("kinetics400")
    assert len(names) == 400 == len(set(names))
    assert names[0] == "abseiling" and names[-1] == "zumba" and names == sorted(names)
    with pytest.raises(FileNotFoundError, match="kinetics400"):
        load_classnames("no-such-list")


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    good = [write_clip(folder / f"good{i}.mp4", seed=i) for i in range(2)]
    return good, write_bad_files(folder / "bad")


def train_set(records, **kwargs):
    transform = TrainTransform(48, MEAN, STD, jitter_scales=(48, 56))
    return TrainClipDataset(records, CLIP, transform, backend="pyav", **kwargs)


@pytest.mark.parametrize("reason", ["file not found", "empty file", "not a video file", "no video stream",
                                    "truncated or corrupt video"])
def test_training_replaces_a_bad_video_and_records_why(videos, reason, caplog):
    good, bad = videos
    records = [VideoRecord(bad[reason], 5)] + [VideoRecord(path, 1) for path in good]
    dataset = train_set(records)
    with caplog.at_level(logging.WARNING):
        items = [dataset[0] for _ in range(3)]
    for item in items:
        assert item["index"] in (1, 2) and item["label"] == 1  # a good video replaced it
        assert item["frames"].shape == (1, 3, 4, 48, 48)
        # The replacement is drawn from the whole dataset, so the bad video may be drawn again.
        assert len(item["failures"]) >= 1 and set(item["failures"]) == {(bad[reason], reason)}
    assert len(dataset.failures) == sum(len(item["failures"]) for item in items)  # every failed read counts
    warnings = [r for r in caplog.records if bad[reason] in r.getMessage()]
    assert len(warnings) == 1 and reason in warnings[0].getMessage()  # the file is named once


def test_a_dataset_of_bad_videos_stops_with_the_reasons(videos):
    _, bad = videos
    dataset = train_set([VideoRecord(path, 0) for path in bad.values()], max_retries=4)
    with pytest.raises(RuntimeError, match="5 videos in a row could not be read"):
        dataset[0]


def test_failures_reach_the_epoch_summary_through_dataloader_workers(videos):
    good, bad = videos
    records = [VideoRecord(path, 0) for path in list(bad.values()) + good]
    dataset = train_set(records)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=dataset.collate_fn)
    log = FailureLog()
    for batch in loader:
        assert batch["frames"].shape[1:] == (3, 4, 48, 48)
        log.update(batch["failures"])
    assert dataset.failures == []  # the main process did not read anything itself
    assert set(log.by_file()) == set(bad.values()) and log.count >= len(bad)
    assert all(log.by_file()[path] == reason for reason, path in bad.items())
    assert "5 unreadable videos" in log.summary()


def test_a_bad_test_video_is_reported_failed_not_dropped(videos):
    good, bad = videos
    records = [VideoRecord(path, 2) for path in bad.values()] + [VideoRecord(good[0], 3)]
    dataset = MultiViewTestDataset(records, CLIP, EvalTransform(48, 48, 3, MEAN, STD), num_clips=2, backend="pyav")
    batch = dataset.collate_fn([dataset[i] for i in range(len(dataset))])
    assert batch["views"].shape == (6, 6, 3, 4, 48, 48)
    assert batch["failed"] == list(bad) + [""]
    assert batch["labels"].tolist() == [2] * 5 + [3]
    assert batch["views"][:5].abs().sum() == 0 and batch["views"][5].abs().sum() > 0
    assert [f.reason for f in dataset.failures] == list(bad)


# ---------------------------------------------------------------------------------------------------------------------
# build_dataset
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(str(out), seed=1, num_train=12, num_val=12, num_test=12, size=64, num_frames=24,
                           workers=1, progress=False)
    return out


def small_cfg(data_dir):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.DECODING_BACKEND = "pyav"
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 4, 2
    cfg.DATA.TRAIN_JITTER_SCALES = [64, 72]
    cfg.DATA.TRAIN_CROP_SIZE = cfg.DATA.TEST_CROP_SIZE = 56
    cfg.MODEL.NUM_CLASSES = len(CLASSNAMES)
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 3, 3
    return cfg


@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_build_dataset_for_each_split(synthetic_dir, layout):
    cfg = small_cfg(synthetic_dir)
    cfg.DATA.LAYOUT = layout
    cfg.AUG.ENABLE, cfg.AUG.AA_TYPE, cfg.AUG.NUM_SAMPLE = True, "rand-m7-n2-mstd0.5-inc1", 2
    train, val, test = (build_dataset(cfg, split) for split in ("train", "val", "test"))
    assert isinstance(train, TrainClipDataset) and len(train) == 12
    batch = train.collate_fn([train[0], train[1]])
    assert batch["frames"].shape == (4, 3, 4, 56, 56) and batch["labels"].tolist() == [0, 0, 1, 1]
    assert val[0]["views"].shape == (1, 3, 4, 56, 56)  # one centre clip, one centre crop
    item = test[3]
    assert item["views"].shape == (9, 3, 4, 56, 56) and item["label"] == 3 and item["failed"] == ""


def test_build_dataset_names_bad_configuration(synthetic_dir, tmp_path):
    cfg = small_cfg(synthetic_dir)
    cfg.MODEL.NUM_CLASSES = 10  # labels 10 and 11 of the synthetic set are out of range
    with pytest.raises(AnnotationError, match="train.csv"):
        build_dataset(cfg, "train")
    with pytest.raises(ValueError, match="unknown split"):
        build_dataset(small_cfg(synthetic_dir), "holdout")
    with pytest.raises(FileNotFoundError, match="test.csv"):
        build_dataset(small_cfg(tmp_path), "test")


def test_collated_training_batch_is_a_float_clip_batch(synthetic_dir):
    dataset = build_dataset(small_cfg(synthetic_dir), "train")
    batch = dataset.collate_fn([dataset[i] for i in range(3)])
    assert batch["frames"].dtype == torch.float32 and batch["indices"].tolist() == [0, 1, 2]
    assert batch["failures"] == []


# ---------------------------------------------------------------------------------------------------------------------
# Seeded items
# ---------------------------------------------------------------------------------------------------------------------
def test_a_seeded_item_depends_on_the_seed_and_index_alone(videos):
    good, _ = videos
    transform = TrainTransform(48, MEAN, STD, jitter_scales=(48, 64), erase_prob=0.5,
                               rand_augment=parse_rand_augment("rand-m7-n4-mstd0.5-inc1"))
    dataset = TrainClipDataset([VideoRecord(path, 1) for path in good], CLIP, transform, num_samples=2, backend="pyav")
    dataset.set_seed(7)
    first = dataset[1]["frames"]
    assert not torch.equal(first[0], first[1])  # the two repeated samples are augmented differently
    torch.manual_seed(123)  # another state of the caller's generators, and another order of reads
    dataset[0]
    state = torch.get_rng_state()
    assert torch.equal(dataset[1]["frames"], first)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
    dataset.set_seed(8)
    assert not torch.equal(dataset[1]["frames"], first)
