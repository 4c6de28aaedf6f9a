"""What the calendar view shows, read from the ledger: deliveries per account per day, in Japan time.

Kept apart from the web app so it can be tested (and reused, e.g. by a report) without HTTP.
A delivery that is a thread is several rows in the ledger (one per part); the calendar shows it
once, with the status that needs a person's eye most (a failed part beats published ones).
Entries that have no delivery planned yet are shown too, in their own row, so staff see what
the calendar asked for even before the posting DAG planned it.
"""

from __future__ import annotations

import calendar as pycalendar
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session

from koho.channels import is_web_url
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger import entries as ledger_entries
from koho.ledger.models import Account, CalendarEntry, Delivery
from koho.timeutil import holiday_name, local_zone, to_local

View = Literal["month", "week"]
VIEWS: tuple[View, ...] = ("month", "week")
WEEKDAYS_JA = ("日", "月", "火", "水", "木", "金", "土")  # Sunday first, as Japanese calendars are

#: status -> (Japanese label, English label); delivery and entry statuses share the names.
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "planned": ("予定", "planned"),
    "awaiting_approval": ("承認待ち", "awaiting approval"),
    "approved": ("承認済み", "approved"),
    "sending": ("送信中", "sending"),
    "published": ("公開済み", "published"),
    "partially_published": ("一部公開", "partially published"),
    "failed": ("失敗", "failed"),
    "needs_attention": ("要確認", "needs attention"),
    "cancelled": ("取消", "cancelled"),
    "rejected": ("却下", "rejected"),
    "changed_after_publish": ("公開後に変更", "changed after publish"),
}
#: Which part's status represents a thread: the first in this list that any part has.
_STATUS_PRIORITY = ("failed", "needs_attention", "sending", "awaiting_approval", "planned", "published", "cancelled")
UNASSIGNED = "未割当"


@dataclass
class CalendarItem:
    """One post on one account (or one entry not yet planned) as the calendar shows it."""

    kind: Literal["delivery", "entry"]
    entry_id: str
    title: str
    origin: str
    revision: int
    due_at: datetime
    status: str
    account_id: str | None = None
    account_name: str = UNASSIGNED
    platform: str | None = None
    delivery_id: int | None = None
    parts: int = 1
    url: str | None = None
    error: str | None = None
    dag_run_id: str | None = None
    dag_run_path: str | None = None  # relative to the Airflow UI's base URL
    remote_id: str | None = None
    connection_id: str | None = None
    timeline_url: str | None = None  # the stand-in platform's page for the post (see koho.timeline_links)

    @property
    def local(self) -> datetime:
        return to_local(self.due_at)

    @property
    def label_ja(self) -> str:
        return STATUS_LABELS.get(self.status, (self.status, self.status))[0]

    @property
    def label_en(self) -> str:
        return STATUS_LABELS.get(self.status, (self.status, self.status))[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "delivery_id": self.delivery_id,
            "entry_id": self.entry_id,
            "title": self.title,
            "origin": self.origin,
            "revision": self.revision,
            "account_id": self.account_id,
            "account_name": self.account_name,
            "platform": self.platform,
            "due_at": self.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "due_at_local": self.local.isoformat(),
            "status": self.status,
            "status_label_ja": self.label_ja,
            "status_label_en": self.label_en,
            "parts": self.parts,
            "url": self.url,
            "error": self.error,
            "dag_run_id": self.dag_run_id,
            "dag_run_path": self.dag_run_path,
            "timeline_url": self.timeline_url,
        }


@dataclass
class Day:
    date: date
    in_range: bool  # False for the neighbouring months' days that fill the month grid
    holiday: str | None
    items: list[CalendarItem] = field(default_factory=list)

    @property
    def weekday_ja(self) -> str:
        return WEEKDAYS_JA[(self.date.weekday() + 1) % 7]

    def for_account(self, account_id: str | None) -> list[CalendarItem]:
        return [i for i in self.items if i.account_id == account_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "weekday_ja": self.weekday_ja,
            "in_range": self.in_range,
            "holiday": self.holiday,
            "items": [i.to_json() for i in self.items],
        }


@dataclass
class AccountOption:
    id: str
    name: str
    platform: str
    status: str

    @property
    def label(self) -> str:
        return f"{self.name}（{self.platform}）"


@dataclass
class CalendarPage:
    view: View
    anchor: date
    first: date  # first day shown
    last: date  # last day shown (inclusive)
    days: list[Day]
    accounts: list[AccountOption]
    account: str | None
    previous: date
    next: date
    today: date

    @property
    def weeks(self) -> list[list[Day]]:
        return [self.days[i : i + 7] for i in range(0, len(self.days), 7)]

    @property
    def items(self) -> list[CalendarItem]:
        return [item for day in self.days for item in day.items]

    @property
    def title(self) -> str:
        if self.view == "month":
            return f"{self.anchor.year}年{self.anchor.month}月"
        end = f"{self.last.month}月{self.last.day}日"
        if self.last.year != self.first.year:
            end = f"{self.last.year}年{end}"
        return f"{self.first.year}年{self.first.month}月{self.first.day}日〜{end}"

    def rows(self) -> list[tuple[str | None, str]]:
        """Week view rows: accounts in use (or not retired), then unplanned entries if any."""
        used = {i.account_id for i in self.items}
        rows: list[tuple[str | None, str]] = [
            (a.id, a.label)
            for a in self.accounts
            if (a.id in used or a.status != "retired") and (self.account is None or a.id == self.account)
        ]
        if None in used:
            rows.append((None, f"{UNASSIGNED}（配信未計画 / not planned yet）"))
        return rows

    def link(self, target: date | None = None, *, view: str | None = None, fmt: str = "") -> str:
        """A relative link to this calendar with other parameters (works under any base URL)."""
        params: dict[str, str] = {"view": view or self.view, "date": (target or self.anchor).isoformat()}
        if self.account:
            params["account"] = self.account
        return f"calendar{fmt}?{urlencode(params)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "date": self.anchor.isoformat(),
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "timezone": str(local_zone()),
            "account": self.account,
            "previous": self.previous.isoformat(),
            "next": self.next.isoformat(),
            "accounts": [a.__dict__ for a in self.accounts],
            "days": [d.to_json() for d in self.days],
        }


# ---------------------------------------------------------------------------------------------


def window(view: View, anchor: date) -> tuple[date, date, date, date]:
    """(first shown, last shown, previous anchor, next anchor) for a view around ``anchor``.

    The month view shows whole weeks (Sunday to Saturday) covering the month.
    """
    if view == "week":
        first = anchor - timedelta(days=(anchor.weekday() + 1) % 7)
        return first, first + timedelta(days=6), anchor - timedelta(days=7), anchor + timedelta(days=7)
    month_first = anchor.replace(day=1)
    month_last = anchor.replace(day=pycalendar.monthrange(anchor.year, anchor.month)[1])
    first = month_first - timedelta(days=(month_first.weekday() + 1) % 7)
    last = month_last + timedelta(days=(5 - month_last.weekday()) % 7)
    previous = (month_first - timedelta(days=1)).replace(day=1)
    following = month_last + timedelta(days=1)
    return first, last, previous, following


def dag_run_path(dag_run_id: str | None, origin: str, dag_ids: Mapping[str, str]) -> str | None:
    """Where the Airflow UI shows the run that handled a delivery (relative to the UI's base URL).

    Run ids cannot contain "/", so a ``dag_id/run_id`` value names both. A bare run id is
    linked to its DAG when the entry's origin maps to one (``KOHO_UI_DAG_IDS``); otherwise to
    the list of all runs filtered by that run id, which is always right if less direct.
    """
    if not dag_run_id:
        return None
    dag_id, _, run_id = dag_run_id.rpartition("/")
    dag_id = dag_id or dag_ids.get(origin, "")
    if dag_id:
        return f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"dag_runs?{urlencode({'run_id_pattern': run_id})}"


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    zone = local_zone()
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _thread_status(statuses: list[str]) -> str:
    unique = set(statuses)
    if len(unique) == 1:
        return statuses[0]
    return next((s for s in _STATUS_PRIORITY if s in unique), statuses[0])


def load_calendar(
    session: Session,
    view: View,
    anchor: date,
    *,
    account: str | None = None,
    dag_ids: Mapping[str, str] | None = None,
    today: date | None = None,
) -> CalendarPage:
    """The calendar page around ``anchor`` (a Japan date), optionally for one account only."""
    dag_ids = dag_ids or {}
    first, last, previous, following = window(view, anchor)
    start, end = _bounds(first, last)

    groups: dict[tuple[str, str, int], list[tuple[Delivery, CalendarEntry, Account]]] = defaultdict(list)
    for delivery, entry, acct in ledger_deliveries.in_window(session, start, end, account_id=account):
        groups[(delivery.entry_id, delivery.account_id, delivery.revision)].append((delivery, entry, acct))

    items = [_delivery_item(rows, dag_ids) for rows in groups.values()]
    if not account:
        for entry in ledger_entries.due_between(session, start, end, unplanned=True):
            items.append(
                CalendarItem(
                    kind="entry",
                    entry_id=entry.id,
                    title=entry.title,
                    origin=entry.origin,
                    revision=entry.revision,
                    due_at=entry.publish_at,
                    status=entry.status,
                )
            )

    days = {
        first + timedelta(days=n): Day(
            date=first + timedelta(days=n),
            in_range=view == "week" or (first + timedelta(days=n)).month == anchor.month,
            holiday=holiday_name(first + timedelta(days=n)),
        )
        for n in range((last - first).days + 1)
    }
    for item in sorted(items, key=lambda i: (i.due_at, i.account_name, i.title, i.entry_id)):
        day = days.get(item.local.date())
        if day is not None:
            day.items.append(item)

    accounts = [
        AccountOption(a.id, a.display_name, a.platform, a.status) for a in ledger_accounts.all_accounts(session)
    ]
    return CalendarPage(
        view=view,
        anchor=anchor,
        first=first,
        last=last,
        days=list(days.values()),
        accounts=accounts,
        account=account or None,
        previous=previous,
        next=following,
        today=today or to_local(datetime.now(UTC)).date(),
    )


def _delivery_item(rows: list[tuple[Delivery, CalendarEntry, Account]], dag_ids: Mapping[str, str]) -> CalendarItem:
    head, entry, account = rows[0]
    statuses = [d.status for d, _, _ in rows]
    status = _thread_status(statuses)
    error = next((d.last_error for d, _, _ in rows if d.last_error and d.status in ("failed", "needs_attention")), None)
    if error is None and status in ("failed", "needs_attention"):
        error = next((d.last_error for d, _, _ in rows if d.last_error), None)
    run_id = next((d.dag_run_id for d, _, _ in rows if d.dag_run_id), None)
    url = head.remote_url if head.remote_url and is_web_url(head.remote_url) else None
    return CalendarItem(
        kind="delivery",
        entry_id=entry.id,
        title=entry.title,
        origin=entry.origin,
        revision=head.revision,
        due_at=min(d.due_at for d, _, _ in rows),
        status=status,
        account_id=account.id,
        account_name=account.display_name,
        platform=account.platform,
        delivery_id=head.id,
        parts=len(rows),
        url=url,
        error=error,
        dag_run_id=run_id,
        dag_run_path=dag_run_path(run_id, entry.origin, dag_ids),
        remote_id=head.remote_id,
        connection_id=account.connection_id,
    )
