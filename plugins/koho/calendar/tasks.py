"""Task bodies of the calendar DAGs (``calendar_sync``, ``calendar_retract``): glue between
Airflow's task context and the calendar logic. DAG files stay wiring only."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from koho.timeutil import utcnow

log = logging.getLogger(__name__)

APPROVAL_DAG_ID = "calendar_approval"
PUBLISH_DAG_ID = "calendar_publish"


# -- calendar_sync ----------------------------------------------------------------------------


def sync() -> dict[str, Any]:
    from koho.calendar.sync import sync_calendar
    from koho.config import load_config
    from koho.ledger.db import Ledger

    config = load_config()
    for problem in config.problems:
        log.warning("config problem (accounts_sync reports it): %s", problem)
    ledger = Ledger.from_airflow()
    ledger.migrate()
    report = sync_calendar(ledger, config)
    for text in report.errors:
        log.error("calendar problem: %s", text)
    for text in report.warnings:
        log.warning("calendar warning: %s", text)
    log.info(
        "calendar sync: %d valid entries in %s; created %s, revised %s, %d unchanged; planned %s; "
        "cancelled %s; removed %s; changed after publish %s; %d approval request(s)",
        report.entries,
        ", ".join(report.files) or "(no file)",
        report.created or "none",
        report.revised or "none",
        report.unchanged,
        report.planned or "nothing",
        report.cancelled or "nothing",
        report.removed or "none",
        report.changed_after_publish or "none",
        len(report.approvals),
    )
    return report.as_dict()


def approval_runs(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``TriggerDagRunOperator`` kwargs: one ``calendar_approval`` run per entry revision awaiting approval."""
    return [
        {"trigger_run_id": item["run_id"], "conf": {"entry_id": item["entry_id"], "revision": item["revision"]}}
        for item in (report or {}).get("approvals", [])
    ]


def publish_kick(report: dict[str, Any] | None, *, reason: str = "sync", now: datetime | None = None) -> list[dict]:
    """One ``calendar_publish`` run right away when deliveries were planned within its horizon.

    ``calendar_publish`` runs every five minutes and looks six minutes ahead; a post planned two
    minutes before its time could otherwise wait for the next run and go out late.
    """
    if not (report or {}).get("due_soon"):
        return []
    now = now or utcnow()
    return [{"trigger_run_id": f"kick__{reason}__{now.strftime('%Y%m%dT%H%M%S.%fZ')}"}]


def report(report: dict[str, Any] | None) -> dict[str, Any]:
    """Record and mail the alerts the sync raised; fail the run (after all valid work) on invalid entries."""
    from airflow.sdk.exceptions import AirflowFailException

    from koho.config import load_config
    from koho.ledger.db import Ledger
    from koho.notify import AlertSpec, city_name, notify_pending, pr_section, record_alerts

    if report is None:
        raise AirflowFailException("the calendar sync did not finish; see the sync_calendar task's log")
    config = load_config()
    ledger = Ledger.from_airflow()
    specs = [AlertSpec(**alert) for alert in report.get("alerts", [])]
    with ledger.session() as session:
        new = record_alerts(session, specs)
    to = pr_section(config)
    mailed = 0
    if to:
        mailed = notify_pending(ledger, to=to, city_name=city_name(config), kinds=["config_error"])
    elif specs:
        log.error("no PR section mail address (policy.pr_department in departments.yaml); alerts stay in the ledger")
    summary = {
        "new_alerts": new,
        "mailed": mailed,
        "errors": len(report.get("errors", [])),
        "warnings": len(report.get("warnings", [])),
        "planned": report.get("planned", {}),
        "approvals": len(report.get("approvals", [])),
    }
    log.info("calendar_sync summary: %s", summary)
    if report.get("errors"):
        raise AirflowFailException(
            f"{len(report['errors'])} problem(s) in the calendar; every valid entry was synced:\n"
            + "\n".join(report["errors"])
        )
    return summary


# -- calendar_retract -------------------------------------------------------------------------


def retract_plan(params: dict[str, Any]) -> list[dict[str, Any]]:
    from airflow.sdk.exceptions import AirflowFailException

    from koho.calendar.retract import RetractError, retract_targets
    from koho.ledger.db import Ledger

    entry_id = str(params.get("entry_id") or "").strip()
    if not entry_id:
        raise AirflowFailException("give the entry id to retract (Trigger DAG w/ config: entry_id)")
    if params.get("confirm") is not True:
        raise AirflowFailException(f"not confirmed: tick 'confirm' to delete the published posts of '{entry_id}'")
    accounts = params.get("accounts") or []
    if isinstance(accounts, str):
        accounts = [a for a in accounts.replace(",", " ").split() if a]
    try:
        targets = retract_targets(Ledger.from_airflow(), entry_id, accounts)
    except RetractError as exc:
        raise AirflowFailException(str(exc)) from exc
    log.info(
        "retracting %d post(s) of %s: %s",
        len(targets),
        entry_id,
        ", ".join(f"{t['account_id']}:{t['remote_id']}" for t in targets),
    )
    return targets


def retract_report(params: dict[str, Any], results: list[dict[str, Any]] | None, by: str | None) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from koho.calendar.retract import finish
    from koho.config import load_config
    from koho.ledger.db import Ledger
    from koho.notify import Message, city_name, content_id, max_message_bytes, pr_section, send

    entry_id = str(params.get("entry_id") or "").strip()
    ledger = Ledger.from_airflow()
    summary = finish(ledger, entry_id, list(results or []), by=by)
    config = load_config()
    to = pr_section(config)
    if to and (summary["deleted"] or summary["manual"] or summary["failed"]):
        city = city_name(config)
        try:
            message = Message(
                id=content_id(f"retract:{entry_id}", summary),
                to=tuple(to),
                subject=f"[Koho] {city}: retracted '{entry_id}' ({len(summary['manual'])} to delete by hand)",
                template="mail/retract.html.j2",
                context={"summary": summary, "by": by, "city_name": city},
            )
            send(message, ledger=ledger, max_bytes=max_message_bytes(config))
        except Exception as exc:
            log.warning("could not mail the retraction report: %s", exc)
    log.info(
        "retraction of %s: %d deleted, %d to delete by hand, %d failed",
        entry_id,
        len(summary["deleted"]),
        len(summary["manual"]),
        len(summary["failed"]),
    )
    if summary["failed"]:
        raise AirflowFailException(
            "some posts could not be deleted:\n" + "\n".join(r["instruction"] for r in summary["failed"])
        )
    return summary
