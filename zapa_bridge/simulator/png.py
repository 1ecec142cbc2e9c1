"""A QR-looking PNG built with zlib and struct, so sessions carry a real image like zapw's.

The picture is not a decodable QR code: it has the three finder squares and a module grid
derived from the payload, with a light grain that gives the file zapw's size (tens of KB).
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODULES = 45  # a version-7 QR code
SCALE = 6
BORDER = 4
# Grain: dark pixels 0-3, light pixels 252-255, picked from random bytes by translation.
_DARK = bytes(b & 3 for b in range(256))
_LIGHT = bytes(252 + (b & 3) for b in range(256))


def qr_png(payload: str) -> bytes:
    """A grayscale PNG of a QR-like grid for `payload` (same payload, same image)."""
    grid = _modules(payload)
    side = (MODULES + 2 * BORDER) * SCALE
    grain = random.Random(payload)
    rows = []
    for y in range(side):
        module_y = y // SCALE - BORDER
        noise = grain.randbytes(side)
        row = bytearray(b"\x00")  # filter type 0 (None) for every scanline
        for module_x in range(-BORDER, MODULES + BORDER):
            start = (module_x + BORDER) * SCALE
            dark = 0 <= module_y < MODULES and 0 <= module_x < MODULES and grid[module_y][module_x]
            row += noise[start:start + SCALE].translate(_DARK if dark else _LIGHT)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b""))


def qr_data_url(payload: str) -> str:
    """The `qrCode` value of a zapw session: `data:image/png;base64,...`."""
    return "data:image/png;base64," + base64.b64encode(qr_png(payload)).decode("ascii")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _modules(payload: str) -> list[list[bool]]:
    stream = hashlib.shake_256(payload.encode()).digest(MODULES * MODULES)
    grid = [[stream[y * MODULES + x] & 1 == 1 for x in range(MODULES)] for y in range(MODULES)]
    for i in range(8, MODULES - 8):  # timing patterns
        grid[6][i] = grid[i][6] = i % 2 == 0
    for top, left in ((0, 0), (0, MODULES - 7), (MODULES - 7, 0)):
        for y in range(-1, 8):
            for x in range(-1, 8):
                if 0 <= top + y < MODULES and 0 <= left + x < MODULES:
                    grid[top + y][left + x] = _finder(y, x)
    return grid


def _finder(y: int, x: int) -> bool:
    """A finder square: dark ring, light ring, dark 3x3 centre; light separator around."""
    if not (0 <= y <= 6 and 0 <= x <= 6):
        return False
    ring = max(abs(y - 3), abs(x - 3))
    return ring != 2
