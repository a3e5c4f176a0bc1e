"""Small video files for the dataset tests: good synthetic clips and one file per kind of bad input."""

from pathlib import Path
from typing import Dict

import numpy as np

from mvit_video.data.synthetic import render_clip, write_video

from .indexed_video import truncate_file, write_audio_only


def write_clip(path, classname: str = "move_right", seed: int = 0, size: int = 64, num_frames: int = 48,
               fps: int = 30) -> str:
    """Writes one synthetic clip and returns its path as a string."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_video(str(path), render_clip(classname, np.random.default_rng(seed), size, num_frames), fps)
    return str(path)


def write_bad_files(folder) -> Dict[str, str]:
    """One file per bad input, keyed by the decoder's reason for it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    good = write_clip(folder / "source.mp4", seed=99)
    return {
        "file not found": str(folder / "missing.mp4"),
        "empty file": str(folder / "empty.mp4"),
        "not a video file": str(folder / "text.mp4"),
        "no video stream": str(write_audio_only(folder / "audio.mp4")),
        "truncated or corrupt video": str(truncate_file(good, folder / "truncated.mp4", 0.5)),
    }
