"""Read a publishing time the way staff write it, and store it as aware UTC.

Staff type times in Japan Standard Time, in whatever shape their tool produced: ``2027-01-05
09:00``, ``2027/1/5 9:00``, ``2027年1月5日 9時``, an ISO string with an offset, or (from Excel and
YAML) a ready ``datetime``. A time without an offset is local time; a date without a time of day is
refused rather than silently meaning midnight, which would land inside quiet hours.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from koho.timeutil import to_utc

EXAMPLE = "'2027-01-05 09:00' (JST) or '2027-01-05T09:00:00+09:00'"

_LOCAL = re.compile(
    r"""(?P<y>\d{4})\s*[-/.年]\s*(?P<mo>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?
        \s*(?:\((?P<wd>[^)]{1,3})\))?                            # weekday, e.g. (火)
        \s*(?:[T\s]\s*)?
        (?P<h>\d{1,2})\s*[:時]\s*(?P<mi>\d{2})?\s*分?(?::(?P<s>\d{2}))?
        (?P<tz>\s*(?:Z|[+-]\d{2}:?\d{2}|JST))?$""",
    re.VERBOSE | re.IGNORECASE,
)
_WEEKDAYS = {
    **{name: i for i, name in enumerate("月火水木金土日")},
    **{f"{name}曜": i for i, name in enumerate("月火水木金土日")},
    **{f"{name}曜日": i for i, name in enumerate("月火水木金土日")},
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
}
_DATE_ONLY = re.compile(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?\s*(?:\([^)]{1,3}\))?")


def parse_publish_at(value: object) -> datetime:
    """``value`` as an aware UTC datetime; ``ValueError`` says what shape was expected."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        raise ValueError(f"{value.isoformat()} has no time of day; expected a date and time like {EXAMPLE}")
    if not isinstance(value, str):
        raise ValueError(f"expected a date and time like {EXAMPLE}, got {type(value).__name__} {value!r}")
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise ValueError(f"is empty; expected a date and time like {EXAMPLE}")
    match = _LOCAL.fullmatch(text)
    if match is None:
        if _DATE_ONLY.fullmatch(text):
            raise ValueError(f"'{value}' has no time of day; expected a date and time like {EXAMPLE}")
        raise ValueError(f"cannot read '{value}' as a date and time; expected {EXAMPLE}")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k not in ("tz", "wd")}
    try:
        moment = datetime(parts["y"], parts["mo"], parts["d"], parts["h"], parts.get("mi", 0), parts.get("s", 0))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a real date and time ({exc}); expected {EXAMPLE}") from None
    _check_weekday(moment, match.group("wd"), value)
    offset = (match.group("tz") or "").strip().upper()
    if offset and offset != "JST":
        iso = moment.isoformat() + ("+00:00" if offset == "Z" else _colon(offset))
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(f"cannot read the offset in '{value}'; expected {EXAMPLE}") from None
    return to_utc(moment)


def _colon(offset: str) -> str:
    return offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"


def _check_weekday(moment: datetime, written: str | None, value: object) -> None:
    """A weekday in parentheses must be the date's: ``2027-01-05(月)`` is a typo in the date or the day."""
    if written is None:
        return
    key = written.strip().lower()
    if key not in _WEEKDAYS:
        raise ValueError(f"'{value}': '({written})' is not a weekday; write it like (火) or leave it out")
    if _WEEKDAYS[key] != moment.weekday():
        actual = "月火水木金土日"[moment.weekday()]
        raise ValueError(
            f"'{value}': {moment:%Y-%m-%d} is a {moment:%A} ({actual}), not ({written}); "
            "correct the date or the weekday"
        )
