"""The ad-hoc post form: every check before anything is written, and the preview staff see.

Staff of any department fill in the **adhoc_post** trigger form. Everything that can be wrong is
found here, at once, each problem naming the form field (``accounts[1]``, ``text``,
``publish_at``...) and, where it concerns one account only, that account:

* the shape of each field and the entry as a whole: the same :class:`koho.calendar.schema.CalendarEntry`
  the calendar uses (https links, image names, hashtags...);
* the targets: account ids and groups through :func:`koho.calendar.targets.resolve_targets`;
* the images: in include/media, a real image, not too big, not too many;
* the text, fitted to every target platform by the platform's own count
  (:func:`koho.text.fitting.fit`): exactly what would be posted;
* the volume rules against what the ledger already has planned: daily caps, spacing and quiet
  hours (:func:`koho.calendar.rules.volume_problems`).

Unlike the calendar, an ad-hoc post is one decision by one person: **if anything is wrong,
nothing is posted anywhere** (no half-posting to the accounts that happened to pass). A dry run
returns the same checks and the exact fitted texts without writing anything.

Text is plain text everywhere. Markup that looks like HTML is refused in the post itself (a
city post never needs ``<script>``), and whatever the form holds is shown escaped: in the log
tables (plain text), in the approval request (inside Markdown code) and in mails (autoescaped).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from koho.calendar.media import image_problem
from koho.calendar.rules import PlannedSlot, volume_problems
from koho.calendar.schema import CalendarEntry, is_url
from koho.calendar.targets import resolve_targets
from koho.calendar.timeparse import EXAMPLE, parse_publish_at
from koho.config.loader import KohoConfig
from koho.config.loader import media_dir as default_media_dir
from koho.config.posting import PostingSettings
from koho.config.schema import AccountConfig, InputLimits
from koho.errors import HasProblems, KohoError, Problem, Where
from koho.text.hygiene import link_problems, text_problems
from koho.timeutil import holiday_name, to_local

#: The form's fields, as the DAG's Params name them.
FIELDS = (
    "accounts",
    "text",
    "title",
    "link",
    "images",
    "hashtags",
    "when",
    "publish_at",
    "allow_quiet_hours",
    "dry_run",
    "requested_by",
)
WHEN = ("now", "at")
#: At most this many images: Bluesky and X take four per post, and four keep a post readable.
MAX_IMAGES = 4
MAX_TITLE = 60
#: Tags (or tag-like fragments) that have no place in a plain-text post.
HTML_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?\s*>|javascript\s*:", re.IGNORECASE)

_FIELD_OF = {"targets": "accounts"}  # CalendarEntry field -> form field


@dataclass
class AccountPreview:
    """What one account would post: the fitted part(s), counted the platform's way."""

    account_id: str
    platform: str
    name: str
    parts: list[str]
    lengths: list[int]
    limit: int | None
    unit: str
    strategy: str  # as_is, thread, shortened; not_fitted when no text could be fitted
    images: list[str] = field(default_factory=list)  # attached to the first part
    rules: list[str] = field(default_factory=list)  # volume rules the post would break
    #: Every problem that names this account ("field: reason", warnings marked): shown beside its text.
    problems: list[str] = field(default_factory=list)
    link: str | None = None  # shown as a link card where the platform makes one
    #: Where a stand-in platform renders this post (dry run on the sandbox), else None.
    preview_url: str | None = None


@dataclass
class AdhocCheck(HasProblems):
    """The outcome of checking one form: the problems, and (when valid) the entry and previews."""

    entry: CalendarEntry | None
    problems: list[Problem]
    previews: list[AccountPreview]
    publish_now: bool
    needs_approval: bool
    approval_reason: str
    requested_by: str
    triggered_by: str | None
    dry_run: bool
    image_platforms: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.entry is not None and not self.errors

    def payload(self) -> dict[str, Any]:
        """The entry as the ledger stores it (``calendar_entries.payload``)."""
        assert self.entry is not None
        data = self.entry.model_dump(mode="json")
        data["image_platforms"] = list(self.image_platforms)
        data["requested_by"] = self.requested_by
        data["triggered_by"] = self.triggered_by
        return data

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.payload(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom and the dry run's return value."""
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "entry_id": self.entry.id if self.entry else None,
            "title": self.entry.title if self.entry else None,
            "publish_at": self.entry.publish_at.isoformat() if self.entry else None,
            "publish_at_jst": f"{to_local(self.entry.publish_at):%Y-%m-%d %H:%M} JST" if self.entry else None,
            "publish_now": self.publish_now,
            "needs_approval": self.needs_approval,
            "approval_reason": self.approval_reason,
            "requested_by": self.requested_by,
            "triggered_by": self.triggered_by,
            "errors": [problem_dict(p) for p in self.errors],
            "warnings": [problem_dict(p) for p in self.warnings],
            "previews": [asdict(p) for p in self.previews],
        }


def problem_dict(problem: Problem) -> dict[str, Any]:
    return {
        "field": problem.where.field,
        "account": problem.where.account,
        "reason": problem.message,
        "severity": problem.severity,
    }


def adhoc_entry_id(run_id: str, now: datetime) -> str:
    """A stable id for the run's entry: the same run (a retried task) always writes the same entry."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"adhoc-{to_local(now):%Y%m%d-%H%M%S}-{digest}"


def looks_like_html(text: str) -> str | None:
    match = HTML_MARKUP.search(text or "")
    return match.group(0)[:40] if match else None


def default_title(text: str) -> str:
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return first[: MAX_TITLE - 1] + "…" if len(first) > MAX_TITLE else first


# ---------------------------------------------------------------------------------------------
# the checks


class _Form:
    """The raw form with type checks per field; a field that fails is left out of what follows."""

    def __init__(self, form: Mapping[str, Any]):
        self.raw = dict(form)
        self.problems: list[Problem] = []
        self.bad: set[str] = set()
        for name in self.raw:
            if name not in FIELDS:
                self.error(name, f"unknown field '{name}'; the form has {', '.join(FIELDS)}")

    def error(self, name: str, message: str, *, account: str | None = None, severity: str = "error") -> None:
        self.problems.append(Problem(Where(field=name, account=account), message, severity))
        if severity == "error":
            self.bad.add(name.split("[", 1)[0])

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw.get(name, default)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(name, "must not be empty")
            return None
        if not isinstance(value, str):
            self.error(name, f"expected text, got {type(value).__name__} {value!r}")
            return None
        return value

    def strings(self, name: str) -> list[str]:
        value = self.raw.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\n、]", value) if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, f"expected a list of texts, got {value!r}")
            return []
        return [v.strip() for v in value if v.strip()]

    def flag(self, name: str) -> bool:
        value = self.raw.get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.error(name, f"expected true or false, got {value!r}")
            return False
        return value


def validate_adhoc(
    form: Mapping[str, Any],
    config: KohoConfig,
    settings: PostingSettings,
    *,
    now: datetime,
    entry_id: str,
    triggered_by: str | None = None,
    existing: Iterable[PlannedSlot] = (),
    media_dir: Path | None = None,
) -> AdhocCheck:
    """Check one ad-hoc form; nothing is written. ``existing`` are the ledger's planned posts."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    media_dir = media_dir or default_media_dir()
    f = _Form(form)
    dry_run = f.flag("dry_run")
    allow_quiet = f.flag("allow_quiet_hours")
    requested_by = (f.text("requested_by", required=True) or "").strip()
    if len(requested_by) > 100:
        f.error("requested_by", f"{len(requested_by)} characters; at most 100 (a name and a section)")
    text = f.text("text", required=True)
    if text is not None:
        text = unicodedata.normalize("NFC", text)
        markup = looks_like_html(text)
        if markup:
            f.error(
                "text",
                f"contains markup that looks like HTML ({markup!r}); posts are plain text and "
                "Koho never renders HTML: remove the tags",
            )
    title = f.text("title")
    if title is not None and (markup := looks_like_html(title)):
        f.error("title", f"contains markup that looks like HTML ({markup!r}); titles are plain text")
    own_domains = config.policy.genuine_domains() if config.policy else []
    bounds = config.policy.limits if config.policy else InputLimits()
    flooded = text is not None and len(text) > bounds.max_text_chars
    if flooded:
        f.error(
            "text", f"{len(text):,} characters; at most {bounds.max_text_chars:,} (policy.yaml limits.max_text_chars)"
        )
    for name, value in (("text", text), ("title", title)):
        for reason in text_problems(value or "", own_domains=own_domains):
            f.error(name, reason)
    publish_at, publish_now = _when(f, now)
    targets = f.strings("accounts")
    if not targets and "accounts" not in f.bad:
        f.error(
            "accounts",
            "choose at least one account or group (all, general, special, topic:<topic>, "
            "platform:<platform>, or an account id)",
        )
    images = f.strings("images")
    if len(images) > MAX_IMAGES:
        f.error("images", f"{len(images)} images; at most {MAX_IMAGES} per post")
    hashtags = f.strings("hashtags")
    link = f.text("link")
    for reason in link_problems(link.strip(), own_domains=own_domains) if link else ():
        f.error("link", reason)

    triggered = (triggered_by or "").strip() or None
    needs_approval = not settings.is_pr(triggered)
    reason = (
        f"{triggered} is in the PR section (posting.yaml pr_users)"
        if not needs_approval
        else f"{triggered or 'an unknown user'} is not in the PR section: a PR approver must approve"
    )

    entry = _entry(
        f,
        entry_id=entry_id,
        title=title or default_title(text or "") or "(untitled)",
        publish_at=publish_at,
        targets=targets,
        text=text,
        link=link,
        images=images,
        hashtags=hashtags,
        approval=needs_approval,
    )
    check = AdhocCheck(
        entry=None,
        problems=f.problems,
        previews=[],
        publish_now=publish_now,
        needs_approval=needs_approval,
        approval_reason=reason,
        requested_by=requested_by,
        triggered_by=triggered,
        dry_run=dry_run,
    )
    if entry is None:
        return check

    for i, image in enumerate(entry.images if "images" not in f.bad else ()):
        if not is_url(image):
            problem = image_problem(image, media_dir)
            if problem:
                f.error(f"images[{i}]", problem)

    accounts: list[AccountConfig] = []
    if "accounts" not in f.bad:
        accounts = _targets(f, entry, config)
    if publish_at is not None and "publish_at" not in f.bad:
        _holiday(f, entry, config)

    previews = []
    limits = dict(config.policy.platform_limits) if config.policy else {}
    # decided once: one account's problem (Instagram without an image) must not change the others'
    images_ok = "images" not in f.bad
    for account in accounts:
        previews.append(
            _preview(
                f,
                entry,
                account,
                limits,
                # the schema's (stripped) text; a flood past the length bound is never fitted
                text=entry.text if text is not None and not flooded else None,
                link=entry.link if "link" not in f.bad else None,
                images_ok=images_ok,
                max_parts=bounds.max_thread_parts,
            )
        )

    if publish_at is not None and "publish_at" not in f.bad and accounts:
        _volume(f, entry, accounts, config, existing, previews, allow_quiet=allow_quiet)

    previews += _unreached(f.problems, previews, config)
    _problems_beside(previews, f.problems)
    check.image_platforms = sorted({p.platform for p in previews if p.images})
    check.previews = previews
    if not f.bad:
        check.entry = entry.model_copy(update={"accounts": [a.id for a in accounts], "source": "adhoc_post form"})
    return check


def _when(f: _Form, now: datetime) -> tuple[datetime | None, bool]:
    when = f.raw.get("when", "now")
    if when is None:
        when = "now"
    if when not in WHEN:
        f.error("when", f"{when!r} is not allowed; expected 'now' (今すぐ) or 'at' (日時指定)")
        return None, False
    if when == "now":
        return now, True
    raw = f.raw.get("publish_at")
    if raw in (None, ""):
        f.error("publish_at", f"'at' needs a date and time, like {EXAMPLE}")
        return None, False
    try:
        moment = _iso(raw) or parse_publish_at(raw)
    except ValueError as exc:
        f.error("publish_at", str(exc))
        return None, False
    if moment <= now:
        f.error(
            "publish_at",
            f"{to_local(moment):%Y-%m-%d %H:%M} JST is in the past (now "
            f"{to_local(now):%Y-%m-%d %H:%M} JST); choose a future time or 'now'",
        )
        return None, False
    if moment > now + timedelta(days=366):
        f.error("publish_at", f"{to_local(moment):%Y-%m-%d} is more than a year ahead; use the posting calendar")
        return None, False
    return moment, False


def _iso(raw: Any) -> datetime | None:
    """An ISO 8601 value as the form's date-time picker sends it ("…T09:00:00.000Z"); None if not one."""
    from koho.timeutil import to_utc

    if not isinstance(raw, str) or "T" not in raw:
        return None
    try:
        return to_utc(datetime.fromisoformat(raw.strip()))
    except ValueError:
        return None


def _entry(f: _Form, **values: Any) -> CalendarEntry | None:
    """The entry through the calendar's own schema; failed fields are reported under form names."""
    data = {
        "id": values["entry_id"],
        "title": values["title"],
        "publish_at": values["publish_at"],
        "targets": values["targets"],
        "channels": ["social"],
        "text": values["text"],
        "link": values["link"],
        "images": values["images"],
        "hashtags": values["hashtags"],
        "approval": values["approval"],
        "allow_holiday": True,
    }
    placeholders = {"text": "-", "publish_at": datetime.now().astimezone(), "title": "-"}
    for name, placeholder in placeholders.items():
        if data[name] is None:
            data[name] = placeholder
    try:
        return CalendarEntry.model_validate(data)
    except ValidationError as exc:
        failed = set()
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
            name = _FIELD_OF.get(loc[0], loc[0]) if loc else "form"
            index = next((p for p in loc[1:] if p.isdigit()), None)
            label = f"{name}[{index}]" if index is not None else name
            f.error(label, _message(err))
            if loc:
                failed.add(loc[0])
    # go on without the failed fields, so that the other fields' problems are found too (the
    # form stays refused: every failed field is in ``f.bad``)
    stand_ins = {
        "link": None,
        "images": [],
        "hashtags": [],
        "title": "-",
        "text": "-",
        "targets": [],
        "id": "adhoc-invalid",
    }
    try:
        return CalendarEntry.model_validate({**data, **{k: v for k, v in stand_ins.items() if k in failed}})
    except ValidationError:
        return None


def _message(err: dict) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if err["type"] == "string_too_long":
        return f"too long: {msg.lower()}"
    if err["type"] == "too_long":
        return msg
    got = err.get("input")
    return f"{msg} (got {got!r})" if got is not None and not isinstance(got, dict | list) else msg


def _targets(f: _Form, entry: CalendarEntry, config: KohoConfig) -> list[AccountConfig]:
    accounts, problems = resolve_targets(entry.targets, config, where=lambda i: Where(field=f"accounts[{i}]"))
    for problem in problems:
        # one decision, one post: an account the writer named but Koho will not post to is an error
        severity = "error" if problem.where.account or problem.severity == "error" else "warning"
        if severity == "error":
            f.bad.add("accounts")
        f.problems.append(Problem(problem.where, problem.message, severity))
    if not accounts and "accounts" not in f.bad:
        f.error("accounts", "no active account Koho can post to is among the chosen accounts and groups")
    return accounts


def _holiday(f: _Form, entry: CalendarEntry, config: KohoConfig) -> None:
    local = to_local(entry.publish_at)
    name = holiday_name(local.date())
    rule = config.policy.holidays if config.policy else "warn"
    if not name or rule == "allow":
        return
    day = f"{local:%Y-%m-%d} is a public holiday ({name})"
    if rule == "block":
        f.error("publish_at", f"{day} and the policy blocks posting on holidays; choose a working day")
    else:
        f.error("publish_at", f"{day}: fewer staff can answer replies", severity="warning")


def _preview(
    f: _Form,
    entry: CalendarEntry,
    account: AccountConfig,
    limits: dict,
    *,
    text: str | None,
    link: str | None,
    images_ok: bool,
    max_parts: int | None = None,
) -> AccountPreview:
    """What ``account`` would post; a text that cannot be fitted still gives the account its row."""
    from koho.delivery.planner import supports_replies
    from koho.platforms.registry import hook_class
    from koho.text.fitting import fit
    from koho.text.rules import rules_for

    rule = rules_for(account.platform, limits)
    capabilities = hook_class(account.platform).capabilities
    images = list(entry.images) if images_ok else []
    if rule.image_required and not images and images_ok:
        f.error(
            "images",
            f"{account.platform} posts need an image: add one (a file in include/media or an https "
            "URL), or leave this account out",
            account=account.id,
        )
    attached = images if capabilities.images else []
    if images and not capabilities.images:
        f.error(
            "images",
            f"{account.platform} posts go out without the images (Koho cannot attach images there); the text is posted",
            account=account.id,
            severity="warning",
        )
    unfitted = AccountPreview(
        account.id, account.platform, account.name, [], [], rule.max_length, rule.unit, "not_fitted", attached
    )
    if text is None:
        return unfitted
    try:
        fitted = fit(
            account.platform,
            text,
            link=link,
            hashtags=entry.hashtags,
            allow_thread=supports_replies(account.platform),
            rule=rule,
            max_parts=max_parts,
        )
    except KohoError as exc:
        f.error(
            "text",
            f"does not fit {account.platform} even as a thread: {exc}; shorten the text or leave this account out",
            account=account.id,
        )
        return unfitted
    return AccountPreview(
        account.id,
        account.platform,
        account.name,
        list(fitted.parts),
        list(fitted.lengths),
        fitted.limit,
        rule.unit,
        fitted.strategy,
        attached,
        link=link,
    )


def _unreached(problems: list[Problem], previews: list[AccountPreview], config: KohoConfig) -> list[AccountPreview]:
    """A row for each account a problem names that gets no text (retired, suspended, unknown)."""
    have = {p.account_id for p in previews}
    known = {a.id: a for a in config.accounts}
    out = []
    for account_id in dict.fromkeys(p.where.account for p in problems if p.where.account):
        if account_id and account_id not in have:
            account = known.get(account_id)
            platform = account.platform if account else "?"
            out.append(
                AccountPreview(account_id, platform, account.name if account else "", [], [], None, "", "not_fitted")
            )
    return out


def _problems_beside(previews: list[AccountPreview], problems: list[Problem]) -> None:
    """Every problem that names an account, on that account's row."""
    rows = {p.account_id: p for p in previews}
    for problem in problems:
        row = rows.get(problem.where.account or "")
        if row is not None:
            mark = "" if problem.severity == "error" else f"{problem.severity}: "
            row.problems.append(f"{mark}{problem.where.field or 'form'}: {problem.message}")


def _volume(
    f: _Form,
    entry: CalendarEntry,
    accounts: list[AccountConfig],
    config: KohoConfig,
    existing: Iterable[PlannedSlot],
    previews: list[AccountPreview],
    *,
    allow_quiet: bool,
) -> None:
    here = Where(field="publish_at")
    slots = [s for s in existing if s.entry_id != entry.id]
    slots += [PlannedSlot(a.id, entry.publish_at, entry.id, where=here) for a in accounts]
    caps = {a.id: config.caps_for(a) for a in config.accounts}
    by_account = {p.account_id: p for p in previews}
    for found in volume_problems(slots, caps):
        quiet_ok = found.rule == "quiet_hours" and allow_quiet
        message = found.message + (" (allowed: allow_quiet_hours is set)" if quiet_ok else "")
        if found.rule == "quiet_hours" and not allow_quiet:
            message += "; or set allow_quiet_hours (静穏時間帯でも投稿) if it cannot wait"
        f.error("publish_at", message, account=found.slot.account_id, severity="warning" if quiet_ok else "error")
        if found.slot.account_id in by_account:
            by_account[found.slot.account_id].rules.append(f"{found.rule}: {message}")
