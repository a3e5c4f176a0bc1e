#!/usr/bin/env python3
"""Exports a model for a fixed clip size and checks the export against the eager model.

    tools/export.py --cfg FILE --checkpoint PATH --format torchscript|onnx --out FILE [--no-check]
                    [--opts KEY VALUE ...]

The clip size is the config's training size (DATA.NUM_FRAMES x DATA.TRAIN_CROP_SIZE^2), batch 1. After exporting, the
exported model runs on a random clip (TorchScript in torch; ONNX in onnxruntime, installed by
pip install -e ".[onnx]") and the max absolute logit difference is printed; the command fails above 1e-4. An export
that cannot be checked (onnxruntime missing) fails before writing anything, unless --no-check is given.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.checkpoint import load_checkpoint
from mvit_video.config import load_config
from mvit_video.export import FORMATS, ExportError, export_model
from mvit_video.models import build_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--checkpoint", required=True, help="any layout load_checkpoint accepts")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-check", action="store_true", help="write the export without running it")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> None:
    """Builds, loads and exports the model; prints what was written and how well it matches."""
    cfg = load_config(args.cfg, args.opts)
    model = build_model(cfg)
    load_checkpoint(args.checkpoint, model)
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    try:
        diff, ran = export_model(model, size, args.format, args.out, check=not args.no_check)
    except ExportError as err:
        raise ExportError(f"{args.cfg}: {err}") from err
    if ran:
        print(f"{args.out}: {args.format}, clip 1x{'x'.join(map(str, size))}; max |logit diff| vs eager: {diff:.2e}")
    else:
        print(f"{args.out}: {args.format} written; not checked (--no-check)")


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: export(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
