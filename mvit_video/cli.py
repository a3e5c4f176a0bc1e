"""What every script in tools/ shares: the project's own errors become one line, ``error: ...``, and exit status 1.

A tool parses its arguments, adds ``--debug`` with :func:`add_debug_flag` and hands its work to :func:`run`. Errors
that describe bad input (a config key, a data file, a checkpoint, a missing optional package, a file that cannot be
read) are printed without a traceback; anything else is a bug and keeps its traceback. ``--debug`` shows the traceback
of every error.
"""

import argparse
import sys
from typing import Callable, Optional

from .config import ConfigError
from .data.video import VideoDecodeError
from .data.kinetics import AnnotationError
from .errors import MissingPackageError
from .export import ExportError
from .weight_files import CheckpointError

# ValueError: the package raises it for a bad value handed down from a config or a command line (a crop larger than
# the frame, an AUG.AA_TYPE string it cannot parse). OSError: a file that is missing, unreadable or cannot be written.
USER_ERRORS = (
    ConfigError,
    CheckpointError,
    AnnotationError,
    VideoDecodeError,
    ExportError,
    MissingPackageError,
    ValueError,
    OSError,
)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Adds ``--debug``: show the traceback of an error instead of one line."""
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def report(err: BaseException) -> None:
    """Prints ``error: <message>`` on stderr."""
    print(f"error: {err}", file=sys.stderr)


def run(body: Callable[[], Optional[int]], debug: bool = False) -> int:
    """Runs a tool's work and returns its exit status.

    Returns:
        What ``body`` returns (0 for None); 1 after printing one line for an error in :data:`USER_ERRORS`.
    Raises:
        Any other exception (a bug), and with ``debug`` every exception, with its traceback.
    """
    try:
        status = body()
    except USER_ERRORS as err:
        if debug:
            raise
        report(err)
        return 1
    return 0 if status is None else status
