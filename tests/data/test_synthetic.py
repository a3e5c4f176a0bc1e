"""Synthetic dataset: reproducible files, Kinetics-style CSVs, classes that need time to tell apart."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from mvit_video.data.video import decode_frames, probe_video
from mvit_video.data.kinetics import load_classnames, read_csv_annotations
from mvit_video.data.synthetic import (
    CLASSNAMES,
    GENERATOR_VERSION,
    MANIFEST,
    TIME_REVERSED,
    dataset_spec,
    make_synthetic_dataset,
    render_clip,
    stale_reason,
)

from ..tool_modules import load_tool
from .video_files import write_clip


def small_dataset(out, seed):
    return make_synthetic_dataset(str(out), seed=seed, num_train=12, num_val=0, num_test=12, size=48,
                                  num_frames=16, workers=1, progress=False)


def file_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_videos(tmp_path):
    small_dataset(tmp_path / "a", seed=3)
    small_dataset(tmp_path / "b", seed=3)
    small_dataset(tmp_path / "c", seed=4)
    a, b, c = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b"), file_bytes(tmp_path / "c")
    assert len(a) == 24 + 5 and a == b  # 24 clips, 3 CSV files, classnames.txt, dataset.json
    videos = [name for name in a if name.endswith(".mp4")]
    assert all(a[name] != c[name] for name in videos)


def test_written_dataset_is_kinetics_style(tmp_path):
    csv_paths = small_dataset(tmp_path, seed=0)
    records = read_csv_annotations(csv_paths["train"], num_classes=len(CLASSNAMES))
    assert [r.label for r in records] == list(range(12))  # balanced: the classes in turn
    assert load_classnames(str(tmp_path / "classnames.txt")) == list(CLASSNAMES)
    info = probe_video(records[0].path)
    assert (info.width, info.height, info.num_frames, info.fps) == (48, 48, 16, 30.0)
    assert Path(csv_paths["val"]).read_text() == ""


TOOL_ARGS = ["--num-train", "2", "--num-test", "1", "--size", "32", "--frames", "8", "--workers", "1", "--quiet"]


def test_command_line_tool(tmp_path):
    load_tool("make_synthetic_dataset").main(["--out", str(tmp_path)] + TOOL_ARGS)
    assert len(list(tmp_path.rglob("*.mp4"))) == 4  # 2 train, 1 val (defaults to --num-test), 1 test


def test_manifest_records_how_the_set_was_made(tmp_path):
    small_dataset(tmp_path, seed=5)
    spec = dataset_spec(seed=5, num_train=12, num_val=0, num_test=12, size=48, num_frames=16)
    assert json.loads((tmp_path / MANIFEST).read_text()) == spec
    assert spec["generator_version"] == GENERATOR_VERSION
    assert stale_reason(str(tmp_path), spec) is None
    other = dict(spec, num_frames=32)
    expected = f"{tmp_path / MANIFEST} differs from what was asked: num_frames 16 -> 32"
    assert stale_reason(str(tmp_path), other) == expected


def test_if_stale_keeps_a_current_set_and_regenerates_an_older_one(tmp_path, capsys):
    tool = load_tool("make_synthetic_dataset")
    tool.main(["--out", str(tmp_path), "--if-stale"] + TOOL_ARGS)
    clip = next(tmp_path.rglob("*.mp4"))
    assert "regenerating" in capsys.readouterr().out  # empty folder

    clip.write_bytes(b"marker: not rewritten")
    tool.main(["--out", str(tmp_path), "--if-stale"] + TOOL_ARGS)
    assert "up to date" in capsys.readouterr().out
    assert clip.read_bytes() == b"marker: not rewritten"

    # A set from the generator before manifests existed: CSVs present, no dataset.json.
    (tmp_path / MANIFEST).unlink()
    tool.main(["--out", str(tmp_path), "--if-stale"] + TOOL_ARGS)
    assert f"was written before generator version {GENERATOR_VERSION} added manifests" in capsys.readouterr().out
    assert clip.read_bytes() != b"marker: not rewritten"

    # An older generator version in the manifest, or a manifest that is not JSON.
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(dict(manifest, generator_version=GENERATOR_VERSION - 1)))
    tool.main(["--out", str(tmp_path), "--if-stale"] + TOOL_ARGS)
    assert f"generator_version {GENERATOR_VERSION - 1} -> {GENERATOR_VERSION}" in capsys.readouterr().out
    (tmp_path / MANIFEST).write_text("{not json")
    assert "is unreadable" in stale_reason(str(tmp_path), manifest)


def test_clips_have_a_keyframe_every_16_frames(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", num_frames=40)
    with av.open(path) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    assert [i for i, packet in enumerate(packets) if packet.is_keyframe] == [0, 16, 32]
    assert decode_frames(path, [39, 17, 0], backend="pyav").shape == (3, 64, 64, 3)


@pytest.mark.parametrize("reversed_class, forward_class", sorted(TIME_REVERSED.items()))
def test_pairs_differ_only_in_the_direction_of_time(reversed_class, forward_class):
    for seed in range(3):
        forward = render_clip(forward_class, np.random.default_rng(seed), 48, 16)
        backward = render_clip(reversed_class, np.random.default_rng(seed), 48, 16)
        assert np.array_equal(backward, forward[::-1])


def foreground_masks(frames):
    """Pixels far from their frame's median colour: the shape (it covers well under half of the frame) over the dark,
    gently graded background."""
    frames = frames.astype(np.float32)
    median = np.median(frames.reshape(len(frames), -1, 3), axis=1)[:, None, None, :]
    return np.abs(frames - median).sum(axis=-1) > 60


def centroid_track(frames):
    masks = foreground_masks(frames)
    ys, xs = np.indices(masks.shape[1:])
    return np.array([(xs[m].mean(), ys[m].mean()) for m in masks])  # (T, 2): x, y


def orientation_track(frames):
    """Orientation (radians, unwrapped) of the shape's second moments; grows when it turns clockwise on screen."""
    angles = []
    for mask in foreground_masks(frames):
        ys, xs = np.nonzero(mask)
        x, y = xs - xs.mean(), ys - ys.mean()
        angles.append(0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean()))
    return np.unwrap(np.array(angles) * 2) / 2


@pytest.mark.parametrize("classname, axis, sign", [
    ("move_left", 0, -1), ("move_right", 0, 1), ("move_up", 1, -1), ("move_down", 1, 1),
])
def test_moving_shapes_move_the_named_way_and_reversed_the_other_way(classname, axis, sign, tmp_path):
    for seed in range(3):
        path = write_clip(tmp_path / f"{classname}{seed}.mp4", classname, seed=seed, size=64, num_frames=32)
        frames = decode_frames(path, range(32)).numpy()  # through H.264 and back
        track = centroid_track(frames)[:, axis]
        assert sign * (track[-1] - track[0]) > 16  # pixels, of 64: the shape travels 28-37% of the frame
        assert np.all(sign * np.diff(track) > -1)  # steadily
        assert sign * (centroid_track(frames[::-1])[-1, axis] - centroid_track(frames[::-1])[0, axis]) < -16


def test_rotations_turn_the_named_way():
    for seed in range(4):
        clockwise = orientation_track(render_clip("rotate_clockwise", np.random.default_rng(seed), 64, 32))
        anticlockwise = orientation_track(render_clip("rotate_anticlockwise", np.random.default_rng(seed + 10), 64, 32))
        assert clockwise[-1] - clockwise[0] > 1.0 and anticlockwise[-1] - anticlockwise[0] < -1.0


def test_grow_and_appear_change_the_shape_over_time():
    grow = render_clip("grow", np.random.default_rng(0), 64, 32).astype(np.float32)
    first, last = (np.abs(grow[t] - grow[t].reshape(-1, 3).mean(0)).sum(-1) for t in (0, -1))
    assert (last > 100).sum() > 2 * (first > 100).sum()  # the shape covers more pixels at the end
    appear = render_clip("appear", np.random.default_rng(0), 64, 32).astype(np.float32)
    assert np.abs(appear[0] - appear[0].mean((0, 1))).max() < 60  # nothing but background and noise at first
    assert np.abs(appear[-1] - appear[0]).max() > 100


def test_static_classes_do_not_move_and_differ_in_colour():
    red = render_clip("static_red_circle", np.random.default_rng(0), 64, 16).astype(np.float32)
    blue = render_clip("static_blue_square", np.random.default_rng(0), 64, 16).astype(np.float32)
    for clip, channel in ((red, 0), (blue, 2)):
        assert np.abs(clip[0] - clip[-1]).max() < 40  # noise only
        shape = np.abs(clip[0] - np.median(clip[0].reshape(-1, 3), axis=0)).sum(-1) > 100
        colour = clip[0][shape].mean(0)
        assert colour.argmax() == channel and colour[channel] > 150


def test_unknown_class_and_bad_sizes_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic class"):
        render_clip("jump", np.random.default_rng(0))
    with pytest.raises(ValueError, match="even size"):
        make_synthetic_dataset(str(tmp_path), size=33, progress=False)
