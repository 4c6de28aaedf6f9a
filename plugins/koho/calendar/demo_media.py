"""Small, valid demo images for include/media, made by code (no imaging library needed).

The demo calendar names these files; regenerating them is ``write_demo_media(include_dir() /
"media")``. Tests use :func:`png_bytes` to make real images of any size.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

Colour = tuple[int, int, int]

#: file name -> (top colour, bottom colour)
DEMO_IMAGES: dict[str, tuple[Colour, Colour]] = {
    "gomi-calendar.png": ((46, 125, 50), (200, 230, 201)),
    "kosodate-hiroba.png": ((245, 124, 0), (255, 224, 178)),
    "bousai-kunren.png": ((198, 40, 40), (255, 205, 210)),
    "nashi-season.png": ((158, 157, 36), (240, 244, 195)),
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(
    width: int, height: int, top: Colour = (0, 0, 0), bottom: Colour | None = None, *, stripe: int = 0
) -> bytes:
    """An RGB PNG: a vertical gradient from ``top`` to ``bottom``, with diagonal stripes every ``stripe`` px."""
    bottom = bottom or top
    rows = bytearray()
    for y in range(height):
        share = y / max(height - 1, 1)
        colour = bytes(round(a + (b - a) * share) for a, b in zip(top, bottom, strict=True))
        light = bytes(min(255, c + 24) for c in colour)
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += light if stripe and ((x + y) // stripe) % 2 else colour
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


def write_demo_media(directory: Path, *, size: int = 320) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (top, bottom) in DEMO_IMAGES.items():
        path = directory / name
        path.write_bytes(png_bytes(size, size, top, bottom, stripe=40))
        out.append(path)
    return out
