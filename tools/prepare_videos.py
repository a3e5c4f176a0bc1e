#!/usr/bin/env python3
"""Re-encodes a dataset for training: short side 320, a keyframe at least every 16 frames, each output verified.

    tools/prepare_videos.py data/k400/train.csv data/k400/val.csv --out data/k400_320 [--workers 8]
    tools/prepare_videos.py data/my_videos --out data/my_videos_320        (a folder, e.g. one folder per class)

Outputs mirror the inputs' tree under --out as .mp4 (H.264, no audio). Each input CSV gets a namesake in --out that
lists the verified outputs with the same labels, so training only needs DATA.PATH_TO_DATA_DIR pointed at --out.
Run it again to resume: verified outputs of the same sources and settings are skipped. Videos that fail are listed
with the reason (also in --out/prepare_failures.txt) and left out of the new CSV files; the exit status is then 1.
--time-clips N then times N evenly spaced training clips per video, decoded from the source and from the output.
"""

import argparse
import os
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.data.clip_sampling import ClipSpec
from mvit_video.data.prepare import EncodeSettings, PrepareReport, prepare_dataset, time_clip_decoding
from mvit_video.machine import describe_machine


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="Kinetics-style CSV files (path label) and/or folders of videos")
    parser.add_argument("--out", required=True, help="output folder (created; an earlier run there is resumed)")
    parser.add_argument("--short-side", type=int, default=320, help="short side of the outputs, pixels (even)")
    parser.add_argument("--no-upscale", action="store_true",
                        help="keep the size of videos whose short side is already below --short-side")
    parser.add_argument("--keyint", type=int, default=16, help="at most this many frames from keyframe to keyframe")
    parser.add_argument("--fps", type=float, default=None, help="output frame rate (default: the source's)")
    parser.add_argument("--crf", type=int, default=18, help="x264 constant rate factor (lower: larger, better)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="encoding processes")
    parser.add_argument("--separator", default=" ", help="CSV separator between path and label")
    parser.add_argument("--prefix", default="", help="prefix joined to the CSV paths (DATA.PATH_PREFIX)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--time-clips", type=int, default=0, metavar="N",
                        help="then time N training clips per video, before and after preparation")
    parser.add_argument("--clip", default="16x4", help="T x tau of the timed clips")
    parser.add_argument("--backend", default=None, help="decoding backend of the timing (default: the decoder's)")
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def parse_clip(text: str) -> ClipSpec:
    """``"16x4"`` -> ClipSpec(16, 4); raises ValueError naming --clip otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--clip must be frames x stride, like 16x4; got {text!r}")
    return ClipSpec(int(parts[0]), int(parts[1]))


def print_report(report: PrepareReport, out_dir: str) -> None:
    total, failed = len(report.results), report.failed
    print(f"{total - len(failed)} of {total} videos prepared and verified in {out_dir} "
          f"({report.skipped} already done) in {report.seconds:.1f} s")
    for source_csv, new_csv in report.csv_files.items():
        print(f"  {source_csv} -> {new_csv}")
    if failed:
        print(f"{len(failed)} failed (left out of the new CSV files; listed in {report.failures_file}):")
        for result in failed:
            print(f"  {result.source}: {result.reason}")


def print_timing(report: PrepareReport, clip: ClipSpec, clips: int, backend) -> None:
    pairs = [(r.source, r.output) for r in report.results if r.ok]
    rows = time_clip_decoding(pairs, clip, clips, backend=backend)
    print(f"\nmachine: {describe_machine()}; decode of one {clip.num_frames}x{clip.sampling_rate} training clip, "
          f"median CPU ms of {clips} evenly spaced clips x 3, source and output in turn")
    print("| video | source | ms | prepared | ms | speed-up |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {os.path.basename(row.source)} | {row.source_size[0]}x{row.source_size[1]} | {row.source_ms:.1f} "
              f"| {row.output_size[0]}x{row.output_size[1]} | {row.output_ms:.1f} "
              f"| {row.source_ms / row.output_ms:.2f}x |")


def prepare(args: argparse.Namespace) -> int:
    """Prepares the dataset, prints the report (and the timing); returns 1 when some video failed, else 0."""
    clip = parse_clip(args.clip)
    settings = EncodeSettings(args.short_side, args.keyint, args.fps, args.crf, args.preset, not args.no_upscale)
    report = prepare_dataset(args.inputs, args.out, settings, args.workers, args.separator, args.prefix,
                             progress=not args.quiet)
    print_report(report, args.out)
    if args.time_clips:
        print_timing(report, clip, args.time_clips, args.backend)
    return 1 if report.failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: prepare(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
