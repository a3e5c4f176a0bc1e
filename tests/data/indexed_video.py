"""Write small test videos whose frames carry their own index, and read the index back.

Frame ``i`` shows the 16-bit binary code of ``i`` as a 4x4 grid of black/white blocks (bit 0 in the
top-left cell, row-major). The blocks are large and saturated, so the code survives lossy
compression; :func:`read_index` samples the centre of every block. Each ``write_*`` function returns
the path it wrote, so tests can check that frame ``k`` of a decode really is frame ``k`` of the file.

This module is imported by several test files: keep its functions' names and signatures stable.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

GRID = 4  # 4x4 blocks -> 16 bits, enough for any test video length
BITS = GRID * GRID
WIDTH, HEIGHT = 128, 96


def index_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Return the uint8 (height, width, 3) RGB image that encodes ``index`` as a block pattern."""
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    bits = np.array([(index >> b) & 1 for b in range(BITS)], dtype=np.uint8).reshape(GRID, GRID)
    cell_h, cell_w = height // GRID, width // GRID
    blocks = np.kron(bits * 255, np.ones((cell_h, cell_w), dtype=np.uint8))
    image = np.zeros((height, width), dtype=np.uint8)
    image[: blocks.shape[0], : blocks.shape[1]] = blocks
    return np.repeat(image[:, :, None], 3, axis=2)


def _textured(image: np.ndarray, index: int) -> np.ndarray:
    """``image`` with a smooth noise texture of +-40 that moves 3 pixels right per frame (the index still reads)."""
    height, width = image.shape[:2]
    noise = np.random.default_rng(0).integers(-40, 41, size=(height // 4 + 1, width // 4 + 1, 3))
    noise = np.kron(noise, np.ones((4, 4, 1), dtype=np.int64))[:height, : width + 0]
    shifted = np.roll(noise, 3 * index, axis=1)
    return np.clip(image.astype(np.int64) + shifted, 0, 255).astype(np.uint8)


def read_index(frame: np.ndarray) -> int:
    """Return the index encoded in a decoded uint8 (H, W, 3) frame written by this module."""
    frame = np.asarray(frame)
    height, width = frame.shape[:2]
    cell_h, cell_w = height // GRID, width // GRID
    gray = frame.astype(np.float32).mean(axis=2)
    index = 0
    for bit in range(BITS):
        row, col = divmod(bit, GRID)
        # Sample the middle half of the block: edges ring after lossy compression.
        y0, x0 = row * cell_h + cell_h // 4, col * cell_w + cell_w // 4
        centre = gray[y0 : y0 + cell_h // 2, x0 : x0 + cell_w // 2]
        if centre.mean() > 127.5:
            index |= 1 << bit
    return index


def write_indexed_video(
    path: str | Path,
    num_frames: int = 90,
    *,
    codec: str = "libx264",
    fps: int = 30,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    texture: bool = False,
) -> Path:
    """Encode frames 0..num_frames-1 with PyAV and return the path written.

    ``pts`` (in ``time_base`` units, default 1/fps) sets each frame's timestamp, for offset or
    variable-frame-rate files; by default frame ``i`` gets pts ``i``. ``texture`` adds a moving noise texture
    (motion the encoder must predict, so that a decode from the wrong reference shows).
    """
    path = Path(path)
    time_base = time_base or Fraction(1, fps)
    pts = list(range(num_frames)) if pts is None else list(pts)
    if len(pts) != num_frames:
        raise ValueError("need one pts per frame")
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        for index, frame_pts in enumerate(pts):
            image = index_frame(index, *size)
            if texture:
                image = _textured(image, index)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = frame_pts
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_h264_bframes(path: str | Path, num_frames: int = 120) -> Path:
    """H.264 with 3 B-frames and a keyframe every 30 frames (pts order differs from decode order)."""
    params = "bframes=3:b-pyramid=normal:keyint=30:min-keyint=30:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_pts_offset(path: str | Path, num_frames: int = 90, offset: int = 45) -> Path:
    """H.264 with B-frames in Matroska whose first frame has pts ``offset`` (1.5 s at 30 fps), not 0."""
    params = "bframes=2:keyint=20:min-keyint=20:scenecut=0"
    pts = [offset + i for i in range(num_frames)]
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params}, pts=pts)


def write_vfr(path: str | Path, num_frames: int = 100, seed: int = 0) -> Path:
    """H.264 in Matroska with irregular frame durations (10..60 ms), i.e. variable frame rate."""
    steps = np.random.default_rng(seed).integers(10, 61, size=num_frames)
    pts = np.concatenate([[0], np.cumsum(steps[:-1])]).tolist()
    params = "bframes=2:keyint=25:min-keyint=25:scenecut=0"
    return write_indexed_video(
        path, num_frames, options={"crf": "18", "x264-params": params}, pts=pts, time_base=Fraction(1, 1000)
    )


def write_mpegts(path: str | Path, num_frames: int = 90) -> Path:
    """H.264 with B-frames in MPEG-TS, whose timestamps start at 0.067 s rather than 0."""
    params = "bframes=2:keyint=30:min-keyint=30:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_mpeg4_sparse_gop(path: str | Path, num_frames: int = 150) -> Path:
    """MPEG-4 part 2 in MP4 with a keyframe only every 60 frames (long forward decodes after a seek)."""
    return write_indexed_video(path, num_frames, codec="mpeg4", options={"g": "60", "qscale": "2"})


def write_faststart(path: str | Path, num_frames: int = 120) -> Path:
    """H.264 with B-frames in an MP4 whose index (moov) is at the front, so a cut file still opens."""
    params = "bframes=2:keyint=30:min-keyint=30:scenecut=0"
    return write_indexed_video(
        path,
        num_frames,
        options={"crf": "18", "x264-params": params},
        container_options={"movflags": "faststart"},
    )


def write_lying_keyframes(path: str | Path, num_frames: int = 120, every: int = 20) -> Path:
    """MP4 whose sync-sample table also marks P-frames 10, 30, 50, ... as keyframes.

    The real keyframes are 0 and 60. A reader that trusts the container's index seeks onto a
    P-frame and returns the wrong frame (decord 0.6.0 does).
    """
    path = Path(path)
    source = path.with_name(path.stem + "_source.mkv")
    params = "bframes=0:keyint=60:min-keyint=60:scenecut=0"
    write_indexed_video(source, num_frames, options={"crf": "18", "x264-params": params})
    with av.open(str(source)) as inp, av.open(str(path), mode="w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        packets = (packet for packet in inp.demux(in_stream) if packet.size)
        for number, packet in enumerate(packets):
            if number % every == every // 2:
                packet.is_keyframe = True
            packet.stream = out_stream
            out.mux(packet)
    source.unlink()
    return path


def write_raw_h264(path: str | Path, num_frames: int = 60) -> Path:
    """A raw H.264 elementary stream (.h264): packets carry no timestamps at all."""
    params = "bframes=2:keyint=20:min-keyint=20:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_10bit(path: str | Path, num_frames: int = 60) -> Path:
    """H.264 High 10 (yuv420p10le): RGB conversion of 10-bit frames differs between libraries."""
    path = Path(path)
    params = "bframes=2:keyint=20:min-keyint=20:scenecut=0"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "18", "x264-params": params})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p10le"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(index), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncate_file(source: str | Path, dest: str | Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``source``'s bytes to ``dest`` and return ``dest``."""
    data = Path(source).read_bytes()
    dest = Path(dest)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def write_lying_avi(path: str | Path, num_frames: int = 60, claimed_frames: int = 200) -> Path:
    """MPEG-4 in AVI whose header claims ``claimed_frames`` frames but which holds ``num_frames``."""
    path = write_indexed_video(path, num_frames, codec="mpeg4", options={"g": "15", "qscale": "2"})
    data = bytearray(path.read_bytes())
    claimed = struct.pack("<I", claimed_frames)
    # 'avih' payload: dwTotalFrames is the 5th DWORD; the video 'strh' payload: dwLength is at byte 32.
    avih = data.index(b"avih") + 8
    data[avih + 16 : avih + 20] = claimed
    strh = data.index(b"strh") + 8
    assert data[strh : strh + 4] == b"vids", "expected the video stream header first"
    data[strh + 32 : strh + 36] = claimed
    path.write_bytes(bytes(data))
    return path


def write_audio_only(path: str | Path, seconds: float = 0.5) -> Path:
    """Write an AAC-in-MP4 file with no video stream and return its path."""
    path = Path(path)
    rate = 16000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = np.zeros((1, int(rate * seconds)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_intra_refresh(path: str | Path, num_frames: int = 150) -> Path:
    """H.264 MP4 with periodic intra refresh: the only IDR is frame 0, yet the container flags recovery points as
    keyframes. Seeking to them lands on P-frames whose picture is only rebuilt over the next frames (decord 0.6.0
    and torchcodec return wrong frames here)."""
    params = "intra-refresh=1:keyint=30:bframes=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params}, texture=True)


def write_open_gop(path: str | Path, num_frames: int = 150) -> Path:
    """H.264 with open GOPs: non-IDR I-frames every 30 frames, followed in decode order by B-frames shown before
    them that reference the previous GOP."""
    params = "open-gop=1:keyint=30:min-keyint=30:bframes=3:b-pyramid=normal:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_b_pyramid(path: str | Path, num_frames: int = 150) -> Path:
    """H.264 with 5 B-frames in a strict pyramid (B-frames referencing B-frames), a keyframe every 40 frames."""
    params = "bframes=5:b-pyramid=strict:b-adapt=0:keyint=40:min-keyint=40:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_edit_list(path: str | Path, num_frames: int = 150, hidden: int = 7) -> Path:
    """H.264 MP4 whose first ``hidden`` frames have negative pts: the muxer writes an edit list that hides them, so
    the first frame shown carries index ``hidden``."""
    params = "bframes=3:keyint=30:min-keyint=30:scenecut=0"
    pts = [i - hidden for i in range(num_frames)]
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params}, pts=pts)


_VOP = b"\x00\x00\x01\xb6"  # MPEG-4 part 2 VOP start code; the 2 bits after it: 0 I, 1 P, 2 B


def _not_coded_vop(fps: int) -> bytes:
    """An N-VOP: a P-VOP header with vop_coded 0, the placeholder that follows a packed pair."""
    increment_bits = max(1, (fps - 1).bit_length())  # FFmpeg's encoder: vop_time_increment_resolution = fps
    bits = "01" + "0" + "1" + "0" * increment_bits + "1" + "0"  # type P, modulo_time_base, marker, time, marker, coded
    bits += "0" + "1" * (7 - len(bits) % 8)  # next_start_code stuffing: a 0, then 1s to the byte boundary
    return _VOP + int(bits, 2).to_bytes(len(bits) // 8, "big")


def write_packed_bframes(path: str | Path, num_frames: int = 120, closed_gop: bool = True) -> Path:
    """MPEG-4 part 2 in AVI with DivX "packed B-frames", as UCF-101 and HMDB-51 are stored: each B-frame travels in
    the packet of the P-frame decoded before it, an N-VOP placeholder takes its slot, and the stream's user data says
    "DivX503b1393p". FFmpeg decodes such a stream in presentation order but labels its frames with permuted pts.
    A keyframe every 12 frames, one B-frame between references; ``closed_gop`` False lets the B-frame after a keyframe
    reference the previous GOP."""
    path = Path(path)
    fps = 30
    options = {"g": "12", "bf": "1", "qscale": "2", "sc_threshold": "1000000000"}
    if closed_gop:
        options["flags"] = "+cgop"
    plain = write_indexed_video(path.with_suffix(".unpacked.avi"), num_frames, codec="mpeg4", fps=fps,
                                options=options)
    packets = []
    with av.open(str(plain)) as source:
        video = source.streams.video[0]
        for packet in source.demux(video):
            if packet.size:
                data = bytes(packet)
                packets.append((data, data[data.index(_VOP) + 4] >> 6))
        slots = []  # (payload, keyframe) per packet of the packed stream
        for data, vop_type in packets:
            if vop_type == 2 and slots:  # a B-frame joins the packet before it and leaves a placeholder
                slots[-1] = (slots[-1][0] + data, slots[-1][1])
                slots.append((_not_coded_vop(fps), False))
                continue
            if vop_type == 0:
                start = data.index(_VOP)
                data = data[:start] + b"\x00\x00\x01\xb2DivX503b1393p" + data[start:]
            slots.append((data, vop_type == 0))
        _write_slots(path, video, slots)
    plain.unlink()
    return path


def _write_slots(path: Path, template: Any, slots: Sequence[tuple[bytes, bool]]) -> None:
    """Write ``slots`` ((payload, keyframe) per packet) as the stream of a new file shaped like stream ``template``,
    packet n at pts = dts = n."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream_from_template(template)
        for number, (data, keyframe) in enumerate(slots):
            packet = av.Packet(data)
            packet.stream, packet.time_base = stream, stream.time_base
            packet.pts = packet.dts = number
            packet.is_keyframe = keyframe
            container.mux(packet)


def write_packed_bframes_open_gop(path: str | Path, num_frames: int = 120) -> Path:
    return write_packed_bframes(path, num_frames, closed_gop=False)


def write_open_gop_avi(path: str | Path, num_frames: int = 120) -> Path:
    """H.264 with open GOPs in AVI: the keyframe packet's pts is the slot of the B-frame shown before it."""
    params = "open-gop=1:keyint=12:min-keyint=12:bframes=3:scenecut=0"
    return write_indexed_video(path, num_frames, options={"crf": "18", "x264-params": params})


def write_decode_order_pts(path: str | Path, num_frames: int = 120) -> Path:
    """H.264 with B-frames in Matroska whose stored pts are decode order (pts = dts = packet number), as a careless
    remux from AVI writes them: each decoded frame is labelled with another frame's pts."""
    path = Path(path)
    source = write_h264_bframes(path.with_suffix(".source.mp4"), num_frames)
    with av.open(str(source)) as reader, av.open(str(path), mode="w") as writer:
        video = reader.streams.video[0]
        stream = writer.add_stream_from_template(video)
        for number, packet in enumerate(p for p in reader.demux(video) if p.size):
            packet.stream, packet.time_base = stream, video.time_base
            packet.pts = packet.dts = number * int(round(1 / (video.time_base * 30)))
            writer.mux(packet)
    source.unlink()
    return path


def write_dropped_frames(path: str | Path, num_frames: int = 90, packed: bool = False, after: Sequence[int] = (6, 30)
                         ) -> Path:
    """MPEG-4 part 2 in AVI with two dropped frames as DivX writes them: an N-VOP (uncoded picture) in its own packet
    after packets ``after`` (decode order), for which FFmpeg returns no frame. ``packed``: in a packed-B-frame stream,
    after placeholders (so no packed B-frame is pending there). Frame i still shows index i."""
    path = Path(path)
    source = path.with_suffix(".source.avi")
    if packed:
        write_packed_bframes(source, num_frames)
    else:
        write_indexed_video(source, num_frames, codec="mpeg4", fps=30, options={"g": "12", "qscale": "2"})
    with av.open(str(source)) as reader:
        video = reader.streams.video[0]
        slots = []
        for count, packet in enumerate(p for p in reader.demux(video) if p.size):
            slots.append((bytes(packet), packet.is_keyframe))
            if count in after:
                slots.append((_not_coded_vop(30), False))
        _write_slots(path, video, slots)
    source.unlink()
    return path


def write_packed_dropped_frames(path: str | Path, num_frames: int = 90) -> Path:
    return write_dropped_frames(path, num_frames, packed=True)
