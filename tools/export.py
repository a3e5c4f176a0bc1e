#!/usr/bin/env python3
"""Exports a model for a fixed clip size and checks the export against the eager model.

    tools/export.py --checkpoint NAME|PATH|URL [--cfg FILE] --format torchscript|onnx --out FILE [--no-check]
                    [--opts KEY VALUE ...]

The checkpoint is a file, an http(s) URL or a registry name; without --cfg its stored config (or its registry entry's)
builds the model.

The clip size is the config's training size (DATA.NUM_FRAMES x DATA.TRAIN_CROP_SIZE^2), batch 1. After exporting, the
exported model runs on a random clip (TorchScript in torch; ONNX in onnxruntime, installed by
pip install -e ".[onnx]") and the max absolute logit difference is printed; the command fails above 1e-4. An export
that cannot be checked (onnxruntime missing) fails before writing anything, unless --no-check is given.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.export import FORMATS, ExportError, export_model
from mvit_video.pretrained import load_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", help="config of the model (default: the checkpoint's own, or its registry entry's)")
    parser.add_argument("--checkpoint", required=True,
                        help="a file (any layout load_checkpoint accepts), an http(s) URL or a registry name")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-check", action="store_true", help="write the export without running it")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> None:
    """Builds, loads and exports the model; prints what was written and how well it matches."""
    loaded = load_model(args.checkpoint, args.cfg, args.opts, device="cpu")
    cfg, model = loaded.cfg, loaded.model
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    try:
        diff, ran = export_model(model, size, args.format, args.out, check=not args.no_check)
    except ExportError as err:
        raise ExportError(f"{args.cfg or args.checkpoint}: {err}") from err
    if ran:
        print(f"{args.out}: {args.format}, clip 1x{'x'.join(map(str, size))}; max |logit diff| vs eager: {diff:.2e}")
    else:
        print(f"{args.out}: {args.format} written; not checked (--no-check)")


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: export(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
