"""The disaster-information watcher as Airflow runs it: a deferrable operator around the JMA
feed trigger, and the ledger records that make "one warning, one draft" hold.

How the watch never stops (``dags/disaster_watch.py``): the **disaster_watch** DAG runs on the
``@continuous`` schedule with ``max_active_runs=1``, so exactly one run exists at any time and the
next starts as soon as one ends. Its one task, :class:`JmaWatchOperator`, defers on the
triggerer (holding no worker slot) for a watch window (30 minutes by default), and the run ends
either when the window is over (nothing new) or as soon as the feed lists a new warning for the
city; then the drafts are recorded, each handed to its own **disaster_draft** run for a person to
approve, and the next watcher is already starting. Approvals never hold the watcher up, and the
windows keep the run history readable (about 48 runs a day when nothing happens).

Why a window at all rather than one endless task: a deferred task that never ends never shows a
result, never picks up a new version of the DAG or of ``emergency.yaml``, and would be lost
with its state if the triggerer died mid-way; a bounded window starts afresh from the ledger
every half hour.

"One warning, one draft": every draft is recorded in the ledger as an emergency entry whose id
derives from the draft key (:func:`koho.emergency.jma.draft_key`), with ``INSERT … ON CONFLICT
DO NOTHING``; only a draft that was actually inserted goes on to a person. A new watch starts
with the keys of recent drafts as ``seen_keys``, so the same bulletin, listed twice in the feed
or met again by the next run, never comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator

from koho.config.emergency import EmergencySettings
from koho.emergency.drafts import EmergencyDraft, draft_post
from koho.emergency.triggers import JmaFeedTrigger

log = logging.getLogger(__name__)

WINDOWED_CLASS_PATH = "koho.emergency.watch.WindowedJmaFeedTrigger"
DRAFT_SOURCE = "jma"
DEFAULT_WINDOW = timedelta(minutes=30)
#: Drafts recorded this recently are "seen" by a new watch (the JMA feeds hold hours, not days).
SEEN_FOR = timedelta(days=3)


#: The watcher's trigger fires no sooner than this after the task deferred. A task resumed within
#: seconds of deferring can be failed by Airflow's scheduler, which may read the deferring
#: process's exit only after the resumed try started (apache/airflow#72716, open in 3.3); the
#: retry would cost half a minute, the settling a few seconds at most, and only when a warning
#: appears right as a watch begins.
SETTLE = timedelta(seconds=15)


class WindowedJmaFeedTrigger(JmaFeedTrigger):
    """:class:`JmaFeedTrigger` that also ends at ``until``: it then fires ``{"kind": "window_end"}``
    with its state, so the watcher's run can end and the next one take over. New warnings found
    before ``settle_until`` are held until then (see :data:`SETTLE`)."""

    def __init__(self, *, until: str, settle_until: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.until = until
        self._until = _aware(until, "until")
        self.settle_until = settle_until
        self._settle_until = _aware(settle_until, "settle_until") if settle_until else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return WINDOWED_CLASS_PATH, {**kwargs, "until": self.until, "settle_until": self.settle_until}

    async def before_firing(self) -> None:
        if self._settle_until is not None:
            remaining = (self._settle_until - datetime.now(UTC)).total_seconds()
            if remaining > 0:
                await asyncio.sleep(remaining)

    def next_pause(self) -> float | None:
        remaining = (self._until - datetime.now(UTC)).total_seconds()
        return None if remaining <= 0 else min(self.poll_interval, remaining)


def _aware(value: str, field: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{field} must carry a time zone, got {value!r}")
    return moment


def draft_entry_id(key: str) -> str:
    """The ledger id of the draft for ``key`` (readable prefix, unique digest)."""
    area = key.split(":")[1] if key.count(":") >= 2 else "x"
    return f"jma-draft-{area}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def recent_draft_keys(ledger, *, now: datetime | None = None, within: timedelta = SEEN_FOR) -> list[str]:
    from koho.ledger import entries

    since = (now or datetime.now(UTC)) - within
    with ledger.session(readonly=True) as session:
        rows = entries.created_since(session, source=DRAFT_SOURCE, since=since)
        return [str((row.payload or {}).get("key")) for row in rows if (row.payload or {}).get("key")]


def record_drafts(ledger, drafts: Iterable[EmergencyDraft], *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Record each draft once (an emergency entry awaiting approval); returns the new ones only."""
    from koho.ledger import entries

    now = now or datetime.now(UTC)
    new = []
    with ledger.session() as session:
        for draft in drafts:
            entry_id = draft_entry_id(draft.key)
            payload = {
                "key": draft.key,
                "text": draft.message,
                "link": draft.link,
                "severity": draft.severity,
                "document": draft.source,
                "accounts": [],
                "channels": [],
            }
            result = entries.upsert_entry(
                session,
                {
                    "id": entry_id,
                    "origin": "emergency",
                    "source": DRAFT_SOURCE,
                    "source_line": None,
                    "title": f"【下書き】{draft.message.splitlines()[0][:60]}",
                    "publish_at": now,
                    "payload": payload,
                    "approval_required": True,
                    "content_hash": draft.key,
                    "created_by": "disaster_watch",
                    "status": "awaiting_approval",
                },
            )
            if result.created:
                new.append({"entry_id": entry_id, **payload})
            else:
                log.info("draft %s was recorded before (%s); not drafted again", draft.key, entry_id)
    return new


class JmaWatchOperator(BaseOperator):
    """Watch the JMA feed for the city's warnings, deferred, for one window; returns the new drafts.

    Returns ``[]`` when the window ends with nothing new. A feed URL that is refused again and
    again (a configuration mistake) fails the task with the reason.
    """

    ui_color = "#fde2e2"
    template_fields: Sequence[str] = ()

    def __init__(
        self, *, window: timedelta = DEFAULT_WINDOW, poll_interval: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        self.window = window
        self.poll_interval = poll_interval

    def _settings(self) -> EmergencySettings:
        from koho.config.emergency import load_emergency_settings

        return load_emergency_settings()

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from koho.errors import ConfigError
        from koho.ledger.db import Ledger

        try:
            settings = self._settings()
        except ConfigError as exc:
            alert_not_watching(f"emergency.yaml is broken, so the disaster watcher is not watching:\n{exc}")
            raise AirflowFailException(f"the watcher's settings are broken:\n{exc}") from None
        ledger = Ledger.from_airflow()
        ledger.migrate()
        seen = recent_draft_keys(ledger)
        now = datetime.now(UTC)
        until = now + self.window
        trigger = WindowedJmaFeedTrigger(
            until=until.isoformat(),
            settle_until=(now + SETTLE).isoformat(),
            feed_url=settings.feed_url,
            area_codes=settings.area_codes,
            kinds=settings.kinds,
            statuses=settings.statuses,
            feed_titles=settings.feed_titles,
            poll_interval=self.poll_interval or settings.poll_interval_seconds,
            seen_keys=seen,
        )
        self.log.info(
            "watching %s for %s until %s (%s draft(s) already seen)",
            settings.feed_url,
            ", ".join(settings.area_codes),
            until.isoformat(timespec="seconds"),
            len(seen),
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from koho.ledger.db import Ledger

        event = event or {}
        for problem in event.get("problems") or []:
            self.log.warning("%s", problem)
        kind = event.get("kind")
        if kind == "error":
            message = event.get("message") or "the JMA feed could not be read"
            alert_not_watching(f"the disaster watcher stopped: {message}")
            raise AirflowFailException(message)
        if kind != "jma_warnings":
            self.log.info("watch window over: nothing new for the city")
            return []
        settings = self._settings()
        drafts = []
        for warning in event.get("warnings") or []:
            try:
                drafts.append(draft_post(warning, settings))
            except Exception:  # one bad bulletin (or template) must not hide the others
                self.log.exception("could not draft a post for %s", warning.get("key"))
        for cancellation in event.get("cancellations") or []:
            self.log.info("JMA cancellation (取消): %s", cancellation)
        new = record_drafts(Ledger.from_airflow(), drafts)
        for draft in new:
            self.log.info("new draft %s (%s):\n%s", draft["entry_id"], draft["severity"], draft["text"])
        return new


def alert_not_watching(reason: str) -> int:
    """Tell the crisis and PR addresses (once a day) that the watcher cannot watch; returns mails sent."""
    from koho.config import load_config
    from koho.ledger.db import Ledger
    from koho.notify import AlertSpec, city_name, crisis_team, notify_pending, record_alerts

    try:
        ledger = Ledger.from_airflow()
        day = datetime.now(UTC).date().isoformat()
        with ledger.session() as session:
            new = record_alerts(
                session,
                [
                    AlertSpec(
                        kind="config_error",
                        dedup_key=f"disaster_watch:{day}",
                        severity="critical",
                        subject="the disaster-information watcher is not watching the JMA feed",
                        detail={
                            "reason": reason,
                            "what to do": "fix include/config/emergency.yaml (feed_url, area codes)",
                        },
                    )
                ],
            )
        config = load_config()
        to = crisis_team(config)
        return notify_pending(ledger, to=to, city_name=city_name(config), kinds=["config_error"]) if new and to else 0
    except Exception:  # the task fails anyway; the alert is a courtesy that must not hide the cause
        log.exception("could not alert that the watcher is not watching")
        return 0


def review_requests(drafts: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """One **disaster_draft** run per new draft (its run id is the draft's: never twice)."""
    return [
        {
            "trigger_run_id": f"draft__{d['entry_id']}",
            "conf": {
                "entry_id": d["entry_id"],
                "key": d["key"],
                "message": d["text"],
                "link": d.get("link"),
                "severity": d.get("severity") or "high",
                "document": d.get("document"),
            },
        }
        for d in drafts or []
    ]


# ---------------------------------------------------------------------------------------------
# the person who decides


def draft_body(params: Mapping[str, Any]) -> str:
    """The approval request: the draft exactly as it would be posted (editable below), and its source."""
    from koho.posting.report import md_code

    return "\n\n".join(
        [
            "**The disaster-information watcher drafted an emergency post.** Check it against the source, "
            "correct the text in the field below if needed, then Approve to broadcast it to every official "
            "account and the website (emergency_broadcast), or Reject to drop it.",
            f"Severity: **{params.get('severity') or 'high'}**",
            "Draft:\n\n" + md_code(str(params.get("message") or "")),
            "Source bulletin:\n\n" + md_code(str(params.get("document") or "")),
        ]
    )


def _hitl_approval_class():
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    class DraftApprovalOperator(ApprovalOperator):
        """Approve (and correct) one draft: the form field ``message`` starts as the draft's text."""

        def execute(self, context: Any) -> Any:
            from airflow.sdk import Param
            from airflow.sdk.definitions.param import ParamsDict

            params = context["params"]
            self.body = draft_body(params)
            self.params = ParamsDict(
                {
                    "message": Param(
                        str(params.get("message") or ""),
                        type="string",
                        format="multiline",
                        minLength=1,
                        maxLength=5000,
                        title="配信する本文 / Text to broadcast",
                        description="必要なら修正してから承認してください。Correct it if needed, then Approve.",
                    )
                }
            )
            return super().execute(context)

    return DraftApprovalOperator


DraftApprovalOperator = _hitl_approval_class()


def broadcast_conf(params: Mapping[str, Any], approval: Mapping[str, Any] | None) -> dict[str, Any]:
    """The emergency_broadcast form filled in from an approved draft (the approver's text wins)."""
    from koho.config.posting import load_posting_settings
    from koho.posting.vocabulary import DEFAULT_TARGETS

    approval = approval or {}
    edited = (approval.get("params_input") or {}).get("message")
    who = (approval.get("responded_by_user") or {}).get("name") or "disaster_watch"
    return {
        "message": str(edited or params.get("message") or ""),
        "link": params.get("link"),
        "severity": params.get("severity") or "high",
        "targets": list(DEFAULT_TARGETS),
        "kind": "alert",
        "follow_up_of": None,
        "confirmation": load_posting_settings().emergency_confirmation,
        "requested_by": f"{who} (approved draft)",
        "draft_of": params.get("entry_id"),
    }


def settle_draft(
    ledger, params: Mapping[str, Any], approval: Mapping[str, Any] | None, *, timeout: timedelta
) -> dict[str, Any]:
    """Mark the draft approved, rejected or expired (alerting the crisis addresses once)."""
    from koho.config import load_config
    from koho.ledger import entries
    from koho.ledger.errors import UnknownRecord
    from koho.notify import AlertSpec, city_name, crisis_team, notify_pending, record_alerts

    entry_id = str(params.get("entry_id") or "")
    chosen = ((approval or {}).get("chosen_options") or [None])[0]
    who = ((approval or {}).get("responded_by_user") or {}).get("name")
    status = {"Approve": "approved", "Reject": "rejected"}.get(chosen or "", "cancelled")
    with ledger.session() as session:
        if entry_id:
            try:
                entries.set_entry_status(session, entry_id, status)
            except UnknownRecord:
                log.warning("draft %s is not in the ledger", entry_id)
        if status == "cancelled":
            record_alerts(
                session,
                [
                    AlertSpec(
                        kind="approval_timeout",
                        dedup_key=f"approval_timeout:{entry_id}",
                        severity="critical",
                        subject=f"emergency draft {entry_id} was not approved within {timeout}; it was not broadcast",
                        detail={
                            "draft": str(params.get("message") or ""),
                            "source": str(params.get("document") or ""),
                            "what to do": "trigger emergency_broadcast by hand if it is still needed",
                        },
                    )
                ],
            )
    mailed = 0
    if status == "cancelled":
        config = load_config()
        to = crisis_team(config)
        mailed = notify_pending(ledger, to=to, city_name=city_name(config), kinds=["approval_timeout"]) if to else 0
    return {"entry_id": entry_id, "status": status, "by": who, "mailed": mailed}
