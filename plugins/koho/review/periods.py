"""Calendar periods of the review (month, quarter, year), in the city's local dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

PeriodKind = Literal["month", "quarter", "year"]
KINDS: tuple[PeriodKind, ...] = ("month", "quarter", "year")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    kind: PeriodKind
    first: date
    last: date

    @property
    def label(self) -> str:
        if self.kind == "month":
            return f"{self.first:%Y-%m}"
        if self.kind == "quarter":
            return f"{self.first.year}-Q{(self.first.month - 1) // 3 + 1}"
        return str(self.first.year)

    @property
    def months(self) -> tuple[tuple[int, int], ...]:
        """(year, month) keys the period covers."""
        out = []
        y, m = self.first.year, self.first.month
        while (y, m) <= (self.last.year, self.last.month):
            out.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return tuple(out)


def _month_end(y: int, m: int) -> date:
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return date.fromordinal(date(ny, nm, 1).toordinal() - 1)


def period_of(kind: PeriodKind, day: date) -> Period:
    if kind == "month":
        return Period(kind, day.replace(day=1), _month_end(day.year, day.month))
    if kind == "quarter":
        start = (day.month - 1) // 3 * 3 + 1
        return Period(kind, date(day.year, start, 1), _month_end(day.year, start + 2))
    return Period(kind, date(day.year, 1, 1), date(day.year, 12, 31))


def periods_between(kind: PeriodKind, first: date, last: date) -> list[Period]:
    """Every period of ``kind`` that overlaps [first, last], oldest first."""
    out: list[Period] = []
    period = period_of(kind, first)
    while period.first <= last:
        out.append(period)
        period = period_of(kind, date.fromordinal(period.last.toordinal() + 1))
    return out
