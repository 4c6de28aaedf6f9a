"""Check the images an entry names before the post is due, not when the platform refuses them.

The type is judged from the file's first bytes, not its name: a ``.png`` that is really a Word
file would otherwise only fail at publishing time, at night, with nobody to fix it.
"""

from __future__ import annotations

from pathlib import Path

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # the smallest limit among the platforms Koho posts images to

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def image_kind(head: bytes) -> str | None:
    """``png``, ``jpeg``, ``gif`` or ``webp`` from the first bytes of a file; ``None`` otherwise."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_problem(name: str, media_dir: Path) -> str | None:
    """What is wrong with the local image ``name`` under ``media_dir``, or ``None`` if it is usable."""
    root = media_dir.resolve()
    path = (media_dir / name).resolve()
    if not path.is_relative_to(root):
        return f"image '{name}' is outside include/media"
    if not path.is_file():
        return f"image file '{name}' not found in include/media"
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        return f"image '{name}' is {size / 1024 / 1024:.1f} MB; the limit is {MAX_IMAGE_BYTES // 1024 // 1024} MB"
    with path.open("rb") as handle:
        kind = image_kind(handle.read(16))
    if kind is None:
        return f"'{name}' is not a PNG, JPEG, GIF or WebP image"
    return None
