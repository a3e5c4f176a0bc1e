"""A user's own folder of videos, end to end: train with DATA.LAYOUT folders, folder names in the results and in
predict, predict from the checkpoint alone (no --cfg), pretrained weights by registry name through a local server,
and the class-count checks."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from mvit_video import weights
from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

from .data.video_files import write_clip
from .http_server import FileServer
from .tool_modules import load_tool

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
# 64 px clips of 8 frames at stride 2, two temporal views, one crop, on the CPU in the test process.
SMALL = ["DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64", "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
         "DATA.SAMPLING_RATE", "2", "DATA_LOADER.NUM_WORKERS", "0", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4"]
CLASSES = {"cat": "move_left", "dog": "grow"}  # folder name -> the synthetic motion its videos show


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("my_videos")
    for i, (folder, motion) in enumerate(CLASSES.items()):
        for split, count in (("train", 4), ("test", 2)):
            for j in range(count):
                write_clip(root / split / folder / f"{split}{j}.mp4", motion, seed=100 * i + 10 * j, num_frames=24)
    return root


def folder_opts(data: Path, out: Path, *extra: str) -> list:
    return ["DATA.LAYOUT", "folders", "DATA.PATH_TO_DATA_DIR", str(data), "OUTPUT_DIR", str(out),
            "SOLVER.MAX_EPOCH", "1", *SMALL, *extra]


@pytest.fixture(scope="module")
def trained(own_data, tmp_path_factory):
    """Runs tools/run_net.py on the folders once: (output folder, exit status)."""
    out = tmp_path_factory.mktemp("run")
    status = load_tool("run_net").main(["--cfg", TINY, "--opts", *folder_opts(own_data, out, "MODEL.NUM_CLASSES", "2")])
    return out, status


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_folder_names_are_the_class_names_of_the_results(trained):
    out, status = trained
    assert status == 0
    results = json.loads((out / "test_results.json").read_text())
    assert set(results["per_class_top1"]) == {"cat", "dog"}
    rows = list(csv.DictReader(open(out / "test_predictions.csv")))
    assert len(rows) == 4
    assert {row["label_name"] for row in rows} == {"cat", "dog"}
    assert {row["prediction_name"] for row in rows} <= {"cat", "dog"}
    assert all(Path(row["path"]).parent.name == row["label_name"] for row in rows)


def test_predict_needs_only_the_checkpoint(trained, own_data, tmp_path, capsys):
    out, _ = trained
    checkpoint = str(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    video = shutil.copy(own_data / "test" / "dog" / "test0.mp4", tmp_path / "mine.mp4")
    # The data folder is gone: the config and the class names can come only from the checkpoint.
    moved = shutil.move(str(own_data / "train"), str(tmp_path / "elsewhere"))
    try:
        status = load_tool("predict").main([str(video), "--checkpoint", checkpoint, "--topk", "2", "--views", "1"])
    finally:
        shutil.move(moved, str(own_data / "train"))
    printed = capsys.readouterr().out
    assert status == 0
    assert " cat " in printed and " dog " in printed and "class_" not in printed


def test_a_class_count_mismatch_says_where_each_count_came_from(trained, own_data, capsys):
    out, _ = trained
    checkpoint = str(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    video = str(own_data / "test" / "cat" / "test0.mp4")
    status = load_tool("predict").main([video, "--checkpoint", checkpoint, "--opts", "MODEL.NUM_CLASSES", "3"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in err
    assert "MODEL.NUM_CLASSES = 3" in err and "the config stored in" in err and "2-class head" in err


def test_num_classes_that_do_not_match_the_folders_are_refused_before_training(own_data, tmp_path, capsys):
    status = load_tool("run_net").main(["--cfg", TINY, "--opts", *folder_opts(own_data, tmp_path)])  # 12 classes
    err = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in err
    assert "MODEL.NUM_CLASSES = 12" in err and "2 classes (cat, dog)" in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "stats.jsonl").exists()


def test_pretrained_weights_by_registry_name_through_a_local_server(own_data, tmp_path, monkeypatch, capsys):
    """A published checkpoint holds weights only: its config and class names come from its registry entry."""
    monkeypatch.setenv("MVIT_VIDEO_CACHE", str(tmp_path / "cache"))
    names = tmp_path / "names.txt"
    names.write_text("".join(f"action_{i}\n" for i in range(12)))
    torch.manual_seed(0)
    model = build_model(load_config(TINY, SMALL))
    save_checkpoint(tmp_path / "published.pyth", model.state_dict())
    body = (tmp_path / "published.pyth").read_bytes()
    server = FileServer()
    try:
        server.files["/zoo/tiny_k12.pyth"] = body
        entry = weights.Weights("tiny_k12", server.url("/zoo/tiny_k12.pyth"), "mvit_video",
                                "configs/synthetic/MVIT_TINY.yaml", str(names), 1.0, 2.0, "1 crop x 2 clips", None,
                                "this test", hashlib.sha256(body).hexdigest(), opts=tuple(SMALL))
        monkeypatch.setitem(weights.REGISTRY, "tiny_k12", entry)
        video = str(own_data / "test" / "cat" / "test1.mp4")
        status = load_tool("predict").main([video, "--checkpoint", "tiny_k12", "--topk", "3"])
    finally:
        server.stop()
    printed = capsys.readouterr().out
    assert status == 0 and printed.count("action_") == 3
    assert server.requests == ["/zoo/tiny_k12.pyth"]


def test_export_and_the_probe_take_the_checkpoint_alone(trained, tmp_path, capsys):
    out, _ = trained
    checkpoint = str(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    exported = tmp_path / "model.pt"
    export = load_tool("export")
    assert export.main(["--checkpoint", checkpoint, "--format", "torchscript", "--out", str(exported)]) == 0
    assert exported.stat().st_size > 0
    probe_out = tmp_path / "probe"
    status = load_tool("frame_shuffle_eval").main(["--checkpoint", checkpoint, "--repeats", "1", "--no-reverse",
                                                   "--opts", "OUTPUT_DIR", str(probe_out)])
    assert status == 0
    report = json.loads((probe_out / "frame_shuffle.json").read_text())
    assert report["num_videos"] == 4 and set(report["per_class"]) == {"cat", "dog"}


def test_convert_reads_a_url(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    monkeypatch.setenv("MVIT_VIDEO_CACHE", str(tmp_path / "cache"))
    server = FileServer()
    try:
        server.files["/run/last.pyth"] = (out / "checkpoints" / "checkpoint_epoch_00001.pyth").read_bytes()
        converted = tmp_path / "converted.pyth"
        monkeypatch.setattr("sys.argv", ["convert_checkpoint.py", server.url("/run/last.pyth"), str(converted)])
        assert load_tool("convert_checkpoint").main() == 0
    finally:
        server.stop()
    kept = torch.load(converted, weights_only=True)
    assert kept["classnames"] == ["cat", "dog"] and "DATA:" in kept["cfg"]  # a converted file still carries them


def test_dry_run_says_what_the_folders_hold(own_data, tmp_path, capsys):
    run_net = load_tool("run_net")
    assert run_net.main(["--cfg", TINY, "--dry-run", "--opts", *folder_opts(own_data, tmp_path,
                                                                           "MODEL.NUM_CLASSES", "2")]) == 0
    printed = capsys.readouterr().out
    assert f"data: 2 classes (cat, dog) from the class folders of {own_data / 'train'}" in printed
    assert "data: train: 8 videos of 2 classes\n" in printed and "data: test: 4 videos of 2 classes\n" in printed
    assert run_net.main(["--cfg", TINY, "--dry-run", "--opts", *folder_opts(own_data, tmp_path)]) == 1
    assert "MODEL.NUM_CLASSES = 12, but the data has 2 classes" in capsys.readouterr().err
    assert run_net.main(["--cfg", TINY, "--dry-run", "--opts", *folder_opts(tmp_path / "nowhere", tmp_path)]) == 1
    nowhere = str(tmp_path / "nowhere")
    assert capsys.readouterr().err.strip() == f"error: DATA.PATH_TO_DATA_DIR {nowhere!r}: no such folder"


def test_run_net_tests_a_checkpoint_given_by_url(trained, own_data, tmp_path, monkeypatch):
    out, _ = trained
    monkeypatch.setenv("MVIT_VIDEO_CACHE", str(tmp_path / "cache"))
    server = FileServer()
    try:
        server.files["/runs/cats.pyth"] = (out / "checkpoints" / "checkpoint_epoch_00001.pyth").read_bytes()
        status = load_tool("run_net").main(["--cfg", TINY, "--opts", *folder_opts(own_data, tmp_path / "test_only"),
                                            "MODEL.NUM_CLASSES", "2", "TRAIN.ENABLE", "False",
                                            "TEST.CHECKPOINT_FILE_PATH", server.url("/runs/cats.pyth")])
    finally:
        server.stop()
    assert status == 0
    assert json.loads((tmp_path / "test_only" / "test_results.json").read_text())["num_videos"] == 4


def test_run_net_tests_a_checkpoint_without_cfg(trained, tmp_path):
    out, _ = trained
    checkpoint = str(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    status = load_tool("run_net").main(["--checkpoint", checkpoint, "--opts", "OUTPUT_DIR", str(tmp_path)])
    assert status == 0
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["num_videos"] == 4 and set(results["per_class_top1"]) == {"cat", "dog"}
    assert not (tmp_path / "checkpoints").exists()  # tested, not trained


def test_training_starts_from_a_registry_name_through_a_local_server(trained, own_data, tmp_path, monkeypatch):
    """TRAIN.CHECKPOINT_FILE_PATH takes a registry name: downloaded, verified and loaded before the first step. At a
    learning rate of 0 the trained weights are the served ones, tensor for tensor."""
    out, _ = trained
    monkeypatch.setenv("MVIT_VIDEO_CACHE", str(tmp_path / "cache"))
    body = (out / "checkpoints" / "checkpoint_epoch_00001.pyth").read_bytes()
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    server = FileServer()
    try:
        server.files["/zoo/cats.pyth"] = body
        entry = weights.Weights("cats_k2", server.url("/zoo/cats.pyth"), "mvit_video",
                                "configs/synthetic/MVIT_TINY.yaml", str(names), 1.0, 2.0, "1 crop x 2 clips", None,
                                "this test", hashlib.sha256(body).hexdigest())
        monkeypatch.setitem(weights.REGISTRY, "cats_k2", entry)
        run = tmp_path / "finetuned"
        status = load_tool("run_net").main(["--cfg", TINY, "--opts", *folder_opts(
            own_data, run, "MODEL.NUM_CLASSES", "2", "TRAIN.CHECKPOINT_FILE_PATH", "cats_k2", "TEST.ENABLE", "False",
            "SOLVER.BASE_LR", "0.0", "SOLVER.WARMUP_START_LR", "0.0", "SOLVER.COSINE_END_LR", "0.0")])
    finally:
        server.stop()
    assert status == 0 and server.requests == ["/zoo/cats.pyth"]
    served = torch.load(out / "checkpoints" / "checkpoint_epoch_00001.pyth", weights_only=True)["model_state"]
    after = torch.load(run / "checkpoints" / "checkpoint_epoch_00001.pyth", weights_only=True)["model_state"]
    assert served.keys() == after.keys()
    assert all(torch.equal(served[k], after[k]) for k in served)
