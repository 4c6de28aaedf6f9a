"""Fixtures for calendar tests: a media folder, and ``load`` to validate files (``config`` and
``blocking_config`` come from ``tests/unit/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from koho.calendar.demo_media import png_bytes
from koho.config import KohoConfig
from tests.unit.calendar.calendar_helpers import NOW, write_media


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """ok.png (real), photo.jpg (JPEG magic), notimage.png (text), huge.png (a PNG over 8 MB), and
    secret.png in the parent folder, outside the media folder."""
    folder = write_media(tmp_path_factory.mktemp("media"))
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    (tmp_path_factory.getbasetemp() / "secret.png").write_bytes(png_bytes(2, 2))
    return folder


@pytest.fixture
def load(tmp_path, config, media) -> Callable[..., Any]:
    """``load({"a.yaml": text_or_bytes, ...}, config=None, **kwargs)`` -> CalendarLoad."""
    from koho.calendar import load_calendar

    def run(files: dict[str, str | bytes], *, config_: KohoConfig | None = None, **kwargs: Any):
        folder = tmp_path / "calendar"
        folder.mkdir(exist_ok=True)
        for name, content in files.items():
            target = folder / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        kwargs.setdefault("now", NOW)
        kwargs.setdefault("media_dir", media)
        return load_calendar(folder, config_ or config, **kwargs)

    return run
