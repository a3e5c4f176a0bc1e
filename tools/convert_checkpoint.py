#!/usr/bin/env python3
"""Re-writes an MViT checkpoint (PySlowFast .pyth, torchvision or pytorchvideo state dict) in mvit_video's layout.

    tools/convert_checkpoint.py IN OUT [--cfg FILE [--opts KEY VALUE ...]]

IN is a file, an http(s) URL or a registry name (downloads are cached, see mvit_video.hub).

With --cfg, the result is first loaded strictly into the model the config builds, and OUT is written only if it fits.
OUT is written whole or not at all, with its SHA-256 in OUT.sha256.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.config import load_config
from mvit_video.hub import resolve_checkpoint
from mvit_video.models import build_model
from mvit_video.weight_layouts import convert_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="checkpoint to read (weights-only files only): a file, an http(s) URL or a "
                                    "registry name")
    parser.add_argument("dst", help="where to write the converted checkpoint")
    parser.add_argument("--cfg", help="config of the model the checkpoint must fit")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: convert(args), args.debug)


def convert(args: argparse.Namespace) -> None:
    """Converts --src to --dst; with --cfg, the result must fit the config's model before it is written."""
    model = build_model(load_config(args.cfg, args.opts)) if args.cfg else None
    fmt = convert_checkpoint(resolve_checkpoint(args.src)[0], args.dst, model)
    if args.cfg:
        print(f"checked: all tensors fit the model of {args.cfg}")
    print(f"{args.src}: {fmt} layout -> {args.dst} (mvit_video layout)")


if __name__ == "__main__":
    sys.exit(main())
