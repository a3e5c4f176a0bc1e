#!/usr/bin/env python3
"""Predicts what happens in videos with a trained model: the top-k labels of each video, or a timeline.

    tools/predict.py VIDEO [VIDEO ...] --checkpoint NAME|PATH|URL [--cfg FILE] [--topk 5] [--views N]
                     [--classnames FILE] [--window SECONDS [--stride SECONDS]] [--annotate OUT.mp4] [--json OUT]
                     [--opts KEY VALUE ...]

    tools/predict.py my_video.mp4 --checkpoint mvitv2_s_16x4_k400 --topk 5       (weights from the registry)
    tools/predict.py my_video.mp4 --checkpoint output/demo/checkpoints/checkpoint_epoch_00004.pyth

The checkpoint is a file, an http(s) URL or a registry name (python -m mvit_video.weights lists them); downloads are
cached. Without --cfg, the config is the one the checkpoint stores, else the registry entry's; --cfg and --opts
override it. Without --checkpoint, --cfg's TEST.CHECKPOINT_FILE_PATH or its newest checkpoint is used.

Without --window, a video is classified from N temporal clips (default TEST.NUM_ENSEMBLE_VIEWS) x
TEST.NUM_SPATIAL_CROPS crops, as in the multi-view test, and the top-k labels are printed. With --window, windows of
that many seconds every --stride seconds (default: the window) cover the whole video, the last one ending at its
end; each is classified by one T x tau clip centred in it, and a timeline (start, end, label, probability) is
printed. The video is then decoded once, streaming: memory does not grow with its length.

--annotate writes a copy of the video with the label drawn on it (the whole video's label, or each window's),
decoding the video once more; with several videos, OUT is a folder that receives one VIDEO_NAME.mp4 per video.
Class names come from --classnames (a file, or kinetics400 / kinetics600), else the checkpoint, else the registry
entry, else the config's dataset (DATA.CLASSNAMES, classnames.txt, class folders). The model runs on
CUDA when available. A video that cannot be read is reported in one line on stderr and the others are still
processed; the exit status is then 1, as for a bad config, checkpoint or class-name file.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import _paths  # noqa: F401

import av

from mvit_video import cli
from mvit_video.annotate import annotate_video
from mvit_video.data.video import VideoDecodeError
from mvit_video.inference import Prediction, Timeline, predict, predict_timeline
from mvit_video.pretrained import LoadedModel, load_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--cfg", help="YAML config of the model (default: the checkpoint's own, or its registry "
                                      "entry's)")
    parser.add_argument("--checkpoint", help="a file (any layout load_checkpoint accepts), an http(s) URL or a "
                                             "registry name (default: --cfg's TEST.CHECKPOINT_FILE_PATH, else the "
                                             "newest checkpoint under its OUTPUT_DIR)")
    parser.add_argument("--topk", type=int, default=5, help="labels to print per video or window (default 5)")
    parser.add_argument("--views", type=int, help="temporal clips per video (default TEST.NUM_ENSEMBLE_VIEWS)")
    parser.add_argument("--classnames", help="class-name file, one per line, or kinetics400 / kinetics600")
    parser.add_argument("--window", type=float, help="predict windows of this many seconds along each video")
    parser.add_argument("--stride", type=float, help="seconds between window starts (default: the window)")
    parser.add_argument("--annotate", metavar="OUT", help="write a copy of the video with the label drawn on it")
    parser.add_argument("--json", metavar="OUT", help="also write the predictions to this JSON file")
    parser.add_argument("--batch-size", type=int, help="clips per forward pass (default TEST.BATCH_SIZE)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of the config")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses impossible combinations before anything is loaded."""
    if not args.cfg and not args.checkpoint:
        parser.error("name the model: --checkpoint (a file, URL or registry name) and/or --cfg")
    if args.topk < 1 or (args.views is not None and args.views < 1):
        parser.error("--topk and --views must be at least 1")
    if args.stride is not None and args.window is None:
        parser.error("--stride needs --window")
    if args.window is not None:
        stride = args.window if args.stride is None else args.stride
        if args.window <= 0 or stride <= 0:
            parser.error("--window and --stride must be positive")
        if stride > args.window:
            parser.error(f"--stride {stride} is longer than --window {args.window}: the windows would leave gaps")
        if args.views is not None:
            parser.error("--views applies to whole-video prediction; with --window each window is one clip")
    if args.annotate and len(args.videos) > 1:
        stems = [Path(v).stem for v in args.videos]
        if len(set(stems)) < len(stems):
            parser.error("--annotate with several videos writes OUT/VIDEO_NAME.mp4: two videos have the same name")


def annotation_path(video: str, out: str, num_videos: int) -> str:
    """``out`` itself for one video, else ``out/VIDEO_NAME.mp4`` (also when ``out`` is an existing folder)."""
    if num_videos == 1 and not os.path.isdir(out):
        return out
    return os.path.join(out, f"{Path(video).stem}.mp4")


def load(args: argparse.Namespace) -> LoadedModel:
    """The model in eval mode on its device, with its config and class names; raises on a bad config, checkpoint or
    names (see mvit_video.load_model)."""
    return load_model(args.checkpoint, args.cfg, args.opts, args.classnames, args.device)


def print_prediction(video: str, prediction: Prediction) -> None:
    print(f"{video}: {prediction.num_views} views")
    for rank, (label, score) in enumerate(zip(prediction.labels, prediction.scores), 1):
        print(f"  {rank:2d}. {label:<32s} {100 * score:6.2f}%")


def print_timeline(video: str, timeline: Timeline, window: float, stride: float) -> None:
    print(f"{video}: {len(timeline.windows)} windows of {window:g} s every {stride:g} s over {timeline.duration:.2f} s "
          f"({timeline.num_frames} frames at {timeline.fps:.2f} fps)")
    print(f"  {'start':>8s} {'end':>8s}  {'label':<32s} {'prob':>7s}")
    for w in timeline.windows:
        print(f"  {w.start:8.2f} {w.end:8.2f}  {w.label:<32s} {100 * w.score:6.2f}%")


def run_one(video: str, args: argparse.Namespace, cfg, model, names: List[str], progress: bool) -> Dict:
    """Predicts (and annotates) one video, prints the result and returns its JSON record.

    Raises VideoDecodeError for an unreadable video, OSError or FFmpegError when the annotation cannot be written.
    """
    if args.window is None:
        result = predict(video, model, cfg, args.topk, names, args.views, batch_size=args.batch_size)
        print_prediction(video, result)
        record = {"video": video, "prediction": result.to_dict()}
    else:
        stride = args.window if args.stride is None else args.stride
        result = predict_timeline(video, model, cfg, args.window, stride, args.topk, names,
                                  batch_size=args.batch_size, progress=progress)
        print_timeline(video, result, args.window, stride)
        record = {"video": video, "timeline": result.to_dict()}
    if args.annotate:
        out = annotation_path(video, args.annotate, len(args.videos))
        annotate_video(video, out, result, progress)
        print(f"  annotated copy: {out}")
        record["annotated"] = out
    return record


def failure_reason(err: Exception) -> str:
    if isinstance(err, VideoDecodeError):
        return err.reason
    return f"cannot write the annotated copy: {err}"


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: predict_videos(args), args.debug)


def predict_videos(args: argparse.Namespace) -> int:
    """Predicts every video; one that cannot be read is reported and the others go on. Returns the exit status."""
    loaded = load(args)
    progress = sys.stderr.isatty()
    records, failed = [], 0
    for video in args.videos:
        try:
            records.append(run_one(video, args, loaded.cfg, loaded.model, loaded.classnames, progress))
        except (VideoDecodeError, OSError, av.error.FFmpegError) as err:
            reason = failure_reason(err)
            print(f"error: {video}: {reason}", file=sys.stderr)
            records.append({"video": video, "error": reason})
            failed += 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.cfg or loaded.config_source, "checkpoint": loaded.checkpoint, "videos": records},
                      f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
