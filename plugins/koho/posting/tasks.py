"""Task bodies of **adhoc_post** and **emergency_broadcast**: glue between Airflow's task context
and the posting logic (``form``, ``adhoc``, ``emergency``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from koho.posting import report

log = logging.getLogger(__name__)


def _fail(title: str, problems: list) -> AirflowFailException:
    return AirflowFailException(
        f"{title}:\n"
        + "\n".join(
            f"- field '{p['field']}'" + (f", account '{p['account']}'" if p.get("account") else "") + f": {p['reason']}"
            for p in problems
        )
    )


def triggering_user(context: Mapping[str, Any]) -> str | None:
    """The user who triggered the run, as the API server recorded it from the login (None for
    scheduled or CLI runs). The form's ``requested_by`` is typed text and proves nothing."""
    dag_run = context.get("dag_run")
    return getattr(dag_run, "triggering_user_name", None) or None


# ---------------------------------------------------------------------------------------------
# adhoc_post


def check_and_record(
    form: Mapping[str, Any], *, run_id: str, run_after: datetime | None, triggered_by: str | None
) -> dict[str, Any]:
    """Check the form; unless it is a dry run, record and plan the post (all or nothing).

    A dry run never fails: its return value and log show the fitted texts and every problem.
    A real run with any error fails here, before anything is written.
    """
    from koho.config import load_config
    from koho.config.posting import load_posting_settings
    from koho.ledger.db import Ledger
    from koho.posting import adhoc
    from koho.posting.form import adhoc_entry_id
    from koho.timeutil import utcnow

    config = load_config()
    settings = load_posting_settings()
    for problem in config.errors:
        log.warning("configuration problem (the rest is used): %s", problem)
    now = utcnow()
    ledger = Ledger.from_airflow()
    ledger.migrate()
    # the entry id is fixed by the run: a retried task writes the same entry, never a second one
    entry_id = adhoc_entry_id(run_id, run_after or now)
    check, recorded = adhoc.submit(
        ledger, form, config, settings, now=now, entry_id=entry_id, triggered_by=triggered_by
    )
    result = check.as_dict()
    if check.dry_run:
        _link_previews(result, config)
    log.info("ad-hoc post check:\n%s", report.preview_text(result))
    if check.dry_run:
        log.info("dry run: nothing was recorded or posted")
        return {"check": result, "recorded": None}
    if not check.ok:
        raise _fail("the form has problems; nothing was recorded or posted", result["errors"])
    result["approval_body"] = report.approval_body(result, check.entry.text if check.entry else "")
    return {"check": result, "recorded": recorded}


def _link_previews(result: dict[str, Any], config: Any) -> None:
    """Dry run: link each account on a stand-in platform (the sandbox) to its rendered preview."""
    from koho.timeline_links import timelines

    accounts = {
        a.id: {"connection_id": a.connection_id, "handle": a.handle, "name": a.name}
        for a in config.accounts
        if a.connection_id
    }
    wanted = {accounts[p["account_id"]]["connection_id"] for p in result["previews"] if p["account_id"] in accounts}
    report.link_previews(result, accounts, timelines(wanted))


def gate(checked: Mapping[str, Any]) -> list[str]:
    """Which way the run goes: nowhere (dry run), to the approval, or straight to the release."""
    if not checked.get("recorded"):
        return []
    return ["approve"] if checked["recorded"]["needs_approval"] else ["release"]


def release(checked: Mapping[str, Any], approval: Mapping[str, Any] | None) -> dict[str, Any]:
    from koho.ledger.db import Ledger
    from koho.posting import adhoc

    who = (approval or {}).get("responded_by_user") or {}
    slot = adhoc.release(Ledger.from_airflow(), checked["recorded"], approved_by=who.get("name") if who else None)
    log.info("sending %s account(s) at %s", len(slot["chains"]), slot["at"])
    return slot


def settle(
    checked: Mapping[str, Any] | None, approval: Mapping[str, Any] | None, outcomes: list[dict] | None
) -> dict[str, Any]:
    """The run's end: what was posted where, or why nothing was (rejected, not approved in time)."""
    from koho.config import load_config
    from koho.config.posting import load_posting_settings
    from koho.delivery.tasks import report_outcomes
    from koho.ledger.db import Ledger
    from koho.notify import city_name, pr_section
    from koho.posting import adhoc

    if not checked:
        raise AirflowFailException("the form was not accepted (see check_and_record's log); nothing was posted")
    recorded = checked.get("recorded")
    if not recorded:
        return {"dry_run": True, **checked["check"]}
    ledger = Ledger.from_airflow()
    config = load_config()
    city = city_name(config)
    pr = pr_section(config)
    if recorded["needs_approval"] and not approval:
        settings = load_posting_settings()
        waited = timedelta(minutes=settings.approval_timeout_minutes)
        adhoc.drop(ledger, recorded, status="cancelled", reason=f"no PR approval within {waited}")
        mailed = adhoc.alert_timeout(ledger, recorded, to=pr, city_name=city, waited=waited)
        raise AirflowFailException(
            f"entry {recorded['entry_id']} was not approved within {waited}: nothing was "
            f"posted; the PR section was alerted ({mailed} alert(s) mailed)"
        )
    if approval and (approval.get("chosen_options") or [None])[0] != "Approve":
        who = (approval.get("responded_by_user") or {}).get("name") or "a PR approver"
        adhoc.drop(ledger, recorded, status="rejected", reason=f"rejected by {who}")
        log.warning("entry %s was rejected by %s: nothing was posted", recorded["entry_id"], who)
        return {"entry_id": recorded["entry_id"], "status": "rejected", "rejected_by": who, "accounts": []}
    flat = [o for o in outcomes or [] if o]
    summary = report_outcomes(ledger, flat, to=pr, city_name=city) if flat else {}
    rows = adhoc.deliveries_table(ledger, recorded["entry_id"])
    log.info("ad-hoc post %s:\n%s", recorded["entry_id"], report.outcome_rows(rows))
    result = {"entry_id": recorded["entry_id"], "status": "sent", "accounts": rows, **summary}
    failed = [r for r in rows if r["status"] in ("failed", "needs_attention")]
    if failed:
        raise AirflowFailException("not published on " + ", ".join(f"{r['account_id']} ({r['error']})" for r in failed))
    return result


# ---------------------------------------------------------------------------------------------
# emergency_broadcast


def broadcast(
    form: Mapping[str, Any],
    *,
    run_id: str,
    run_after: datetime | None,
    triggered_by: str | None,
    try_number: int = 1,
    dag_id: str = "emergency_broadcast",
) -> dict[str, Any]:
    """Validate, post everywhere at once, summarise (log table + mail); returns the summary.

    The deliveries record ``dag_id/run_id``, as every sender does, so the calendar view links
    each emergency post straight to the run that sent it."""
    from koho.config import load_config
    from koho.config.posting import load_posting_settings
    from koho.emergency import broadcast
    from koho.ledger.db import Ledger
    from koho.timeutil import utcnow

    config = load_config()
    settings = load_posting_settings()
    ledger = Ledger.from_airflow()
    ledger.migrate()
    entry_id = broadcast.emergency_entry_id(run_id, run_after or utcnow())
    check = broadcast.validate_emergency(
        dict(form), config, settings, entry_id=entry_id, triggered_by=triggered_by, lookup=broadcast.lookup_in(ledger)
    )
    for problem in check.problems:
        log.warning("%s", problem)
    if not check.ok:
        from koho.posting.form import problem_dict

        raise _fail("the emergency form has problems; nothing was posted", [problem_dict(p) for p in check.errors])
    result = broadcast.send_all(
        ledger, check, config, settings, run_id=f"{dag_id}/{run_id}", now=utcnow(), retry_of_task=try_number > 1
    )
    log.info(
        "emergency broadcast %s: %s of %s published in %.1f s\n%s",
        result["entry_id"],
        result["published"],
        result["total"],
        result["seconds"],
        report.outcome_rows(result["accounts"]),
    )
    try:
        result["mailed_to"] = broadcast.mail_summary(result, config, ledger)
    except Exception as exc:  # the posts are out; a mail problem must not hide or repeat them
        log.exception("the summary mail could not be sent")
        result["mailed_to"] = []
        result["mail_error"] = f"{type(exc).__name__}: {exc}"
    return result


def verdict(result: Mapping[str, Any] | None) -> dict[str, Any]:
    if not result:
        raise AirflowFailException("the broadcast did not finish; see the broadcast task's log")
    bad = [a for a in result["accounts"] if a["status"] in ("failed", "not_planned")]
    pending = [a for a in result["accounts"] if a["status"] == "pending"]
    if pending:
        log.warning("still being tried: %s", ", ".join(a["account_id"] for a in pending))
    if bad:
        raise AirflowFailException("not published on: " + "; ".join(f"{a['account_id']}: {a['error']}" for a in bad))
    return {"published": result["published"], "pending": len(pending)}
