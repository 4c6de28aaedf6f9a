"""Validate the posting calendar: every problem located, every valid entry kept.

``load_calendar`` reads every calendar file, checks each entry on its own (schema, time, links,
images, holidays, targets, text length per platform), then checks the entries together (ids
unique across files, daily caps, spacing, quiet hours). An error about the entry drops that
entry; an error about one target account only takes that account out
(``CalendarEntry.excluded_accounts``) and the entry goes on to the others. Warnings never drop
anything. Nothing valid is ever held back because something beside it is broken.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from koho.calendar.media import image_problem
from koho.calendar.rules import PlannedSlot, volume_problems
from koho.calendar.schema import FROM_FILE, RESOLVED_FIELDS, CalendarEntry, is_url
from koho.calendar.sources import RawEntry, SourceRead, calendar_files, read_source
from koho.calendar.targets import resolve_targets
from koho.calendar.timeparse import EXAMPLE
from koho.config.loader import KohoConfig
from koho.config.loader import media_dir as default_media_dir
from koho.config.schema import AccountConfig, InputLimits
from koho.errors import HasProblems, InputError, KohoError, Problem
from koho.platforms.registry import PLATFORMS
from koho.text.hygiene import link_problems, text_problems
from koho.timeutil import holiday_name, to_local

_INPUT_FIELDS = [name for name in CalendarEntry.model_fields if name not in RESOLVED_FIELDS]
_HINTS = {
    "id": "a short id of letters, digits, '-', '_' or '.' that no other entry uses (e.g. gomi-2027-01)",
    "title": "a short title (shown on the website and in the newsletter)",
    "publish_at": f"a date and time like {EXAMPLE}",
    "text": "the text of the post",
    "targets": "account ids or groups (all, general, special, topic:<topic>, platform:<platform>)",
    "channels": "social, website and/or newsletter",
    "status": "planned or cancelled",
}


@dataclass
class CalendarLoad(HasProblems):
    """What loading the calendar gave: the usable entries and every problem found."""

    entries: list[CalendarEntry]
    problems: list[Problem] = field(default_factory=list)

    def by_id(self) -> dict[str, CalendarEntry]:
        return {e.id: e for e in self.entries}

    def raise_for_problems(self) -> None:
        if self.errors:
            raise InputError(self.errors)


def load_calendar(
    directory: Path,
    config: KohoConfig,
    *,
    now: datetime,
    existing: Iterable[PlannedSlot] = (),
    media_dir: Path | None = None,
    published: Collection[str] = (),
) -> CalendarLoad:
    """Load and validate every calendar file directly in ``directory``.

    ``now`` (aware) decides what is in the past. ``existing`` are deliveries already planned in the
    ledger (they count against caps and spacing; those of an entry present in the files are
    replaced by the file's version). ``published`` lists entry ids already delivered, whose time
    may lie in the past without being an error. ``media_dir`` defaults to include/media.
    """
    limits = config.policy.limits if config.policy else None
    reads = [read_source(path, limits=limits) for path in calendar_files(Path(directory))]
    return validate_sources(reads, config, now=now, existing=existing, media_dir=media_dir, published=published)


def validate_sources(
    reads: Iterable[SourceRead],
    config: KohoConfig,
    *,
    now: datetime,
    existing: Iterable[PlannedSlot] = (),
    media_dir: Path | None = None,
    published: Collection[str] = (),
) -> CalendarLoad:
    """:func:`load_calendar` for sources already read (tests, the upload form)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    checker = _EntryChecker(config, now=now, media_dir=media_dir or default_media_dir(), published=set(published))
    problems: list[Problem] = []
    accepted: list[_Accepted] = []
    first_place: dict[str, str] = {}
    for read in reads:
        problems += read.problems
        for raw in read.entries:
            entry_id = raw.data.get("id")
            duplicate = None
            if isinstance(entry_id, str | int) and not isinstance(entry_id, bool) and str(entry_id).strip():
                key = str(entry_id).strip()
                if key in first_place:
                    duplicate = Problem(
                        raw.where(("id",)),
                        f"duplicate id '{key}': already used at {first_place[key]}; ids must be "
                        "unique across all calendar files (this one is not loaded)",
                    )
                else:
                    first_place[key] = str(replace(raw.where(("id",)), field=None))
            found, result = checker.guarded_check(raw)
            problems += found
            if duplicate:
                problems.append(duplicate)
            elif result is not None:
                accepted.append(result)
    problems += _apply_volume_rules(accepted, config, existing)
    entries: list[CalendarEntry] = []
    for item in accepted:
        keep = item.finish()
        if keep is None:
            problems.append(
                Problem(
                    item.raw.where(("targets",)),
                    "no target account is left to post to (see the problems above); the entry is not loaded",
                )
            )
        else:
            entries.append(keep)
    return CalendarLoad(entries, problems)


@dataclass
class _Accepted:
    """An entry that passed the entry-level checks, with its accounts still open to exclusion."""

    raw: RawEntry
    entry: CalendarEntry
    accounts: list[AccountConfig]
    excluded: dict[str, str]

    def exclude(self, account_id: str, reason: str) -> None:
        self.excluded.setdefault(account_id, reason)

    def finish(self) -> CalendarEntry | None:
        accounts = [a.id for a in self.accounts if a.id not in self.excluded]
        social_only = self.entry.channels == ["social"]
        if self.entry.status == "planned" and social_only and not accounts:
            return None
        return self.entry.model_copy(
            update={
                "accounts": accounts,
                "excluded_accounts": dict(self.excluded),
                "source": self.raw.label,
            }
        )


class _EntryChecker:
    """The checks one entry can pass or fail on its own."""

    def __init__(self, config: KohoConfig, *, now: datetime, media_dir: Path, published: set[str]):
        self.config = config
        self.now = now
        self.media_dir = media_dir
        self.published = published
        self.limits = config.policy.limits if config.policy else InputLimits()
        self.own_domains = config.policy.genuine_domains() if config.policy else []
        self._fits: dict[tuple, tuple[str | None, int]] = {}

    def guarded_check(self, raw: RawEntry) -> tuple[list[Problem], _Accepted | None]:
        """:meth:`check`, with anything unforeseen in the entry reported at the entry, not raised."""
        try:
            return self.check(raw)
        except Exception as exc:
            return [
                *raw.problems,
                Problem(raw.where(()), f"the entry cannot be checked ({exc}); it is not loaded"),
            ], None

    def check(self, raw: RawEntry) -> tuple[list[Problem], _Accepted | None]:
        problems = list(raw.problems)
        for name in RESOLVED_FIELDS:
            if name in raw.data:
                problems.append(Problem(raw.where((name,)), f"'{name}' is filled in by Koho; remove it from the file"))
        data = {k: v for k, v in raw.data.items() if k not in RESOLVED_FIELDS}
        try:
            entry = CalendarEntry.model_validate(data, context=FROM_FILE)
        except ValidationError as exc:
            errors = [
                e
                for e in exc.errors(include_url=False)
                if not (e["type"] == "missing" and e["loc"] and e["loc"][0] in raw.refused)
            ]
            return problems + [_schema_problem(raw, err) for err in errors], None
        if "social" in entry.channels and not entry.targets:
            problems.append(Problem(raw.where(("targets",)), f"a social post needs targets: {_HINTS['targets']}"))
        problems += self._text_problems(raw, entry)
        if _has_errors(problems):
            return problems, None

        if entry.status == "cancelled":
            accounts, _ = resolve_targets(entry.targets, self.config)
            return problems, _Accepted(raw, entry, accounts, {})

        problems += self._entry_problems(raw, entry)
        accounts, excluded, target_problems = self._targets(raw, entry)
        problems += target_problems
        if _has_errors(problems, entry_level_only=True):
            return problems, None
        if "social" in entry.channels:
            for account in accounts:
                for problem in self._account_problems(raw, entry, account):
                    problems.append(problem)
                    if problem.severity == "error":
                        excluded.setdefault(account.id, problem.message)
        return problems, _Accepted(raw, entry, accounts, excluded)

    # -- the entry as a whole ------------------------------------------------------------------

    def _text_problems(self, raw: RawEntry, entry: CalendarEntry) -> list[Problem]:
        """The text rules (:mod:`koho.text.hygiene`) and the length bound, on every text field."""
        out: list[Problem] = []
        texts: list[tuple[tuple, str]] = [(("title",), entry.title), (("text",), entry.text)]
        texts += [(("overrides", key), value) for key, value in entry.overrides.items()]
        if entry.category:
            texts.append((("category",), entry.category))
        limit = self.limits.max_text_chars
        for path, value in texts:
            if len(value) > limit:
                out.append(
                    Problem(
                        raw.where(path),
                        f"{len(value):,} characters; at most {limit:,} are accepted before fitting "
                        "(policy.yaml limits.max_text_chars): shorten it or link to a page with the full text",
                    )
                )
                continue
            for reason in text_problems(value, own_domains=self.own_domains, formulas=False):
                out.append(Problem(raw.where(path), reason))
        if entry.link:
            out += [Problem(raw.where(("link",)), r) for r in link_problems(entry.link, own_domains=self.own_domains)]
        return out

    def _entry_problems(self, raw: RawEntry, entry: CalendarEntry) -> list[Problem]:
        out: list[Problem] = []
        local = to_local(entry.publish_at)
        if entry.publish_at <= self.now and entry.id not in self.published:
            out.append(
                Problem(
                    raw.where(("publish_at",)),
                    f"{local:%Y-%m-%d %H:%M} JST is in the past (now {to_local(self.now):%Y-%m-%d %H:%M} "
                    "JST); choose a future time, or set the status to cancelled",
                )
            )
        for i, image in enumerate(entry.images):
            if not is_url(image):
                reason = image_problem(image, self.media_dir)
                if reason:
                    out.append(Problem(raw.where(("images", i)), reason))
        if "social" in entry.channels:
            out += self._holiday(raw, entry, local)
        out += self._override_keys(raw, entry)
        policy = self.config.policy
        if "newsletter" in entry.channels and policy:
            limit = policy.channels.newsletter.max_item_chars
            if len(entry.text) > limit:
                out.append(
                    Problem(
                        raw.where(("text",)),
                        f"text has {len(entry.text)} characters; the newsletter takes {limit} per item, "
                        "so the editors will need to shorten it",
                        severity="warning",
                    )
                )
        return out

    def _holiday(self, raw: RawEntry, entry: CalendarEntry, local: datetime) -> list[Problem]:
        name = holiday_name(local.date())
        rule = self.config.policy.holidays if self.config.policy else "warn"
        if not name or rule == "allow":
            return []
        day = f"{local:%Y-%m-%d} is a public holiday ({name})"
        if rule == "block":
            return [
                Problem(
                    raw.where(("publish_at",)),
                    f"{day} and the policy blocks posting on holidays (policy.yaml holidays: block); "
                    "choose a working day",
                )
            ]
        if entry.allow_holiday:
            return []
        return [
            Problem(
                raw.where(("publish_at",)),
                f"{day}: fewer staff can answer replies; set allow_holiday (祝日可) if this is intended",
                severity="warning",
            )
        ]

    def _override_keys(self, raw: RawEntry, entry: CalendarEntry) -> list[Problem]:
        out = []
        for key in entry.overrides:
            if key not in PLATFORMS and key not in self.config.accounts_by_id:
                known = [*PLATFORMS, *self.config.accounts_by_id]
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                out.append(
                    Problem(
                        raw.where(("overrides", key)),
                        f"override for unknown platform or account '{key}'{suggestion}; expected a "
                        f"platform ({', '.join(PLATFORMS)}) or an account id",
                    )
                )
        return out

    def _targets(self, raw: RawEntry, entry: CalendarEntry):
        accounts, found = resolve_targets(entry.targets, self.config, where=lambda i: raw.where(("targets", i)))
        excluded: dict[str, str] = {}
        for problem in found:
            if problem.where.account:
                excluded[problem.where.account] = problem.message
        reached = {a.id for a in accounts} | {a.platform for a in accounts}
        for key in entry.overrides:
            if key in reached or key not in (*PLATFORMS, *self.config.accounts_by_id):
                continue
            found.append(
                Problem(
                    raw.where(("overrides", key)),
                    f"override for '{key}' has no effect: no target account matches it",
                    severity="warning",
                )
            )
        return accounts, excluded, found

    # -- one target account ----------------------------------------------------------------------

    def _account_problems(self, raw: RawEntry, entry: CalendarEntry, account: AccountConfig) -> list[Problem]:
        from koho.text.rules import rules_for

        limits = self.config.policy.platform_limits if self.config.policy else {}
        rule = rules_for(account.platform, limits)
        out = []
        if rule.image_required and not entry.images:
            out.append(
                Problem(
                    raw.where(("images",), account=account.id),
                    f"{account.platform} posts need an image: add one under 画像 / images "
                    "(a file in include/media or an https:// URL)",
                )
            )
        text, source = entry.text_for(account.id, account.platform)
        reason, parts = self._fit(account.platform, text, entry, rule)
        path = ("overrides", source.split(".", 1)[1]) if source.startswith("overrides.") else ("text",)
        message, severity = self._length_finding(account.platform, reason, parts)
        if message:
            out.append(Problem(raw.where(path, account=account.id), message, severity=severity))
        return out

    def _length_finding(self, platform: str, reason: str | None, parts: int) -> tuple[str | None, str]:
        """What to say about a text's fitting on ``platform``: (message or None, severity)."""
        own_text = f"give this platform its own text (overrides / {platform}用本文)"
        if reason:
            return f"text does not fit {platform} even after fitting: {reason}; shorten the text or {own_text}", "error"
        if parts > self.limits.max_thread_parts:
            return (
                f"the text would be posted on {platform} as a thread of {parts} posts; at most "
                f"{self.limits.max_thread_parts} are allowed (policy.yaml limits.max_thread_parts): "
                f"shorten it or {own_text}",
                "error",
            )
        if parts > self.limits.warn_thread_parts:
            return f"the text will be posted on {platform} as a thread of {parts} posts", "warning"
        return None, "warning"

    def _fit(self, platform: str, text: str, entry: CalendarEntry, rule: Any) -> tuple[str | None, int]:
        """Why the text cannot be fitted to the platform (or None) and how many posts it makes;
        cached per platform and text."""
        from koho.text.fitting import fit

        key = (platform, text, entry.link, tuple(entry.hashtags))
        if key not in self._fits:
            try:
                fitted = fit(platform, text, link=entry.link, hashtags=entry.hashtags, rule=rule)
                self._fits[key] = (None, len(fitted.parts))
            except KohoError as exc:
                self._fits[key] = (str(exc), 0)
        return self._fits[key]


def _has_errors(problems: list[Problem], *, entry_level_only: bool = False) -> bool:
    return any(p.severity == "error" and not (entry_level_only and p.where.account) for p in problems)


def _apply_volume_rules(
    accepted: list[_Accepted], config: KohoConfig, existing: Iterable[PlannedSlot]
) -> list[Problem]:
    """Caps, spacing and quiet hours across all entries and the already planned deliveries."""
    in_files = {item.entry.id for item in accepted}
    slots = [replace(slot, existing=True) for slot in existing if slot.entry_id not in in_files]
    owner: dict[tuple[str, str], _Accepted] = {}
    for item in accepted:
        if item.entry.status != "planned" or "social" not in item.entry.channels:
            continue
        for account in item.accounts:
            if account.id in item.excluded:
                continue
            slots.append(
                PlannedSlot(account.id, item.entry.publish_at, item.entry.id, where=item.raw.where(("publish_at",)))
            )
            owner[(item.entry.id, account.id)] = item
    caps = {a.id: config.caps_for(a) for a in config.accounts}
    out = []
    for found in volume_problems(slots, caps):
        item = owner[(found.slot.entry_id or "", found.slot.account_id)]
        item.exclude(found.slot.account_id, found.message)
        out.append(found.to_problem())
    return out


def _schema_problem(raw: RawEntry, err: dict) -> Problem:
    loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    return Problem(raw.where(loc), _humane(err, loc))


def _humane(err: dict, loc: tuple) -> str:
    kind, msg = err["type"], err["msg"]
    name = str(loc[0]) if loc else ""
    hint = _HINTS.get(name)
    got = err.get("input")
    if kind == "missing":
        return f"required field is missing; expected {hint}" if hint else "required field is missing"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(name, _INPUT_FIELDS, n=1)
        suggestion = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown field '{name}'{suggestion}; expected one of {', '.join(_INPUT_FIELDS)}"
    if kind == "string_too_short":
        return f"must not be empty; expected {hint}" if hint else "must not be empty"
    if kind == "string_pattern_mismatch" and name == "id":
        return f"'{got}' is not a valid id; expected {hint}"
    if kind == "literal_error":
        return f"'{got}' is not allowed; {msg.replace('Input should be', 'expected')}"
    if kind == "bool_parsing" or kind == "bool_type":
        return f"'{got}' is not a yes/no value; expected true or false"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if got is not None and not isinstance(got, dict | list):
        return f"{msg} (got {got!r})"
    return msg
