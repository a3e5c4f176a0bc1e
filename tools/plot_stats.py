#!/usr/bin/env python3
"""Training curves of one or several runs in one PNG, to compare variants.

    tools/plot_stats.py OUTPUT_DIR [OUTPUT_DIR ...] [--out curves.png]

Reads each run's stats.jsonl (written by tools/run_net.py) and draws training loss, training top-1 and validation
top-1 per epoch, one line per run, labelled by the folder's name.
"""

import argparse
import os
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.engine.stats import plot_curves


def plot(args: argparse.Namespace) -> None:
    """Draws the runs' curves into --out and prints its path.

    Raises:
        FileNotFoundError: a folder without stats.jsonl.
    """
    runs = {}
    for folder in args.runs:
        path = os.path.join(folder, "stats.jsonl")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file (is {folder} an OUTPUT_DIR of tools/run_net.py?)")
        runs[os.path.basename(os.path.normpath(folder))] = path
    print(plot_curves(runs, args.out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="OUTPUT_DIR folders that hold a stats.jsonl")
    parser.add_argument("--out", default="curves.png", help="PNG to write")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: plot(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
