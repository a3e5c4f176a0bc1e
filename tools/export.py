#!/usr/bin/env python3
"""Exports a model for a fixed clip size and checks the export against the eager model.

    tools/export.py --checkpoint NAME|PATH|URL [--cfg FILE] --format torchscript|onnx --out FILE [--opts KEY VALUE ...]

The checkpoint is a file, an http(s) URL or a registry name; without --cfg its stored config (or its registry entry's)
builds the model.

The clip size is the config's training size (DATA.NUM_FRAMES x DATA.TRAIN_CROP_SIZE^2), batch 1. After exporting, the
exported model runs on a random clip (TorchScript always; ONNX through onnxruntime when it is installed, as by
pip install -e ".[onnx]") and the max absolute logit difference is printed; the command fails above 1e-4.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video.checkpoint import CheckpointError
from mvit_video.config import ConfigError
from mvit_video.export import FORMATS, ExportError, export_model
from mvit_video.pretrained import load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", help="config of the model (default: the checkpoint's own, or its registry entry's)")
    parser.add_argument("--checkpoint", required=True,
                        help="a file (any layout load_checkpoint accepts), an http(s) URL or a registry name")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args(argv)
    try:
        loaded = load_model(args.checkpoint, args.cfg, args.opts, device="cpu")
        cfg, model = loaded.cfg, loaded.model
        size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
        diff, ran = export_model(model, size, args.format, args.out)
    except (ConfigError, FileNotFoundError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ExportError as err:
        print(f"error: {args.cfg or args.checkpoint}: {err}", file=sys.stderr)
        return 1
    if ran:
        print(f"{args.out}: {args.format}, clip 1x{'x'.join(map(str, size))}; max |logit diff| vs eager: {diff:.2e}")
    else:
        print(f"{args.out}: {args.format} written; not checked (install onnxruntime to run it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
