"""Time: stored in UTC, shown and accepted in the city's zone (Asia/Tokyo); holidays from jpholiday."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def local_zone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("KOHO_TIMEZONE", "Asia/Tokyo"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(local_zone())


def to_utc(moment: datetime) -> datetime:
    """A naive value is read as local (JST) time, the way staff write it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone())
    return moment.astimezone(UTC)


def is_public_holiday(day: date) -> bool:
    import jpholiday

    return jpholiday.is_holiday(day)


def holiday_name(day: date) -> str | None:
    import jpholiday

    return jpholiday.is_holiday_name(day)
