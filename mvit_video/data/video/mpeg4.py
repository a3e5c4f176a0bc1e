"""MPEG-4 part 2 (DivX/XviD) bitstream facts the frame index needs: which packets decode to no frame.

A VOP (picture) header says whether the picture is coded at all. An uncoded VOP (an "N-VOP") is what DivX/XviD
write for a dropped frame, and FFmpeg returns no frame for it: a packet count would count a frame too many. The same
N-VOP is also the placeholder that follows a packed pair (a P-frame and the B-frame shown before it in one packet,
"packed B-frames"); there FFmpeg returns the buffered B-frame, so that N-VOP does count. Reading a VOP header needs
the width of its time field, which the VOL header (in the codec extradata or the first keyframe) gives.
"""

from __future__ import annotations

_START = b"\x00\x00\x01"
_VOP = 0xB6
_VOL_FIRST, _VOL_LAST = 0x20, 0x2F


class _Bits:
    """Reads big-endian bit fields from ``data`` starting at byte ``offset``; past the end reads as EOFError."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.position = data, offset * 8

    def read(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.position >> 3
            if byte >= len(self.data):
                raise EOFError
            value = (value << 1) | ((self.data[byte] >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value


def _start_codes(data: bytes, first: int, last: int) -> list[int]:
    """Offsets just past each start code 00 00 01 xx in ``data`` with first <= xx <= last."""
    offsets, at = [], data.find(_START)
    while 0 <= at < len(data) - 3:
        if first <= data[at + 3] <= last:
            offsets.append(at + 4)
        at = data.find(_START, at + 3)
    return offsets


def time_increment_bits(data: bytes) -> int | None:
    """Return the width of vop_time_increment from the first VOL header in ``data`` (ISO 14496-2, 6.2.3), or None
    when there is none or it cannot be read."""
    for offset in _start_codes(data, _VOL_FIRST, _VOL_LAST):
        bits = _Bits(data, offset)
        try:
            bits.read(1 + 8)  # random_accessible_vol, video_object_type_indication
            verid = 1
            if bits.read(1):  # is_object_layer_identifier
                verid = bits.read(4)
                bits.read(3)
            if bits.read(4) == 15:  # aspect_ratio_info: extended PAR
                bits.read(16)
            if bits.read(1):  # vol_control_parameters
                bits.read(3)  # chroma_format, low_delay
                if bits.read(1):  # vbv_parameters
                    bits.read(15 + 1 + 15 + 1 + 15 + 1 + 3 + 11 + 1 + 15 + 1)
            shape = bits.read(2)
            if shape == 3 and verid != 1:  # grayscale: video_object_layer_shape_extension
                bits.read(4)
            bits.read(1)  # marker
            resolution = bits.read(16)
        except EOFError:
            continue
        if resolution:
            return max(1, (resolution - 1).bit_length())
    return None


def coded_vops(data: bytes, increment_bits: int) -> list[bool]:
    """Return, for each VOP header in ``data``, whether its picture is coded (vop_coded, ISO 14496-2, 6.2.5); a header
    cut short counts as coded."""
    flags = []
    for offset in _start_codes(data, _VOP, _VOP):
        bits = _Bits(data, offset)
        try:
            bits.read(2)  # vop_coding_type
            while bits.read(1):  # modulo_time_base
                pass
            bits.read(1 + increment_bits + 1)  # marker, vop_time_increment, marker
            flags.append(bool(bits.read(1)))
        except EOFError:
            flags.append(True)
    return flags


class FrameCounter:
    """Feed it a stream's packets in decode order: ``yields_frame`` says whether FFmpeg returns a frame for each."""

    def __init__(self, extradata: bytes | None) -> None:
        self.increment_bits = time_increment_bits(extradata) if extradata else None
        self.pending = 0  # B-frames of packed pairs waiting for their placeholder

    def yields_frame(self, data: bytes) -> bool:
        """Whether the packet ``data`` decodes to a frame: a dropped frame's N-VOP does not, a packed pair's
        placeholder does. Without a readable VOL every packet counts, as before."""
        if self.increment_bits is None:
            self.increment_bits = time_increment_bits(data)
            if self.increment_bits is None:
                return True
        vops = coded_vops(data, self.increment_bits)
        if not vops or any(vops):
            self.pending += max(0, sum(vops) - 1)
            return True
        if self.pending:  # a placeholder: the packed B-frame comes out here
            self.pending -= 1
            return True
        return False
