"""Volume rules for one set of planned posts: daily caps, minimum spacing, quiet hours.

The city asks for no needless volume (staff time and followers' patience are both finite), so
each account has a daily cap, a minimum gap between posts and hours in which it stays silent.
These are pure functions over :class:`PlannedSlot` values so that calendar validation, the
ad-hoc post form and the planner judge a slot the same way.

Days and hours are the city's local time (Asia/Tokyo): a post at 23:30 JST belongs to that JST
day even though it is 14:30 UTC, and the JST day starts at 15:00 UTC the day before.
Emergencies are exempt: they are never blamed and do not use up anyone's cap or spacing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

from koho.config.schema import Caps
from koho.errors import Problem, Where
from koho.timeutil import local_zone

if TYPE_CHECKING:
    from koho.ledger.deliveries import PlannedPost

Rule = Literal["per_day", "min_spacing", "quiet_hours"]


@dataclass(frozen=True)
class PlannedSlot:
    """One post to one account at one moment.

    ``existing`` slots are already planned (in the ledger): they count against caps and spacing
    but are never blamed again. ``where`` is the place a problem about this slot points at.
    """

    account_id: str
    at: datetime
    entry_id: str | None = None
    emergency: bool = False
    existing: bool = False
    where: Where | None = None


def existing_slots(posts: Iterable[PlannedPost]) -> list[PlannedSlot]:
    """The ledger's planned posts (``deliveries.planned_slots``) as slots that count but are never blamed."""
    return [PlannedSlot(p.account_id, p.due_at, p.entry_id, emergency=p.emergency, existing=True) for p in posts]


@dataclass(frozen=True)
class VolumeProblem:
    slot: PlannedSlot
    rule: Rule
    message: str

    def to_problem(self) -> Problem:
        base = self.slot.where or Where(field="publish_at")
        return Problem(replace(base, account=self.slot.account_id), self.message)


def volume_problems(
    planned: Iterable[PlannedSlot],
    caps_by_account: Mapping[str, Caps],
    *,
    zone: tzinfo | None = None,
    exempt_emergencies: bool = True,
) -> list[VolumeProblem]:
    """Every new slot that breaks its account's caps, spacing or quiet hours.

    Slots are judged per account in time order, existing ones first accepted as they are. A
    blamed slot is not posted, so it does not count against the slots after it: of three posts
    on a day with a cap of two, only the third is blamed.
    """
    zone = zone or local_zone()
    by_account: dict[str, list[PlannedSlot]] = defaultdict(list)
    for slot in planned:
        if slot.at.tzinfo is None:
            raise ValueError(f"slot for {slot.account_id} has a naive time; pass aware datetimes")
        if exempt_emergencies and slot.emergency:
            continue
        by_account[slot.account_id].append(slot)
    out: list[VolumeProblem] = []
    for account_id, slots in by_account.items():
        caps = caps_by_account.get(account_id)
        if caps is None:
            continue
        out += _account_problems(account_id, slots, caps, zone)
    return out


def _account_problems(account_id: str, slots: list[PlannedSlot], caps: Caps, zone: tzinfo) -> list[VolumeProblem]:
    accepted = sorted((s for s in slots if s.existing), key=lambda s: s.at)
    fresh = sorted((s for s in slots if not s.existing), key=lambda s: (s.at, s.entry_id or ""))
    per_day: dict[date, list[PlannedSlot]] = defaultdict(list)
    for slot in accepted:
        per_day[slot.at.astimezone(zone).date()].append(slot)
    out: list[VolumeProblem] = []
    for slot in fresh:
        local = slot.at.astimezone(zone)
        found = [
            *quiet_hours_problem(slot, caps, local),
            *spacing_problem(slot, caps, accepted, zone),
            *daily_cap_problem(slot, caps, per_day[local.date()], local.date(), zone),
        ]
        if found:
            out += found
            continue
        accepted.append(slot)
        per_day[local.date()].append(slot)
    return out


def quiet_hours_problem(slot: PlannedSlot, caps: Caps, local: datetime) -> list[VolumeProblem]:
    quiet = caps.quiet_hours
    if quiet is None or not quiet.contains(local.time()):
        return []
    return [
        VolumeProblem(
            slot,
            "quiet_hours",
            f"{local:%H:%M} JST is inside the account's quiet hours {quiet} "
            "(only emergencies are posted then); choose a time outside them",
        )
    ]


def spacing_problem(slot: PlannedSlot, caps: Caps, accepted: list[PlannedSlot], zone: tzinfo) -> list[VolumeProblem]:
    minutes = caps.min_spacing_minutes
    if not minutes:
        return []
    gap = timedelta(minutes=minutes)
    close = [other for other in accepted if abs(other.at - slot.at) < gap]
    if not close:
        return []
    other = min(close, key=lambda o: abs(o.at - slot.at))
    apart = int(abs(other.at - slot.at).total_seconds() // 60)
    what = f"entry '{other.entry_id}'" if other.entry_id else "another post"
    return [
        VolumeProblem(
            slot,
            "min_spacing",
            f"only {apart} min from {what} at {other.at.astimezone(zone):%Y-%m-%d %H:%M} JST; "
            f"the account needs at least {minutes} min between posts",
        )
    ]


def daily_cap_problem(
    slot: PlannedSlot, caps: Caps, same_day: list[PlannedSlot], day: date, zone: tzinfo
) -> list[VolumeProblem]:
    cap = caps.per_day
    if cap is None or len(same_day) < cap:
        return []
    times = ", ".join(f"{s.at.astimezone(zone):%H:%M}" for s in sorted(same_day, key=lambda s: s.at))
    return [
        VolumeProblem(
            slot,
            "per_day",
            f"over the daily cap of {cap} post(s) on {day.isoformat()} (JST): already planned at "
            f"{times}; move it to another day or raise the account's caps.per_day",
        )
    ]
