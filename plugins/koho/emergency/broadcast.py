"""The emergency broadcast: the same accurate text on every official account and the city
website, within seconds, and an immediate per-account account of what happened (policy P3, P8).

Accuracy first: the text is never reworded (:func:`koho.text.fitting.fit` in ``emergency``
mode). Where a platform's hard limit forces it, the text is split into a thread of the original
words, or — on platforms without threads — cut at a sentence with "…" and a link to the full
text on the city website. No caps, no spacing, no quiet hours.

Speed second: one task plans every delivery and sends them all in parallel at once
(:func:`koho.delivery.slots.send_slot` without waiting), through the same exactly-once sender as
every other post. Accounts that fail for a passing reason (429, 5xx) are tried again in the same
task with a short, capped backoff; what still has not gone out stays ``planned`` in the ledger,
where **calendar_publish** keeps trying, and the summary says so.

Follow-ups (``update``, ``all_clear``) answer the original emergency post where the platform has
replies (the reply's parent is the original's last part on that account) and are new posts
elsewhere; an all-clear takes the website's emergency banner down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from koho.calendar.schema import check_https
from koho.calendar.targets import READ_ONLY_PLATFORMS, resolve_targets
from koho.channels.registry import CHANNELS, channel_class, channels_in
from koho.config.loader import KohoConfig
from koho.config.posting import PostingSettings
from koho.config.schema import AccountConfig
from koho.errors import HasProblems, KohoError, Problem, Where
from koho.ledger import deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import Delivery
from koho.posting.form import looks_like_html
from koho.posting.vocabulary import DEFAULT_TARGETS, KIND_LABELS, KINDS, SEVERITIES
from koho.text.hygiene import link_problems, text_problems
from koho.timeutil import to_local, utcnow

log = logging.getLogger(__name__)

FIELDS = (
    "message",
    "link",
    "severity",
    "targets",
    "confirmation",
    "follow_up_of",
    "kind",
    "images",
    "requested_by",
    "draft_of",
)
MAX_MESSAGE = 5000
#: A delivery another attempt left "sending" is reconciled and tried again after this long. Short
#: on purpose: within one broadcast no other process sends these deliveries (see the module doc).
STALE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Original:
    """The emergency entry a follow-up answers."""

    entry_id: str
    origin: str
    revision: int
    title: str


@dataclass
class EmergencyCheck(HasProblems):
    entry_id: str
    message: str
    link: str | None
    severity: str
    kind: str
    title: str
    accounts: list[AccountConfig]
    channels: list[str]  # the channels Koho writes itself that it goes to (the website)
    images: list[str]
    image_platforms: list[str]
    follow_up_of: str | None
    requested_by: str
    triggered_by: str | None
    draft_of: str | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def payload(self) -> dict[str, Any]:
        channels = ["social", *self.channels]
        return {
            "id": self.entry_id,
            "title": self.title,
            "text": self.message,
            "link": self.link,
            "accounts": [a.id for a in self.accounts],
            "channels": channels,
            "images": list(self.images),
            "image_platforms": list(self.image_platforms),
            "severity": self.severity,
            "kind": self.kind,
            "follow_up_of": self.follow_up_of,
            "all_clear": self.kind == "all_clear",
            "requested_by": self.requested_by,
            "triggered_by": self.triggered_by,
            "draft_of": self.draft_of,
        }


def emergency_entry_id(run_id: str, now: datetime) -> str:
    import hashlib

    return f"emergency-{to_local(now):%Y%m%d-%H%M%S}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def validate_emergency(
    form: Mapping[str, Any],
    config: KohoConfig,
    settings: PostingSettings,
    *,
    entry_id: str,
    triggered_by: str | None = None,
    lookup: Callable[[str], Original | None] = lambda _id: None,
) -> EmergencyCheck:
    """Check the form. Form-level mistakes (confirmation, empty text, unknown target...) stop the
    whole broadcast; nothing is judged per account here except what the registry says."""
    problems: list[Problem] = []

    def error(name: str, message: str) -> None:
        problems.append(Problem(Where(field=name), message))

    for name in form:
        if name not in FIELDS:
            error(name, f"unknown field '{name}'; the form has {', '.join(FIELDS)}")
    confirmation = form.get("confirmation")
    if not isinstance(confirmation, str) or confirmation.strip() != settings.emergency_confirmation:
        error(
            "confirmation",
            f"type exactly '{settings.emergency_confirmation}' to confirm the broadcast (got {confirmation!r})",
        )
    message = form.get("message")
    if not isinstance(message, str) or not message.strip():
        error("message", "must not be empty: the text to post on every account")
        message = ""
    message = message.strip()
    if len(message) > MAX_MESSAGE:
        error("message", f"{len(message)} characters; at most {MAX_MESSAGE} (put the details on the website)")
    if markup := looks_like_html(message):
        error(
            "message",
            f"contains markup that looks like HTML ({markup!r}); the text is posted as plain text, remove the tags",
        )
    own_domains = config.policy.genuine_domains() if config.policy else []
    for reason in text_problems(message, own_domains=own_domains):
        error("message", reason)
    link = form.get("link") or None
    if link is not None:
        try:
            check_https(str(link).strip(), what="link")
            link = str(link).strip()
            for reason in link_problems(link, own_domains=own_domains):
                error("link", reason)
        except ValueError as exc:
            error("link", str(exc))
            link = None
    severity = form.get("severity") or "critical"
    if severity not in SEVERITIES:
        error("severity", f"{severity!r} is not allowed; expected one of {', '.join(SEVERITIES)}")
    kind = form.get("kind") or "alert"
    if kind not in KINDS:
        error("kind", f"{kind!r} is not allowed; expected alert (緊急情報), update (続報) or all_clear (解除)")
    follow_up_of = (form.get("follow_up_of") or "").strip() or None
    if follow_up_of:
        original = lookup(follow_up_of)
        if original is None:
            error(
                "follow_up_of",
                f"no entry '{follow_up_of}' in the ledger; give the id of the earlier emergency "
                "broadcast (its run's summary shows it)",
            )
        elif original.origin != "emergency":
            error("follow_up_of", f"entry '{follow_up_of}' is a {original.origin} post, not an emergency broadcast")
        if kind == "alert":
            error("kind", "a follow-up is an update (続報) or an all_clear (解除); choose one")
    requested_by = str(form.get("requested_by") or triggered_by or "").strip()[:100]
    draft_of = str(form.get("draft_of") or "").strip() or None

    raw_targets = form.get("targets")
    if raw_targets is None:
        raw_targets = list(DEFAULT_TARGETS)
    if isinstance(raw_targets, str):
        raw_targets = [raw_targets]
    if not isinstance(raw_targets, list) or not all(isinstance(t, str) for t in raw_targets):
        error("targets", f"expected a list of account ids or groups, got {raw_targets!r}")
        raw_targets = []
    channels = channels_in(raw_targets)
    social = [t for t in raw_targets if not channels_in([t])]
    accounts: list[AccountConfig] = []
    if social:
        accounts, found = resolve_targets(social, config, where=lambda i: Where(field=f"targets[{i}]"))
        for problem in found:
            if problem.severity == "error" and not problem.where.account:
                problems.append(problem)
            else:  # a retired or suspended account named explicitly: left out, said in the summary
                problems.append(Problem(problem.where, problem.message, "warning"))
    if not accounts and not channels:
        defaults = " and ".join(f"the {t}" for t in DEFAULT_TARGETS if t in CHANNELS)
        error(
            "targets",
            f"no account and no {' or '.join(CHANNELS)} to post to; the default is every active account and {defaults}",
        )
    for name in channels:
        if reason := channel_class(name).unavailable(config):
            error("targets", reason)

    images = form.get("images") or []
    if isinstance(images, str):
        images = [images]
    image_platforms = []
    needs_image = [a for a in accounts if _image_required(a.platform)]
    if not images and needs_image and settings.emergency_image:
        images = [settings.emergency_image]
        image_platforms = sorted({a.platform for a in needs_image})
    elif images:
        image_platforms = sorted({a.platform for a in accounts if _takes_images(a.platform)} | set(channels))
    label = KIND_LABELS.get(kind, KIND_LABELS["alert"])
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    title = f"【{label}】{first[:60]}" if first else f"【{label}】"
    return EmergencyCheck(
        entry_id=entry_id,
        message=message,
        link=link,
        severity=severity,
        kind=kind,
        title=title,
        accounts=accounts,
        channels=channels,
        images=list(images),
        image_platforms=image_platforms,
        follow_up_of=follow_up_of,
        requested_by=requested_by,
        triggered_by=triggered_by,
        draft_of=draft_of,
        problems=problems,
    )


def _image_required(platform: str) -> bool:
    from koho.platforms.registry import hook_class

    return platform not in READ_ONLY_PLATFORMS and hook_class(platform).capabilities.image_required


def _takes_images(platform: str) -> bool:
    from koho.platforms.registry import hook_class

    return hook_class(platform).capabilities.images


def lookup_in(ledger: Ledger) -> Callable[[str], Original | None]:
    def lookup(entry_id: str) -> Original | None:
        with ledger.session(readonly=True) as session:
            row = entries.get_entry(session, entry_id)
            return Original(row.id, row.origin, row.revision, row.title) if row else None

    return lookup


def full_text_url(config: KohoConfig, check: EmergencyCheck) -> str | None:
    """Where a channel of the broadcast publishes the full text (the "more" link of shortened posts)."""
    urls = (channel_class(name)(config).full_text_url(check.entry_id) for name in check.channels)
    return next((url for url in urls if url), None)


# ---------------------------------------------------------------------------------------------
# planning and sending


@dataclass
class AccountResult:
    account_id: str
    platform: str
    status: str  # published, failed, pending (still being tried), not_planned
    parts: int = 0
    url: str | None = None
    remote_id: str | None = None
    error: str | None = None
    reply_to: str | None = None  # the original's delivery this follow-up answers


def plan(
    ledger: Ledger, check: EmergencyCheck, config: KohoConfig, *, now: datetime
) -> tuple[list[tuple[int, ...]], dict[str, AccountResult]]:
    """Record the entry and plan every delivery in one transaction; returns the chains to send
    and the accounts that got nothing (with the reason). Planning twice is a no-op."""
    from koho.channels.registry import channel_accounts
    from koho.delivery.planner import fitted_parts, supports_replies
    from koho.ledger import accounts as ledger_accounts
    from koho.posting.adhoc import sync_accounts

    limits = dict(config.policy.platform_limits) if config.policy else {}
    more_url = full_text_url(config, check)
    skipped: dict[str, AccountResult] = {}
    chains: list[tuple[int, ...]] = []
    with ledger.session() as session:
        sync_accounts(session, config, [a.id for a in check.accounts])
        ledger_accounts.upsert_accounts(session, channel_accounts(config, check.channels))
        payload = check.payload()
        row = entries.upsert_entry(
            session,
            {
                "id": check.entry_id,
                "origin": "emergency",
                "source": "emergency_broadcast form",
                "title": check.title,
                "publish_at": now,
                "payload": payload,
                "approval_required": False,
                "content_hash": _hash(payload),
                "created_by": (check.triggered_by or "unknown")[:255],
                "status": "approved",
            },
        ).entry
        parents = _parents(session, check.follow_up_of) if check.follow_up_of else {}
        for account in check.accounts:
            try:
                parts = fitted_parts(
                    account.platform,
                    check.message,
                    link=check.link,
                    hashtags=(),
                    mode="emergency",
                    more_url=more_url,
                    limits=limits,
                )
            except KohoError as exc:
                skipped[account.id] = AccountResult(account.id, account.platform, "not_planned", error=str(exc))
                continue
            parent_id = parents.get(account.id) if supports_replies(account.platform) else None
            chain = []
            for index, part in enumerate(parts):
                result = deliveries.plan_delivery(
                    session,
                    entry_id=row.id,
                    account_id=account.id,
                    revision=row.revision,
                    due_at=now,
                    text=part,
                    part_index=index,
                    parent_delivery_id=chain[-1] if chain else parent_id,
                )
                chain.append(result.delivery.id)
            chains.append(tuple(chain))
        for name in check.channels:  # the full text, never fitted: the page the shortened posts link to
            result = deliveries.plan_delivery(
                session, entry_id=row.id, account_id=name, revision=row.revision, due_at=now, text=check.message
            )
            chains.append((result.delivery.id,))
    return chains, skipped


def _hash(payload: Mapping[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _parents(session, original_id: str) -> dict[str, int]:
    """Per account, the original's last published part: the post a follow-up answers."""
    original = entries.get_entry(session, original_id)
    if original is None:
        return {}
    rows = deliveries.for_entry(session, original_id, revision=original.revision, status="published")
    last: dict[str, int] = {}
    for delivery in rows:
        last[delivery.account_id] = delivery.id  # ordered by part: the last one wins
    return last


def _resend_chains(
    ledger: Ledger, entry_id: str, *, now: datetime, stale_after: timedelta = STALE_AFTER
) -> list[tuple[int, ...]]:
    """What is left to send: per account, from the first part not yet out (planned, or 'sending'
    for longer than ``stale_after`` — an attempt that died or lost its answer)."""
    with ledger.session(readonly=True) as session:
        rows = deliveries.for_entry(session, entry_id)
    by_account: dict[str, list[Delivery]] = {}
    for delivery in rows:
        by_account.setdefault(delivery.account_id, []).append(delivery)
    chains = []
    for parts in by_account.values():
        for i, delivery in enumerate(parts):
            stale = delivery.status == "sending" and (
                delivery.sending_since is None or delivery.sending_since < now - stale_after
            )
            if delivery.status == "planned" or stale:
                chains.append(tuple(d.id for d in parts[i:] if d.status in ("planned", "sending")))
                break
            if delivery.status != "published":
                break  # failed or cancelled: the rest of the thread cannot follow it
    return [c for c in chains if c]


def send_all(
    ledger: Ledger,
    check: EmergencyCheck,
    config: KohoConfig,
    settings: PostingSettings,
    *,
    run_id: str | None,
    hook_factory: Any = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retry_of_task: bool = False,
) -> dict[str, Any]:
    """Plan, send every account at once, retry the passing failures; returns the summary.

    ``retry_of_task``: this is a later try of the Airflow task; deliveries an earlier try of the
    same run left 'sending' (it died mid-call) are reconciled and taken over once they are
    ``OWN_RECLAIM_AFTER`` (a minute) old: a request still in flight from the dead try must have
    had time to land before the account is read, or the post could appear twice.
    """
    from koho.delivery.sender import OWN_RECLAIM_AFTER, Sender
    from koho.delivery.slots import Slot, send_slot
    from koho.platforms.registry import hook_for

    started = time.monotonic()
    now = now or utcnow()
    chains, skipped = plan(ledger, check, config, now=now)
    sender = Sender(
        ledger,
        dag_run_id=run_id,
        hook_factory=hook_factory or hook_for,
        config=config,
        stale_after=STALE_AFTER,
        reclaim_own=retry_of_task,
    )
    stale_after = OWN_RECLAIM_AFTER if retry_of_task and run_id else STALE_AFTER
    rounds = 0
    if chains:
        send_slot(sender, Slot(now, tuple(chains)), max_workers=max(1, len(chains)), wait=False)
        rounds = 1
    deadline = started + settings.emergency_retry_seconds
    delay = 1.0
    while True:
        left = _resend_chains(ledger, check.entry_id, now=utcnow(), stale_after=stale_after)
        if not left or time.monotonic() + delay > deadline:
            break
        log.warning("%s account(s) not published yet (passing failures); trying again in %.0f s", len(left), delay)
        sleep(delay)
        delay = min(delay * 2, settings.emergency_retry_max_delay_seconds)
        send_slot(sender, Slot(utcnow(), tuple(left)), max_workers=max(1, len(left)), wait=False)
        rounds += 1
    return summary(ledger, check, skipped, seconds=time.monotonic() - started, rounds=rounds)


def summary(
    ledger: Ledger, check: EmergencyCheck, skipped: Mapping[str, AccountResult], *, seconds: float, rounds: int
) -> dict[str, Any]:
    from koho.posting.adhoc import deliveries_table

    rows = deliveries_table(ledger, check.entry_id)
    results = []
    for row in rows:
        status = {"planned": "pending", "sending": "pending", "pending": "pending"}.get(row["status"], row["status"])
        error = row["error"]
        if status == "pending":
            error = (error or "not confirmed yet") + " — still being tried (calendar_publish keeps trying)"
        results.append(
            AccountResult(row["account_id"], row["platform"], status, row["parts"], row["url"], row["remote_id"], error)
        )
    results += list(skipped.values())
    for problem in check.problems:
        if problem.where.account and problem.where.account not in {r.account_id for r in results}:
            results.append(AccountResult(problem.where.account, "", "not_planned", error=problem.message))
    results.sort(key=lambda r: (r.status != "published", r.account_id))
    counts = {s: sum(r.status == s for r in results) for s in ("published", "failed", "pending", "not_planned")}
    return {
        "entry_id": check.entry_id,
        "title": check.title,
        "kind": check.kind,
        "severity": check.severity,
        "follow_up_of": check.follow_up_of,
        "message": check.message,
        "link": check.link,
        "triggered_by": check.triggered_by,
        "requested_by": check.requested_by,
        **counts,
        "total": len(results),
        "seconds": round(seconds, 2),
        "rounds": rounds,
        "accounts": [asdict(r) for r in results],
    }


def mail_summary(result: Mapping[str, Any], config: KohoConfig, ledger: Ledger) -> list[str]:
    """Mail the per-account summary to the crisis addresses and the PR section (once per outcome,
    however often the task is retried); returns the recipients."""
    from koho.notify import Message, city_name, content_id, crisis_team, max_message_bytes, send

    to = crisis_team(config)
    if not to:
        log.error("no crisis or PR mail address configured (policy.yaml crisis_emails, pr_department)")
        return []
    city = city_name(config)
    ok = result["published"] == result["total"]
    subject = (
        f"[Koho] {city}: {KIND_LABELS.get(result['kind'], '')} {result['published']}/{result['total']} "
        f"published"
        + ("" if ok else f", {result['failed'] + result['not_planned']} failed, {result['pending']} pending")
    )
    message = Message(
        id=content_id(f"emergency_summary:{result['entry_id']}", result["accounts"]),
        to=tuple(to),
        subject=subject,
        template="mail/emergency_summary.html.j2",
        context={"result": result, "city_name": city},
    )
    send(message, ledger=ledger, max_bytes=max_message_bytes(config))
    return to
