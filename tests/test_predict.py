"""Predicting on videos: the multi-view top-k, sliding windows over a whole video decoded once with bounded memory,
the annotated copy, bad inputs in tools/predict.py, and the Python API on frames."""

import importlib.util
import json
import sys
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import mvit_video
from mvit_video.annotate import annotate_video
from mvit_video.config import load_config
from mvit_video.data.clip_sampling import ClipSpec, sliding_windows, temporal_view_indices, window_clip_indices
from mvit_video.data.video import decode_frames, probe_video
from mvit_video.data.streaming import ClipStream
from mvit_video.data.synthetic import render_clip, write_video
from mvit_video.data.transforms import EvalTransform
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
# 64 px clips of 8 frames at stride 2, two temporal views, one centre crop; no class-name file from the config, and no
# data folder to take names from (after `make demo`, data/synthetic has a classnames.txt).
OPTS = ["DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64", "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
        "DATA.SAMPLING_RATE", "2", "DATA.CLASSNAMES", "", "DATA.PATH_TO_DATA_DIR", str(ROOT / "tests" / "no_such_data")]
NAMES = [f"action_{chr(ord('a') + i)}" for i in range(12)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The tiny model is bound by per-op overhead: one thread is faster, and immune to a busy second core.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cfg():
    return load_config(TINY, OPTS)


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    (folder / "names.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "notes.txt").write_text("not a video\n")
    write_video(str(folder / "clip.mp4"), render_clip("move_left", np.random.default_rng(1), 64, 48))
    # 10 s at 10 fps: windows in seconds are whole frames.
    write_video(str(folder / "ten_seconds.mp4"), render_clip("grow", np.random.default_rng(2), 64, 100), fps=10)
    return folder


def expected_probabilities(model, frames_of_clips, transform):
    """The views' softmax averaged, computed clip by clip with the decoder and the test transform."""
    with torch.no_grad():
        views = torch.cat([transform(frames) for frames in frames_of_clips])
        return model(views).softmax(dim=-1).mean(dim=0)


@pytest.mark.parametrize("num_crops", [1, 3])
def test_predict_is_the_top_k_of_the_averaged_softmax(model, files, num_crops):
    cfg = load_config(TINY, OPTS + ["TEST.NUM_SPATIAL_CROPS", str(num_crops)])
    path = str(files / "clip.mp4")
    prediction = mvit_video.predict(path, model, cfg, topk=3, classnames=str(files / "names.txt"))

    info = probe_video(path)
    clips = temporal_view_indices(ClipSpec(8, 2, 30), info.num_frames, info.fps, 2, cfg.DATA.USE_OFFSET_SAMPLING)
    transform = EvalTransform(64, 64, num_crops, cfg.DATA.MEAN, cfg.DATA.STD)
    expected = expected_probabilities(model, [decode_frames(path, c, backend="pyav") for c in clips], transform)
    top = expected.topk(4)
    assert top.values[2] - top.values[3] > 1e-4  # no near-tie that rounding could flip
    assert prediction.indices == top.indices[:3].tolist()
    assert prediction.labels == [NAMES[i] for i in prediction.indices]
    assert torch.allclose(prediction.probabilities, expected, atol=1e-5)
    assert prediction.scores == sorted(prediction.scores, reverse=True)
    assert prediction.scores == pytest.approx(expected[prediction.indices].tolist(), abs=1e-5)
    assert float(prediction.probabilities.sum()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.num_views == 2 * num_crops and model.training is False


def test_ensemble_method_max_takes_the_element_wise_maximum_of_the_views(model, files):
    cfg = load_config(TINY, OPTS + ["TEST.NUM_SPATIAL_CROPS", "3", "DATA.ENSEMBLE_METHOD", "max"])
    path = str(files / "clip.mp4")
    prediction = mvit_video.predict(path, model, cfg, topk=12)
    info = probe_video(path)
    clips = temporal_view_indices(ClipSpec(8, 2, 30), info.num_frames, info.fps, 2, cfg.DATA.USE_OFFSET_SAMPLING)
    transform = EvalTransform(64, 64, 3, cfg.DATA.MEAN, cfg.DATA.STD)
    with torch.no_grad():
        views = torch.cat([transform(decode_frames(path, c, backend="pyav")) for c in clips])
        per_view = model(views).softmax(dim=-1)  # (6, K)
    expected = per_view.max(dim=0).values
    assert not torch.allclose(expected, per_view.mean(dim=0), atol=1e-3)  # the two methods differ on this input
    assert torch.allclose(prediction.probabilities, expected, atol=1e-5)
    assert prediction.scores == pytest.approx(expected[prediction.indices].tolist(), abs=1e-5)

    # A timeline window combines its crops the same way.
    timeline = mvit_video.predict_timeline(str(files / "ten_seconds.mp4"), model, cfg, window=10, topk=1)
    indices = window_clip_indices(ClipSpec(8, 2, 30), 0, 10, 10.0, 100)
    with torch.no_grad():
        crops = model(transform(decode_frames(str(files / "ten_seconds.mp4"), indices))).softmax(dim=-1)
    assert torch.allclose(timeline.windows[0].prediction.probabilities, crops.max(dim=0).values, atol=1e-5)

    cfg.defrost()
    cfg.DATA.ENSEMBLE_METHOD = "vote"
    with pytest.raises(ValueError, match="DATA.ENSEMBLE_METHOD = 'vote'"):
        mvit_video.predict(path, model, cfg)


def test_predict_on_frames_matches_the_file(cfg, model, files):
    path = str(files / "clip.mp4")
    info = probe_video(path)
    frames = decode_frames(path, range(info.num_frames))  # uint8 (T, H, W, 3)
    from_file = mvit_video.predict(path, model, cfg, topk=12)
    from_uint8 = mvit_video.predict(frames, model, cfg, topk=12, fps=info.fps)
    from_float = mvit_video.predict(frames.numpy() / 255.0, model, cfg, topk=12, fps=info.fps)
    assert from_uint8.indices == from_file.indices
    assert torch.allclose(from_uint8.probabilities, from_file.probabilities, atol=1e-6)
    assert torch.allclose(from_float.probabilities, from_file.probabilities, atol=1e-6)
    assert from_file.labels[0].startswith("class_")  # no names in the config: numbered classes


def test_predict_refuses_frames_it_cannot_read(cfg, model):
    clip = torch.zeros(3, 8, 64, 64)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\).*\(C, T, H, W\) clip"):
        mvit_video.predict(clip, model, cfg)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mvit_video.predict(torch.full((8, 64, 64, 3), 2.0), model, cfg)
    with pytest.raises(TypeError, match="uint8"):
        mvit_video.predict(torch.zeros(8, 64, 64, 3, dtype=torch.int32), model, cfg)
    with pytest.raises(ValueError, match="12 classes"):
        mvit_video.predict(torch.zeros(8, 64, 64, 3, dtype=torch.uint8), model, cfg, classnames=["a", "b"])


def test_windows_cover_the_whole_video():
    assert list(sliding_windows(10, 2, 1.5)) == [
        (0, 2), (1.5, 3.5), (3, 5), (4.5, 6.5), (6, 8), (7.5, 9.5), (8, 10)]
    assert list(sliding_windows(10, 2, 2)) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert list(sliding_windows(1.5, 2, 1)) == [(0, 1.5)]
    with pytest.raises(ValueError, match="gaps"):
        sliding_windows(10, 1, 2)


def test_timeline_windows_and_their_clips(cfg, model, files):
    path = str(files / "ten_seconds.mp4")
    timeline = mvit_video.predict_timeline(path, model, cfg, window=2, stride=1.5, topk=2, batch_size=3)
    assert [(w.start, w.end) for w in timeline.windows] == [
        (0, 2), (1.5, 3.5), (3, 5), (4.5, 6.5), (6, 8), (7.5, 9.5), (8, 10)]
    assert timeline.duration == pytest.approx(10) and timeline.num_frames == 100
    # Each window's prediction is that of its centred clip, decoded on its own.
    transform = EvalTransform(64, 64, 1, cfg.DATA.MEAN, cfg.DATA.STD)
    clip = ClipSpec(8, 2, 30)
    for window in timeline.windows:
        indices = window_clip_indices(clip, window.start, window.end, 10.0, 100)
        expected = expected_probabilities(model, [decode_frames(path, indices)], transform)
        assert torch.allclose(window.prediction.probabilities, expected, atol=1e-5)
    assert timeline.window_at(0.1).start == 0 and timeline.window_at(9.9).end == 10
    assert timeline.window_at(4.0).start == 3  # centre 4.0 beats 2.5 and 5.5


def test_clip_stream_keeps_only_the_frames_of_open_clips():
    clips = [(i, list(range(3 * i, 3 * i + 5))) for i in range(10)]  # overlapping by two frames
    stream = ClipStream(iter(range(40)), clips)
    assert [(key, frames) for key, frames in stream] == clips  # frames are the indices themselves
    assert stream.peak_buffered == 5
    with pytest.raises(EOFError, match="before frame 22 of clip 6"):
        list(ClipStream(iter(range(20)), clips))


def encode(path, frames, fps=30, pix_fmt="yuv420p"):
    """Writes uint8 (H, W, 3) frames, any iterable of them, as fast low-quality H.264."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "30"})
        stream.pix_fmt = pix_fmt
        for i, image in enumerate(frames):
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


def solid_colours(n, size=112):
    """n frames of one colour each, a different one every frame (one array, refilled)."""
    image = np.empty((size, size, 3), np.uint8)
    for i in range(n):
        image[:] = (i * 7 % 256, i * 13 % 256, i * 29 % 256)
        yield image


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """34 s and 100 s at 30 fps, 112 px: windows of 2 s every second end on the last frame of both."""
    folder = tmp_path_factory.mktemp("long")
    return {n: encode(folder / f"solid_{n}.mp4", solid_colours(n)) for n in (1020, 3000)}


def test_memory_does_not_grow_with_the_video(long_videos):
    # The config's own 112 px size: frames are buffered as decoded, not resized copies.
    cfg = load_config(TINY, ["DATA.CLASSNAMES", ""])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mvit_video.predict_timeline(long_videos[1020], model, cfg, window=2)  # first-call allocations out of the way
    working, retained, buffered = {}, {}, {}
    for n, path in long_videos.items():
        tracemalloc.start()
        timeline = mvit_video.predict_timeline(path, model, cfg, window=2, stride=1)
        retained[n], peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        working[n] = peak - retained[n]
        buffered[n] = timeline.peak_buffered_frames
        assert timeline.windows[-1].end == pytest.approx(n / 30)
        assert retained[n] < 2_000 * len(timeline.windows)  # what stays is the timeline, under 2 kB a window
    # 8 frames per clip, 32-frame clips every 30 frames: two clips overlap at most, 16 frames at the very most.
    assert buffered[1020] == buffered[3000] <= 16
    # tracemalloc sees every numpy buffer and Python object allocated, and a decoded 112 px RGB frame is 37,632
    # bytes. What may grow with the video is its frame index (a few int64 per frame while the file is demuxed, about
    # 10 bytes per frame measured): under 64 bytes per extra frame, where one more frame held per 600 would not be.
    extra = 3000 - 1020
    assert working[3000] - working[1020] < 64 * extra, working
    assert retained[3000] - retained[1020] < 2_000 * (len(timeline.windows) - 33), retained


@pytest.fixture(scope="module")
def tool(files):
    """tools/predict.py as a module (it imports _paths from its own folder)."""
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("predict_tool", ROOT / "tools/predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(ROOT / "tools"))


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pyth"
    save_checkpoint(path, model.state_dict())
    return str(path)


def test_tool_reports_bad_files_and_predicts_the_others(tool, files, checkpoint, tmp_path, capsys):
    missing, text, good = str(files / "missing.mp4"), str(files / "notes.txt"), str(files / "clip.mp4")
    out = tmp_path / "predictions.json"
    status = tool.main([missing, text, good, "--cfg", TINY, "--checkpoint", checkpoint, "--topk", "2",
                        "--classnames", str(files / "names.txt"), "--json", str(out), "--opts", *OPTS])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.splitlines() == [f"error: {missing}: file not found", f"error: {text}: not a video file"]
    assert f"{good}: 2 views" in captured.out
    records = json.loads(out.read_text())["videos"]
    assert [r.get("error") for r in records] == ["file not found", "not a video file", None]
    assert len(records[2]["prediction"]["top"]) == 2 and records[2]["prediction"]["top"][0]["label"] in NAMES


def read_video(path):
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_tool_timeline_and_annotated_copy(tool, files, checkpoint, tmp_path, capsys):
    source = files / "ten_seconds.mp4"
    out = tmp_path / "annotated.mp4"
    status = tool.main([str(source), "--cfg", TINY, "--checkpoint", checkpoint, "--window", "2", "--stride", "1.5",
                        "--annotate", str(out), "--opts", *OPTS])
    printed = capsys.readouterr().out
    assert status == 0
    assert "7 windows of 2 s every 1.5 s over 10.00 s" in printed
    assert "    8.00    10.00  class_" in printed
    original, annotated = read_video(source), read_video(out)
    assert annotated.shape == original.shape  # same frames, same size
    assert probe_video(str(out)).fps == pytest.approx(10)
    difference = np.abs(annotated.astype(int) - original.astype(int))
    banner = 12  # rows: max(12, height / 12)
    assert difference[:, :banner].mean(axis=(1, 2, 3)).min() > 20  # the label is drawn on every frame
    assert difference[:, banner + 2 :].mean() < 5  # and the rest is the video


def test_annotated_copy_of_a_whole_video_prediction(cfg, model, files, tmp_path):
    # Odd sides: 4:2:0 cannot hold them, the copy is written in 4:4:4 at the same size.
    frames = render_clip("shrink", np.random.default_rng(3), 72, 20)[:, :67, :71]
    source = encode(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p")
    prediction = mvit_video.predict(source, model, cfg, classnames=NAMES)
    out = tmp_path / "new_folder" / "copy.mp4"
    assert annotate_video(source, out, prediction) == 20
    original, annotated = read_video(source), read_video(out)
    assert annotated.shape == original.shape == (20, 67, 71, 3)
    assert np.abs(annotated[:, :12].astype(int) - original[:, :12]).mean() > 20
    assert [p.name for p in out.parent.iterdir()] == ["copy.mp4"]  # no partial file left
