"""Writes the synthetic video dataset (the default data of ``make demo``); see DATASET.md for its classes.

    python tools/make_synthetic_dataset.py --out data/synthetic [--seed 0] [--num-train 840] [--num-test 120]
                                           [--if-stale]

With --if-stale (what `make demo` uses), a folder whose dataset.json says it was made by this generator version with
the same options is left as it is; anything else (no manifest, an older generator, other options) is regenerated.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mvit_video import cli  # noqa: E402
from mvit_video.data.synthetic import (  # noqa: E402
    CLASSNAMES,
    MANIFEST,
    dataset_spec,
    make_synthetic_dataset,
    stale_reason,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (created; existing files are overwritten)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same videos")
    parser.add_argument("--num-train", type=int, default=840, help="training clips (classes in turn)")
    parser.add_argument("--num-val", type=int, default=None, help="validation clips (default: --num-test)")
    parser.add_argument("--num-test", type=int, default=120, help="test clips")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels (even)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip, at --fps")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--if-stale", action="store_true",
                        help=f"do nothing if --out holds a {MANIFEST} of this generator version and these options")
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: generate(args), args.debug)


def generate(args: argparse.Namespace) -> None:
    """Writes the dataset (unless --if-stale finds it current) and prints what it wrote."""
    num_val = args.num_test if args.num_val is None else args.num_val
    spec = dataset_spec(args.seed, args.num_train, num_val, args.num_test, args.size, args.frames, args.fps)
    if args.if_stale:
        reason = stale_reason(args.out, spec)
        if reason is None:
            print(f"{args.out} is up to date (generator version {spec['generator_version']}); not regenerated")
            return
        print(f"regenerating {args.out}: {reason}")
    start = time.perf_counter()
    csv_paths = make_synthetic_dataset(
        args.out,
        seed=args.seed,
        num_train=args.num_train,
        num_val=num_val,
        num_test=args.num_test,
        size=args.size,
        num_frames=args.frames,
        fps=args.fps,
        workers=args.workers,
        progress=not args.quiet,
    )
    total = args.num_train + num_val + args.num_test
    print(f"wrote {total} clips of {len(CLASSNAMES)} classes in {time.perf_counter() - start:.1f} s:")
    for split, path in csv_paths.items():
        print(f"  {split}: {path}")
    print(f"  class names: {os.path.join(args.out, 'classnames.txt')}")


if __name__ == "__main__":
    sys.exit(main())
