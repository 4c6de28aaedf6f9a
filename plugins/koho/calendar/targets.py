"""Turn an entry's targets (account ids and groups) into the accounts it is posted to.

Groups let staff say "every account", "the topic accounts for tourism" or "all Instagram accounts"
without listing ids that change when an account is opened or retired. Groups quietly leave out
accounts that are not active or that Koho cannot publish to (YouTube is read-only); naming such an
account explicitly is reported, because then the writer expected it to post.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Callable, Iterable

from koho.config.loader import KohoConfig
from koho.config.schema import AccountConfig
from koho.errors import Problem, Where

GROUPS = ("all", "general", "special")
GROUP_PREFIXES = ("topic:", "platform:")
#: Japanese spellings staff use for the groups
ALIASES = {
    "すべて": "all",
    "全て": "all",
    "全部": "all",
    "全アカウント": "all",
    "総合": "general",
    "一般": "general",
    "代表": "general",
    "専門": "special",
    "分野別": "special",
}
READ_ONLY_PLATFORMS = frozenset({"youtube"})  # Koho reads these; it never posts to them


def normalise_target(target: str) -> str:
    key = unicodedata.normalize("NFKC", target).strip().lower().replace(" ", "")
    return ALIASES.get(key, key)


def publishable(account: AccountConfig) -> bool:
    return account.status == "active" and account.platform not in READ_ONLY_PLATFORMS


def resolve_targets(
    entry_targets: Iterable[str],
    config: KohoConfig,
    *,
    where: Callable[[int], Where] | None = None,
) -> tuple[list[AccountConfig], list[Problem]]:
    """The accounts ``entry_targets`` reach, in registry order without repeats, and the problems.

    ``where(i)`` gives the place of the i-th target for messages. A problem that concerns one
    account (retired: error; suspended: warning) carries ``Where.account``: that account is left
    out and the rest proceed. A problem without an account (unknown id or group) concerns the
    entry as a whole.
    """
    place = where or (lambda i: Where(field=f"targets[{i}]"))
    chosen: set[str] = set()
    problems: list[Problem] = []
    accounts = config.accounts
    for i, target in enumerate(entry_targets):
        key = normalise_target(target)
        members, problem = _members(key, target, accounts, place(i))
        if problem:
            problems.append(problem)
        if members is None:
            continue
        if key in config.accounts_by_id:
            account = config.accounts_by_id[key]
            issue = _explicit_issue(account, place(i))
            if issue:
                problems.append(issue)
                continue
        elif not any(publishable(a) for a in members):
            problems.append(
                Problem(place(i), f"group '{target}' has no active account Koho can post to", severity="warning")
            )
        chosen.update(a.id for a in members if publishable(a))
    return [a for a in accounts if a.id in chosen], problems


def _members(key: str, raw: str, accounts: list[AccountConfig], here: Where):
    """(accounts the target names, or None when it names nothing; a problem if it is unknown)."""
    if key == "all":
        return accounts, None
    if key in ("general", "special"):
        return [a for a in accounts if a.kind == key], None
    if key.startswith("topic:"):
        topic = key.removeprefix("topic:")
        topics = sorted({a.topic for a in accounts if a.topic})
        members = [a for a in accounts if a.topic == topic]
        if not members:
            return None, Problem(here, f"unknown topic '{topic}' in '{raw}'; known topics: {', '.join(topics)}")
        return members, None
    if key.startswith("platform:"):
        platform = key.removeprefix("platform:")
        platforms = sorted({a.platform for a in accounts})
        if platform in READ_ONLY_PLATFORMS:
            return None, Problem(here, f"Koho does not post to {platform} (it only reads it); remove '{raw}'")
        members = [a for a in accounts if a.platform == platform]
        if not members:
            return None, Problem(
                here,
                f"no account on platform '{platform}' in '{raw}'; platforms in the registry: {', '.join(platforms)}",
            )
        return members, None
    for account in accounts:
        if account.id == key:
            return [account], None
    hint = difflib.get_close_matches(key, [a.id for a in accounts], n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return None, Problem(
        here,
        f"unknown account or group '{raw}'{suggestion}; expected an account id from accounts.yaml or "
        "all, general, special, topic:<topic>, platform:<platform>",
    )


def _explicit_issue(account: AccountConfig, here: Where) -> Problem | None:
    at = Where(here.file, here.line, here.field, account.id)
    if account.status == "retired":
        return Problem(at, "account is retired; remove it from the targets")
    if account.status == "suspended":
        return Problem(at, "account is suspended; this entry will not be posted there", severity="warning")
    if account.platform in READ_ONLY_PLATFORMS:
        return Problem(at, f"Koho does not post to {account.platform} accounts (it only reads them)")
    return None
