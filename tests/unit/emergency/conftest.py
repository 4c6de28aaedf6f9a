"""Shared pieces of the emergency-watcher tests: the sandbox's sample bulletins and settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from koho.config.emergency import EmergencySettings
from koho.emergency.jma import Warning, parse_document
from sandbox.platforms.jma import SAMPLES_DIR

CITY = "1229900"
KINDS = ["大雨特別警報", "大雨警報", "洪水警報", "暴風警報", "大雪警報"]


@pytest.fixture
def sample_bytes() -> Callable[[str], bytes]:
    return lambda name: (SAMPLES_DIR / f"{name}.xml").read_bytes()


@pytest.fixture
def bulletin(sample_bytes) -> Callable[[str], Warning]:
    """``bulletin("heavy_rain")`` -> the parsed sample, its URL a fake JMA address."""
    return lambda name: parse_document(sample_bytes(name), f"https://www.data.jma.go.jp/developer/xml/data/{name}.xml")


@pytest.fixture
def settings() -> EmergencySettings:
    return EmergencySettings(
        feed_url="http://127.0.0.1:1/jma/developer/xml/feed/extra.xml",
        city_name="こほ市",
        area_codes=[CITY],
        area_name="こほ市",
        kinds=KINDS,
    )


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR
