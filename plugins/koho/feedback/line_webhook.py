"""Residents' LINE messages, received as LINE's signed webhook calls and stored once in the ledger.

LINE has no comments to collect: residents write to the official account and the platform
POSTs ``{"destination": <bot user id>, "events": [...]}`` to the city's webhook URL, signed in
``X-Line-Signature`` (base64 HMAC-SHA256 of the raw body, keyed by the channel secret).

The order of the checks is the point of this module:

1. size: a body over the limit is refused (413) before anything else reads it;
2. signature: checked on the raw bytes against each configured channel's secret, before the
   JSON is parsed (untrusted input is not even parsed unsigned); no match is a 401 and nothing
   is stored;
3. JSON and destination: malformed JSON is a 400; the destination must be the bot whose secret
   signed the body (else 401), and a destination with no configured account is refused (403)
   so that LINE's redelivery keeps the messages until the account is configured;
4. events: each ``message`` event is stored once by its ``webhookEventId`` (LINE redelivers, and
   a replayed body carries the same ids); other events (follow, unfollow, ...) are acknowledged
   and not stored. A malformed event is reported with its index and field; the others proceed.

Text is stored as received, with two exceptions Postgres forces: NUL (refused in ``text``
columns) becomes U+2400 ``␀``, the symbol staff see in its place, and lone UTF-16 surrogates
(which no UTF-8 encoder accepts) become U+FFFD. Everything else, HTML and RTL overrides
included, is stored as sent and escaped wherever it is shown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from koho.errors import Problem, Where
from koho.ledger import repo
from koho.ledger.db import Ledger
from koho.platforms.line import verify_webhook_signature

log = logging.getLogger(__name__)

PLATFORM = "line"
#: Default body limit. LINE batches events, but a real call stays far below this.
MAX_BODY_BYTES = 1_000_000
#: Stands in for NUL, which Postgres refuses in text: visible, and not a control character.
NUL_SYMBOL = "\u2400"
#: Column width of ``feedback_items.remote_id`` and ``author``.
MAX_ID_CHARS = 255
_PLACEHOLDER = "[{}]"  # a non-text message (image, sticker, ...) still shows that someone wrote


@dataclass(frozen=True)
class LineChannel:
    """One LINE official account as the receiver knows it: ledger account, bot user id, secret."""

    account_id: str
    bot_user_id: str
    channel_secret: str = field(repr=False)


@dataclass
class WebhookAnswer:
    """What to answer LINE, and what happened (for the log; it holds no message text)."""

    status: int
    message: str
    account_id: str | None = None
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    problems: list[Problem] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The JSON answer: counts and problems only, never residents' text or secrets."""
        out: dict[str, Any] = {"message": self.message}
        if self.status == 200:
            out.update(stored=self.stored, duplicates=self.duplicates, ignored=self.ignored)
        if self.problems:
            out["problems"] = [str(p) for p in self.problems]
        return out


class EventError(ValueError):
    """One event that cannot be read: ``field`` says which part."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field, self.reason = field_name, reason


def storable_text(text: str) -> str:
    """``text`` as Postgres can hold it: NUL shown as ``␀``, lone surrogates as U+FFFD, the rest untouched."""
    text = text.replace("\x00", NUL_SYMBOL)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 joins a split surrogate pair back into its character and replaces only lone ones.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _identifier(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EventError(field_name, "missing or not a string")
    value = storable_text(value)
    if len(value) > MAX_ID_CHARS:
        raise EventError(field_name, f"longer than {MAX_ID_CHARS} characters")
    return value


def feedback_item(event: Any, account_id: str, *, now: datetime) -> dict[str, Any] | None:
    """The ledger row for one webhook event; None for an event that is not a resident's message.

    The remote id is the ``webhookEventId`` (stable across LINE's redeliveries); the author is
    the sender's user id (the webhook carries no names), or the group or room id.
    """
    if not isinstance(event, dict):
        raise EventError("event", "not a JSON object")
    if event.get("type") != "message":
        return None
    event_id = _identifier(event.get("webhookEventId"), "webhookEventId")
    message = event.get("message")
    if not isinstance(message, dict):
        raise EventError("message", "missing or not an object")
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise EventError("message.type", "missing or not a string")
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str):
            raise EventError("message.text", "missing or not a string")
    else:
        text = _PLACEHOLDER.format(kind[:40])
    source = event.get("source") if isinstance(event.get("source"), dict) else {}
    sender = source.get("userId") or source.get("groupId") or source.get("roomId") or "unknown"
    author = _identifier(sender, "source.userId")
    timestamp = event.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise EventError("timestamp", "missing or not milliseconds")
    try:
        created_at = datetime.fromtimestamp(timestamp / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise EventError("timestamp", "out of range") from exc
    return {
        "account_id": account_id,
        "platform": PLATFORM,
        "remote_id": event_id,
        "author": author,
        "text": storable_text(text),
        "created_at": created_at,
        "collected_at": now,
    }


def signing_channel(body: bytes, signature: str | None, channels: Iterable[LineChannel]) -> LineChannel | None:
    """The channel whose secret signed ``body`` (each one is tried in constant time), if any."""
    if not signature:
        return None
    return next((c for c in channels if verify_webhook_signature(body, signature, c.channel_secret)), None)


def receive(
    body: bytes,
    signature: str | None,
    channels: Iterable[LineChannel],
    ledger: Ledger,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    now: datetime | None = None,
) -> WebhookAnswer:
    """Verify, read and store one webhook call; the answer says what to reply to LINE.

    Storing happens before the answer, in one short transaction: LINE gets 200 only for
    messages that are in the ledger, and a failure is a 500 that LINE may redeliver.
    """
    now = now or datetime.now(UTC)
    if len(body) > max_bytes:
        return WebhookAnswer(413, f"body of {len(body)} bytes is over the {max_bytes}-byte limit")
    channels = list(channels)
    signer = signing_channel(body, signature, channels)
    if signer is None:
        what = "no X-Line-Signature header" if not signature else "X-Line-Signature matches no channel secret"
        return WebhookAnswer(401, what)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return WebhookAnswer(400, f"body is not JSON ({exc.__class__.__name__} at position {getattr(exc, 'pos', 0)})")
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        return WebhookAnswer(400, "body is not an object with an 'events' list")
    destination = data.get("destination")
    if destination != signer.bot_user_id:
        shown = str(destination)[:80]
        known = any(c.bot_user_id == destination for c in channels)
        if known:
            return WebhookAnswer(401, f"destination {shown!r} is signed with another channel's secret")
        return WebhookAnswer(403, f"destination {shown!r} is no configured LINE account")
    return _store(data["events"], signer.account_id, ledger, now)


def _store(events: list[Any], account_id: str, ledger: Ledger, now: datetime) -> WebhookAnswer:
    answer = WebhookAnswer(200, "ok", account_id=account_id)
    items: dict[str, dict[str, Any]] = {}
    for index, event in enumerate(events):
        try:
            item = feedback_item(event, account_id, now=now)
        except EventError as exc:
            where = Where(file="LINE webhook", field=f"events[{index}].{exc.field}", account=account_id)
            answer.problems.append(Problem(where, exc.reason))
            continue
        if item is None:
            answer.ignored += 1
        elif item["remote_id"] in items:
            answer.duplicates += 1  # the same event twice in one body
        else:
            items[item["remote_id"]] = item
    if items:
        with ledger.session() as session:
            answer.stored = repo.add_feedback(session, items.values(), now=now)
        answer.duplicates += len(items) - answer.stored
    return answer


def channels_from_connections(accounts: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[list[LineChannel], list[str]]:
    """LINE channels from ``(account id, connection extras)`` pairs; accounts lacking a field are reported.

    The extras are the ``koho_line`` connection's: ``account_id`` (the bot user id, LINE's
    ``destination``) and ``channel_secret``.
    """
    channels, problems = [], []
    for account_id, extras in accounts:
        bot, secret = extras.get("account_id"), extras.get("channel_secret")
        missing = [name for name, value in (("account_id", bot), ("channel_secret", secret)) if not value]
        if missing:
            problems.append(f"LINE account {account_id}: connection extra {', '.join(missing)} is empty")
            continue
        channels.append(LineChannel(account_id, str(bot), str(secret)))
    return channels, problems
