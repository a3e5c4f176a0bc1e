"""Annotated copies of videos: the predicted label and its probability in a banner across the top of every frame.

Writing streams, as predicting along a video does: the source is decoded a second time, front to back
(:func:`.data.streaming.iter_frames`), and each frame is captioned and encoded at once, so memory does not depend on
the video's length. The copy has every frame of the source at its size, encoded with libx264 (yuv420p; yuv444p when
a side is odd, which 4:2:0 cannot hold) at the source's average frame rate, without audio. It is written under a
temporary name and renamed when complete, so a failure leaves no partial file behind.
"""

import os
from fractions import Fraction
from typing import Callable, Dict, Union

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .data.video import probe_video
from .data.streaming import iter_frames
from .inference import Prediction, Timeline

__all__ = ["annotate_video", "caption", "write_captioned"]

# The banner darkens the frame under it to this fraction, and the text is white.
_SHADE = 0.35


def caption(prediction: Prediction) -> str:
    """The text drawn for a prediction: top label and its probability."""
    return f"{prediction.label}  {100 * prediction.score:.1f}%"


def annotate_video(
    video: Union[str, os.PathLike], out: Union[str, os.PathLike], result: Union[Prediction, Timeline],
    progress: bool = False,
) -> int:
    """Writes a copy of ``video`` to ``out`` captioned with ``result``: for a :class:`Prediction`, its top label on
    every frame; for a :class:`Timeline`, on each frame the label of the window whose centre is nearest to it.

    Returns the number of frames written; raises as :func:`write_captioned`.
    """
    if isinstance(result, Prediction):
        text = caption(result)
        return write_captioned(video, out, lambda index: text, progress)
    return write_captioned(video, out, lambda index: caption(result.window_at(index / result.fps).prediction), progress)


def write_captioned(
    video: Union[str, os.PathLike], out: Union[str, os.PathLike], caption_of: Callable[[int], str],
    progress: bool = False,
) -> int:
    """Writes a copy of ``video`` to ``out`` with ``caption_of(frame index)`` drawn on each frame.

    Returns:
        The number of frames written.
    Raises:
        VideoDecodeError: ``video`` cannot be read. OSError, av.error.FFmpegError: ``out`` cannot be written.
    """
    video, out = os.fspath(video), os.fspath(out)
    info = probe_video(video)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    stem, extension = os.path.splitext(out)
    partial = f"{stem}.partial{extension}"  # same extension: the container format follows it
    banner = _Banner(info.width, info.height)
    bar = tqdm(total=info.num_frames, desc=f"annotate {os.path.basename(video)}", unit="frame", disable=not progress)
    count = 0
    try:
        with av.open(partial, mode="w") as container:
            stream = container.add_stream(
                "libx264", rate=Fraction(info.fps).limit_denominator(1001), options={"crf": "18", "preset": "veryfast"}
            )
            stream.width, stream.height = info.width, info.height
            stream.pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
            for index, frame in enumerate(iter_frames(video)):
                image = banner.draw(frame, caption_of(index))
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
                count += 1
                bar.update()
            container.mux(stream.encode(None))
        os.replace(partial, out)
    finally:
        bar.close()
        if os.path.exists(partial):
            os.remove(partial)
    return count


class _Banner:
    """Draws white text on a darkened strip across the top of ``width`` x ``height`` frames."""

    def __init__(self, width: int, height: int):
        self.width = width
        self.height = max(12, round(height / 16))
        self.font = ImageFont.load_default(size=max(8, round(self.height * 0.7)))
        self._masks: Dict[str, np.ndarray] = {}

    def _text_alpha(self, text: str) -> np.ndarray:
        """float32 ``(banner height, width, 1)`` coverage of the text, 0..1 (the last text's only is kept)."""
        if text not in self._masks:
            image = Image.new("L", (self.width, self.height), 0)
            draw = ImageDraw.Draw(image)
            _, top, _, bottom = draw.textbbox((0, 0), text, font=self.font)
            draw.text((self.height // 3, (self.height - bottom - top) // 2), text, fill=255, font=self.font)
            self._masks = {text: np.asarray(image, dtype=np.float32)[..., None] / 255}
        return self._masks[text]

    def draw(self, frame: np.ndarray, text: str) -> np.ndarray:
        """uint8 ``(H, W, 3)`` RGB frame -> the same frame with the banner (drawn in place where it is writeable)."""
        if not frame.flags.writeable:
            frame = frame.copy()
        strip = frame[: self.height].astype(np.float32) * _SHADE
        alpha = self._text_alpha(text)[: len(strip)]
        frame[: self.height] = np.rint(strip + (255 - strip) * alpha).astype(np.uint8)
        return frame
