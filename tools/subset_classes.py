#!/usr/bin/env python3
"""Writes a dataset of some classes of a CSV dataset, relabelled 0..k-1 in the order given (no video is copied).

    tools/subset_classes.py --src data/synthetic --classes grow,shrink,... --out data/synthetic_4 [--absolute-paths]

The new folder gets train/val/test CSV files listing the source videos (paths relative to it, or absolute) and a
classnames.txt; train on it with DATA.PATH_TO_DATA_DIR, DATA.CLASSNAMES and MODEL.NUM_CLASSES set to match (the
command prints them).
"""

import argparse
import os
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.data.class_subset import write_class_subset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="source dataset folder with {train,val,test}.csv")
    parser.add_argument("--classes", required=True, help="comma-separated class names, in the order of the new labels")
    parser.add_argument("--out", required=True, help="the new dataset folder (created)")
    parser.add_argument("--classnames", help="the source's class names (default: SRC/classnames.txt)")
    parser.add_argument("--prefix", default="", help="the source's DATA.PATH_PREFIX")
    parser.add_argument("--separator", default=" ", help="the source's DATA.PATH_LABEL_SEPARATOR (kept)")
    parser.add_argument("--absolute-paths", action="store_true", help="write absolute video paths")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: write(args), args.debug)


def write(args: argparse.Namespace) -> None:
    """Writes the subset and prints its labels, files and the overrides to train on it.

    Raises:
        FileNotFoundError, AnnotationError, ValueError: see :func:`~mvit_video.data.class_subset.write_class_subset`.
    """
    classes = [name.strip() for name in args.classes.split(",") if name.strip()]
    counts = write_class_subset(args.src, classes, args.out, args.classnames, args.prefix, args.separator,
                                args.absolute_paths)
    for label, name in enumerate(classes):
        print(f"{label:3d} {name}")
    for split, count in counts.items():
        written = os.path.join(args.out, f"{split}.csv") if count else "not written"
        print(f"{split}: {count} videos ({written})")
    print(f"train on it with: DATA.PATH_TO_DATA_DIR {args.out} DATA.CLASSNAMES "
          f"{os.path.join(args.out, 'classnames.txt')} MODEL.NUM_CLASSES {len(classes)}")


if __name__ == "__main__":
    sys.exit(main())
