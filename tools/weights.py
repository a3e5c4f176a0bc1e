#!/usr/bin/env python3
"""Lists the published Kinetics MViT checkpoints that --checkpoint and TRAIN/TEST.CHECKPOINT_FILE_PATH take by name.

    tools/weights.py            the table: name, classes, top-1 / top-5 and views, params, layout, config
    tools/weights.py NAME       one entry: URL, checksum, source, notes and the cache path of its file
"""

import sys

import _paths  # noqa: F401

from mvit_video.weights import main

if __name__ == "__main__":
    sys.exit(main())
