#!/usr/bin/env python3
"""Re-writes an MViT checkpoint (PySlowFast .pyth, torchvision or pytorchvideo state dict) in mvit_video's layout.

    tools/convert_checkpoint.py IN OUT [--cfg FILE [--opts KEY VALUE ...]]

With --cfg, the result is also loaded strictly into the model the config builds, so a mismatch is found now.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.checkpoint import convert_checkpoint, load_checkpoint
from mvit_video.config import load_config
from mvit_video.models import build_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="checkpoint to read (weights-only files only)")
    parser.add_argument("dst", help="where to write the converted checkpoint")
    parser.add_argument("--cfg", help="config of the model the checkpoint must fit")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: convert(args), args.debug)


def convert(args: argparse.Namespace) -> None:
    """Converts --src to --dst and, with --cfg, loads the result into the config's model."""
    fmt = convert_checkpoint(args.src, args.dst)
    print(f"{args.src}: {fmt} layout -> {args.dst} (mvit_video layout)")
    if args.cfg:
        report = load_checkpoint(args.dst, build_model(load_config(args.cfg, args.opts)))
        print(f"checked: all {report.num_tensors} tensors fit the model of {args.cfg}")


if __name__ == "__main__":
    sys.exit(main())
