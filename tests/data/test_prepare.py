"""Dataset preparation: re-encoded outputs hold the same frames, denser keyframes, the asked size; bad sources are
listed, never fatal; a second run resumes."""

import json
from dataclasses import replace
from pathlib import Path

import av
import pytest

from mvit_video.data.video import decode_frames, probe_video
from mvit_video.data.kinetics import read_csv_annotations
from mvit_video.data.prepare import (
    FAILURES,
    RECORDS,
    EncodeSettings,
    PrepareError,
    output_size,
    prepare_dataset,
    verify_output,
)

from ..tool_modules import load_tool
from .indexed_video import read_index, truncate_file, write_indexed_video

SMALL = EncodeSettings(short_side=32)  # keyframe every 16 frames, as by default
NUM_FRAMES = 40


def keyframes(path) -> list:
    """Indices (decode order) of the keyframe packets of ``path``."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    return [i for i, packet in enumerate(packets) if packet.is_keyframe]


def decoded_indices(path) -> list:
    """The frame number drawn in each frame of ``path``, decoded from the start."""
    frames = decode_frames(str(path), range(probe_video(str(path)).num_frames), backend="pyav")
    return [read_index(frame.numpy()) for frame in frames]


@pytest.fixture
def dataset(tmp_path):
    """64x48 videos of 40 frames with one keyframe each, two good and two bad, listed in a train CSV."""
    src = tmp_path / "src"
    (src / "walk").mkdir(parents=True)
    (src / "run").mkdir()
    write_indexed_video(src / "walk" / "a.mp4", NUM_FRAMES, size=(64, 48))
    write_indexed_video(src / "run" / "b.mp4", NUM_FRAMES, size=(64, 48))
    truncate_file(src / "run" / "b.mp4", src / "run" / "corrupt.mp4", 0.4)
    lines = ["walk/a.mp4 0", "run/b.mp4 1", "run/corrupt.mp4 1", "run/missing.mp4 1"]
    (src / "train.csv").write_text("\n".join(lines) + "\n")
    return src


def test_outputs_keep_every_frame_at_the_new_size_with_dense_keyframes(dataset, tmp_path):
    assert keyframes(dataset / "walk" / "a.mp4") == [0]  # x264's default GOP: one keyframe in 40 frames
    report = prepare_dataset([str(dataset / "train.csv")], str(tmp_path / "out"), SMALL, progress=False)
    output = tmp_path / "out" / "walk" / "a.mp4"
    assert [r.ok for r in report.results] == [True, True, False, False]
    info = probe_video(str(output))
    assert (info.width, info.height, info.num_frames, info.fps) == (42, 32, NUM_FRAMES, 30.0)
    assert keyframes(output) == [0, 16, 32]
    assert decoded_indices(output) == list(range(NUM_FRAMES))


def test_new_csv_lists_the_outputs_and_failures_are_listed_with_reasons(dataset, tmp_path):
    out = tmp_path / "out"
    report = prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    records = read_csv_annotations(report.csv_files[str(dataset / "train.csv")])
    assert [(Path(r.path).relative_to(out).as_posix(), r.label) for r in records] == [("walk/a.mp4", 0),
                                                                                      ("run/b.mp4", 1)]
    reasons = dict(line.split("\t") for line in (out / FAILURES).read_text().splitlines())
    assert reasons == {str(dataset / "run" / "corrupt.mp4"): "source: truncated or corrupt video",
                       str(dataset / "run" / "missing.mp4"): "source: file not found"}
    assert not list(out.rglob("*.part"))  # nothing half-written is left behind


def test_second_run_skips_verified_outputs_and_redoes_what_changed(dataset, tmp_path):
    out = tmp_path / "out"
    prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    again = prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    assert again.skipped == 2 and len(again.failed) == 2  # the bad ones are tried again
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps

    write_indexed_video(dataset / "walk" / "a.mp4", NUM_FRAMES - 10, size=(64, 48))  # the source changed
    (out / "run" / "b.mp4").unlink()  # an output went missing
    third = prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    assert third.skipped == 0 and probe_video(str(out / "walk" / "a.mp4")).num_frames == NUM_FRAMES - 10
    larger = prepare_dataset([str(dataset / "train.csv")], str(out), replace(SMALL, short_side=40), progress=False)
    assert larger.skipped == 0 and probe_video(str(out / "run" / "b.mp4")).height == 40


def test_interrupted_run_is_resumed(dataset, tmp_path):
    out = tmp_path / "out"
    prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    lines = (out / RECORDS).read_text().splitlines()
    # as if killed while writing b's record: a.mp4 is recorded, b's record is cut off
    (out / RECORDS).write_text(lines[0] + "\n" + lines[1][:20])
    report = prepare_dataset([str(dataset / "train.csv")], str(out), SMALL, progress=False)
    assert [r.skipped for r in report.results if r.ok] == [True, False]
    assert [json.loads(line)["output"] for line in (out / RECORDS).read_text().splitlines()[-1:]] == ["run/b.mp4"]


def test_parallel_run_gives_the_same_outputs(dataset, tmp_path):
    one = prepare_dataset([str(dataset / "train.csv")], str(tmp_path / "one"), SMALL, workers=1, progress=False)
    two = prepare_dataset([str(dataset / "train.csv")], str(tmp_path / "two"), SMALL, workers=2, progress=False)
    assert [r.reason for r in one.results] == [r.reason for r in two.results]
    for name in ("walk/a.mp4", "run/b.mp4"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_frame_rate_change_keeps_the_duration(dataset, tmp_path):
    report = prepare_dataset([str(dataset / "walk")], str(tmp_path / "out"), replace(SMALL, fps=15), progress=False)
    output = report.results[0].output
    info = probe_video(output)
    assert (info.num_frames, info.fps, info.duration) == (NUM_FRAMES // 2, 15.0, pytest.approx(NUM_FRAMES / 30))
    assert decoded_indices(output) == list(range(0, NUM_FRAMES, 2))


def test_folder_input_mirrors_the_tree_and_skips_its_own_output(dataset, tmp_path):
    (dataset / "train.csv").unlink()
    out = dataset / "prepared"  # inside the input folder
    report = prepare_dataset([str(dataset)], str(out), SMALL, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4")) == ["run/b.mp4", "walk/a.mp4"]
    assert report.csv_files == {}
    again = prepare_dataset([str(dataset)], str(out), SMALL, progress=False)
    assert len(again.results) == 3  # a, b, corrupt: not the outputs


def test_verification_rejects_wrong_outputs(dataset, tmp_path):
    report = prepare_dataset([str(dataset / "walk")], str(tmp_path / "out"), SMALL, progress=False)
    output, source = report.results[0].output, probe_video(str(dataset / "walk" / "a.mp4"))
    assert verify_output(output, source, SMALL) == NUM_FRAMES
    with pytest.raises(PrepareError, match="output has 40 frames, expected 43.0"):
        verify_output(output, replace(source, num_frames=NUM_FRAMES + 3), SMALL)
    with pytest.raises(PrepareError, match="output lasts 1.333 s, source 1.500 s"):
        verify_output(output, replace(source, duration=1.5), SMALL)
    with pytest.raises(PrepareError, match="16 frames between keyframes, more than 8"):
        verify_output(output, source, replace(SMALL, keyint=8))
    truncate_file(output, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(PrepareError):
        verify_output(str(tmp_path / "cut.mp4"), source, SMALL)


def test_bad_inputs_and_settings_are_refused_by_name(dataset, tmp_path):
    write_indexed_video(dataset / "walk" / "a.avi", 4, codec="mpeg4", size=(64, 48))
    with pytest.raises(ValueError, match="a.avi and .*a.mp4 would both be written to"):
        prepare_dataset([str(dataset / "walk")], str(tmp_path / "out"), SMALL, progress=False)
    with pytest.raises(ValueError, match="short side must be even"):
        prepare_dataset([str(dataset / "train.csv")], str(tmp_path / "out"), EncodeSettings(33), progress=False)
    with pytest.raises(ValueError, match="would be overwritten by its output"):
        prepare_dataset([str(dataset / "walk")], str(dataset / "walk"), SMALL, progress=False)


def test_output_size_scales_the_short_side_and_keeps_sides_even():
    assert output_size(1280, 720, 320) == (568, 320)
    assert output_size(720, 1280, 320) == (320, 568)
    assert output_size(176, 144, 320) == (392, 320)
    assert output_size(176, 144, 320, upscale=False) == (176, 144)
    assert output_size(641, 273, 320, upscale=False) == (638, 272)
    assert output_size(1280, 720, 320, upscale=False) == (568, 320)


def test_command_line_lists_failures_and_exits_1(dataset, tmp_path, capsys):
    tool = load_tool("prepare_videos")
    args = [str(dataset / "train.csv"), "--out", str(tmp_path / "out"), "--short-side", "32", "--quiet"]
    assert tool.main(args + ["--workers", "1", "--time-clips", "1", "--clip", "4x2"]) == 1
    out = capsys.readouterr().out
    assert "2 of 4 videos prepared and verified" in out
    assert f"{dataset / 'run' / 'corrupt.mp4'}: source: truncated or corrupt video" in out
    assert "| a.mp4 | 64x48 |" in out and "| 42x32 |" in out
    assert tool.main([str(tmp_path / "none.csv"), "--out", str(tmp_path / "x")]) == 1
    assert "error: annotation file not found" in capsys.readouterr().err
    assert tool.main(args + ["--clip", "16"]) == 1
    assert "error: --clip must be frames x stride, like 16x4; got '16'" in capsys.readouterr().err
