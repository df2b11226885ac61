"""Small valid audio files for the mock's speech answers: silence in the format asked for.

Each is a file a decoder accepts: WAV (RIFF, 16-bit PCM, RFC 2361), raw PCM (16-bit little-endian
at 24 kHz, as OpenAI's ``pcm``), MP3 (MPEG-1 Layer III frames of digital silence), FLAC (verbatim
subframes, with the CRC-8 and CRC-16 of the FLAC format spec), Ogg Opus (RFC 7845 headers and
CELT silence packets, pages with Ogg's CRC-32) and AAC (ADTS frames of a silent AAC-LC block).
"""

from __future__ import annotations

import struct

#: OpenAI's speech output: 24 kHz mono (API reference, "Create speech": ``pcm`` is 24 kHz 16-bit).
RATE = 24000

CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def pcm(seconds: float) -> bytes:
    return bytes(2 * int(RATE * seconds))


def wav(seconds: float, rate: int = RATE) -> bytes:
    data = bytes(2 * int(rate * seconds))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def wav_seconds(data: bytes) -> float | None:
    """The length of a WAV file's audio, from its header (None: not a WAV the mock reads)."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    byte_rate = 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and size >= 16:
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif chunk == b"data" and byte_rate:
            return round(size / byte_rate, 3)
        pos += 8 + size + (size & 1)
    return None


def mp3(seconds: float) -> bytes:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono, no CRC: 417-byte frames of 1152 samples;
    # zero side information and main data decode as silence (ISO/IEC 11172-3).
    frame = b"\xff\xfb\x90\xc4" + bytes(413)
    return frame * max(1, round(seconds * 44100 / 1152))


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def flac(seconds: float) -> bytes:
    """Fixed 4096-sample blocks, each one frame with a CONSTANT subframe of 0 (FLAC format spec)."""
    block = 4096
    total = max(block, int(RATE * seconds))
    frames = -(-total // block)
    total = frames * block
    info = struct.pack(">HH", block, block) + bytes(6)  # min/max block size, frame sizes unknown
    # 20 bits rate, 3 bits channels-1, 5 bits bits-per-sample-1, 36 bits total samples.
    packed = (RATE << 44) | (0 << 41) | (15 << 36) | total
    info += packed.to_bytes(8, "big") + bytes(16)  # no MD5
    out = [b"fLaC", b"\x80" + len(info).to_bytes(3, "big"), info]
    for n in range(frames):
        # Sync, fixed blocksize; block size 4096 (code 12), rate from STREAMINFO (0); mono (0),
        # sample size from STREAMINFO (0); the frame number UTF-8 coded.
        head = b"\xff\xf8\xc0\x00" + _utf8_number(n)
        head += bytes([_crc8(head)])
        frame = head + b"\x00" + b"\x00\x00"  # CONSTANT subframe: type 0, then a 16-bit sample 0
        out.append(frame + _crc16(frame).to_bytes(2, "big"))
    return b"".join(out)


def _utf8_number(n: int) -> bytes:
    return chr(n).encode("utf-8", "surrogatepass")


_OGG_TABLE = [0] * 256
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if _r & 0x80000000 else (_r << 1) & 0xFFFFFFFF
    _OGG_TABLE[_i] = _r


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


def _ogg_page(packets: list[bytes], granule: int, sequence: int, flags: int) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    head = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x6D6F636B, sequence, 0, len(lacing))
    page = head + lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def opus(seconds: float) -> bytes:
    """Ogg Opus (RFC 7845): OpusHead, OpusTags, then 20 ms CELT packets of silence (RFC 6716:
    TOC 0xF8 is CELT fullband 20 ms, one frame; 0xFF 0xFE codes it silent)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 8) + b"fastgate" + struct.pack("<I", 0)
    count = max(1, round(seconds / 0.02))
    packets = [b"\xf8\xff\xfe"] * count
    return (
        _ogg_page([head], 0, 0, 0x02)
        + _ogg_page([tags], 0, 1, 0)
        + _ogg_page(packets, 312 + 960 * count, 2, 0x04)
    )


def aac(seconds: float) -> bytes:
    """ADTS frames (ISO/IEC 13818-7) of AAC-LC at 24 kHz mono, each a silent raw data block."""
    block = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"
    length = 7 + len(block)
    # syncword, MPEG-4, layer 0, no CRC; profile LC (1), rate index 6 (24 kHz), mono; the
    # frame length; buffer fullness 0x7FF; one raw data block.
    header = bytes(
        [
            0xFF,
            0xF1,
            (1 << 6) | (6 << 2),
            (1 << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return (header + block) * max(1, round(seconds * RATE / 1024))


ENCODERS = {"mp3": mp3, "opus": opus, "aac": aac, "flac": flac, "wav": wav, "pcm": pcm}
