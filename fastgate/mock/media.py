"""The mock's pictures and sounds: a real PNG and a real WAV, built once, byte for byte the same
on every run.

The PNG follows the PNG specification (signature, IHDR, one zlib-compressed IDAT, IEND, each
chunk with its CRC-32): a small RGB gradient any image decoder opens. The WAV is a RIFF/WAVE file
of 16-bit mono PCM at 24 kHz (OpenAI's chat audio rate): a short 440 Hz tone.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib

PNG_SIZE = 16
WAV_RATE = 24_000
_WAV_SECONDS = 0.05


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(size: int) -> bytes:
    # IHDR: width, height, bit depth 8, colour type 2 (RGB), compression, filter, interlace.
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // (size - 1), y * 255 // (size - 1), 128)) for x in range(size))
        for y in range(size)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def _pcm16(rate: int, seconds: float) -> bytes:
    count = int(rate * seconds)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(count)
    )


def _wav(pcm: bytes, rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


PNG = _png(PNG_SIZE)
PNG_B64 = base64.b64encode(PNG).decode()
PCM16 = _pcm16(WAV_RATE, _WAV_SECONDS)
WAV = _wav(PCM16, WAV_RATE)
