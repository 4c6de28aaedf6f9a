"""Send a message: per recipient, split under the size limit, exactly once through the outbox.

For each recipient and each part the outbox row is claimed (and committed) before the SMTP call
and marked ``sent`` after it; a retry skips what is marked sent. Between the relay's "250 OK"
and the ``sent`` record a dying worker leaves the row ``sending``: the next try takes it over
(a later try of the same task at once, anyone else after ``stale_after``) and resends it with
the *same* Message-ID, so mail systems that drop repeated Message-IDs keep one copy — or holds
it as ``maybe_sent`` when the message says ``resend_unknown=False``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook

from koho.config.schema import MailPolicy
from koho.ledger import outbox
from koho.ledger.models import OutboxStatus
from koho.ledger.outbox import Claimant
from koho.notify.message import Attachment, InlineImage, Message, NotifyError, bad_address
from koho.notify.mime import build_mail, mail_message_id, mail_size, part_size
from koho.notify.render import render
from koho.notify.split import MailPart, SplitPlan, plan_parts

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = MailPolicy().max_message_bytes
#: Room for the notices of a split (the first mail is measured with the longest ones).
NOTICE_MARGIN = 4096
CONTINUATION_TEMPLATE = "mail/continuation.html.j2"


def smtp_conn_id() -> str:
    return os.environ.get("KOHO_SMTP_CONN_ID", "koho_smtp")


def current_claimant() -> Claimant:
    """The running Airflow task instance, from the ``AIRFLOW_CTX_*`` variables the Task SDK
    exports; an empty claimant outside a task (its claims are taken over only when stale)."""
    parts = [os.environ.get(f"AIRFLOW_CTX_{name}") for name in ("DAG_ID", "DAG_RUN_ID", "TASK_ID")]
    try_number = os.environ.get("AIRFLOW_CTX_TRY_NUMBER")
    if not all(parts) or not (try_number or "").isdigit():
        return Claimant()
    return Claimant("/".join(p for p in parts if p)[:255], int(try_number or 0))


class MailNotSent(NotifyError):
    """Some recipients did not get the message (the others did); ``report`` says who and why."""

    def __init__(self, report: SendReport) -> None:
        self.report = report
        problems = [f"{who}: {why}" for who, why in report.failed.items()]
        problems += [f"{who}: {why} (tried again on the next attempt)" for who, why in report.in_flight.items()]
        super().__init__(f"mail '{report.message_id}' not sent to everyone: " + "; ".join(problems))


@dataclass
class SendReport:
    """What happened to each recipient's mails; JSON-safe through :meth:`as_dict`."""

    message_id: str
    parts: int = 1
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    resent_unsure: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    too_big: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every recipient got (or had got) every part, as far as Koho can tell."""
        return not (self.failed or self.in_flight or self.held)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PreparedMailHook(SmtpHook):
    """The provider's hook with its MIME builder swapped for ours: it builds multipart/mixed around
    one HTML part and octet-stream files, with no text part and no related inline images."""

    prepared: EmailMessage | None = None

    def _build_mime_message(self, mail_from: str | None, to: Any, *args: Any, **kwargs: Any) -> tuple:
        mail = self.prepared
        if mail is None:
            raise NotifyError("no prepared mail to send")
        if mail_from and "From" not in mail:
            mail["From"] = mail_from
        return mail, self._get_email_address_list(to)


class SmtpTransport:
    """Mails through the SMTP provider's hook on ``koho_smtp``: relay, TLS, login, retries and
    the From address all come from the Airflow connection. Connects on the first mail."""

    def __init__(self, conn_id: str | None = None) -> None:
        self.conn_id = conn_id or smtp_conn_id()
        self._hook: PreparedMailHook | None = None

    def from_address(self) -> str | None:
        return SmtpHook.get_connection(self.conn_id).extra_dejson.get("from_email")

    def deliver(self, mail: EmailMessage) -> None:
        if self._hook is None:
            self._hook = PreparedMailHook(smtp_conn_id=self.conn_id).get_conn()
        self._hook.prepared = mail
        try:
            self._hook.send_email_smtp(to=[str(mail["To"])], subject=str(mail["Subject"]), html_content="prepared")
        except Exception:
            self.close()  # a broken session must not fail the next recipient's mail too
            raise

    def close(self) -> None:
        if self._hook is not None:
            hook, self._hook = self._hook, None
            try:
                hook.__exit__(None, None, None)
            except Exception as exc:  # closing a dead connection tells nothing about the mails
                log.debug("closing the SMTP connection: %s", exc)


def send(
    message: Message,
    *,
    ledger: Any,
    max_bytes: int = DEFAULT_MAX_BYTES,
    transport: SmtpTransport | None = None,
    claimant: Claimant | None = None,
    stale_after: timedelta = outbox.DEFAULT_STALE_AFTER,
    now: datetime | None = None,
) -> SendReport:
    """Mail ``message`` to each recipient once; raises :class:`MailNotSent` after trying everyone
    when a recipient's mail failed or is still in another worker's hands."""
    run = _Run(
        message,
        ledger=ledger,
        max_bytes=max_bytes,
        transport=transport or SmtpTransport(),
        claimant=claimant if claimant is not None else current_claimant(),
        stale_after=stale_after,
        now=now,
    )
    report = run.report
    if report.too_big:
        log.error("%s: file(s) over the %d-byte mail limit, not sent: %s", message.id, max_bytes, report.too_big)
    try:
        for recipient in message.to:
            if (why := bad_address(recipient)) is not None:
                report.failed[recipient] = why
                continue
            for part in run.plan.parts:
                run.send_part(part, recipient)
    finally:
        run.transport.close()
    log.info("mail %s: %s", message.id, {k: v for k, v in report.as_dict().items() if v})
    if report.held:
        log.warning("%s: not resent, a person should check whether these arrived: %s", message.id, report.held)
    if report.failed or report.in_flight:
        raise MailNotSent(report)
    return report


class _Run:
    """One :func:`send` call: the message's split plan, its report, and the claims it makes."""

    def __init__(
        self,
        message: Message,
        *,
        ledger: Any,
        max_bytes: int,
        transport: SmtpTransport,
        claimant: Claimant,
        stale_after: timedelta,
        now: datetime | None,
    ) -> None:
        self.message, self.ledger, self.max_bytes, self.transport = message, ledger, max_bytes, transport
        self.claimant, self.stale_after, self.now = claimant, stale_after, now
        self.domain = (transport.from_address() or "").rpartition("@")[2]
        self.plan = _plan(message, max_bytes)
        self.report = SendReport(
            message.id, parts=len(self.plan.parts), too_big=[a.filename for a in self.plan.too_big]
        )

    def send_part(self, part: MailPart, recipient: str) -> None:
        message, parts = self.message, len(self.plan.parts)
        label = recipient if parts == 1 else f"{recipient} ({part.index + 1}/{parts})"
        header_id = mail_message_id(message.id, recipient, part.index, self.domain)
        subject = _subject(message, part, parts)
        with self.ledger.session() as session:
            claim = outbox.claim(
                session,
                message_id=message.id,
                recipient=recipient,
                part=part.index,
                parts=parts,
                subject=subject,
                mail_message_id=header_id,
                claimant=self.claimant,
                resend_unknown=message.resend_unknown,
                stale_after=self.stale_after,
                now=self.now,
            )
        if not claim.go:
            self._refused(label, claim)
            return
        if claim.maybe_sent_before:
            log.warning("%s to %s: an earlier try died mid-send; resent as %s", message.id, label, header_id)
            self.report.resent_unsure.append(label)
        try:
            mail = _mail(
                message, self.plan, part, subject=subject, to=recipient, header_id=header_id, max_bytes=self.max_bytes
            )
            self.transport.deliver(mail)
        except Exception as exc:  # the relay refused or was unreachable: surely not sent
            error = f"{type(exc).__name__}: {exc}"
            with self.ledger.session() as session:
                outbox.mark_failed(session, claim.row_id, claim.attempts, error, now=self.now)
            self.report.failed[label] = error
            return
        with self.ledger.session() as session:
            outbox.mark_sent(session, claim.row_id, claim.attempts, now=self.now)
        self.report.sent.append(label)

    def _refused(self, label: str, claim: outbox.OutboxClaim) -> None:
        if claim.status == OutboxStatus.SENT.value:
            self.report.already_sent.append(label)
        elif claim.status == OutboxStatus.MAYBE_SENT.value:
            self.report.held[label] = claim.reason or "maybe sent"
        else:
            self.report.in_flight[label] = claim.reason or "being sent"


def _subject(message: Message, part: MailPart, parts: int) -> str:
    return message.subject if parts == 1 else f"{message.subject}（{part.index + 1}/{parts}）"


def _plan(message: Message, max_bytes: int) -> SplitPlan:
    """Sizes are added up rather than measured by building each candidate mail: the bodies are
    built once, each image and file is sized by :func:`part_size` (an upper bound)."""
    everything = [*message.images, *message.attachments]
    worst = _notices([i.filename for i in everything], list(message.attachments), parts=99, max_bytes=max_bytes)
    probe = {"subject": message.subject + "（99/99）", "to": "x" * 64, "header_message_id": "<" + "x" * 80 + ">"}
    names = {image.name for image in message.images}
    whole = mail_size(build_mail(render(message, inline=names), part_label="99/99", **probe))
    split = mail_size(build_mail(render(message, inline=names, notices=worst), part_label="99/99", **probe))
    continuation = render(message, inline=(), template=CONTINUATION_TEMPLATE, part=99, parts=99, files=everything)
    follow = mail_size(build_mail(continuation, part_label="99/99", **probe))

    def files(images: Sequence[InlineImage], attachments: Sequence[Attachment]) -> int:
        return sum(part_size(item.size, item.filename) for item in [*images, *attachments])

    def first(images: Sequence[InlineImage], attachments: Sequence[Attachment]) -> int:
        all_in = len(images) + len(attachments) == len(everything)
        return (whole if all_in else split + NOTICE_MARGIN) + files(images, attachments)

    def follow_up(images: Sequence[InlineImage], attachments: Sequence[Attachment]) -> int:
        return follow + NOTICE_MARGIN + files(images, attachments)

    return plan_parts(message.images, message.attachments, limit=max_bytes, first=first, follow_up=follow_up)


def _mail(
    message: Message, plan: SplitPlan, part: MailPart, *, subject: str, to: str, header_id: str, max_bytes: int
) -> EmailMessage:
    parts = len(plan.parts)
    if part.index == 0:
        later = [image.filename for image in plan.moved_images]
        later += [a.filename for p in plan.parts[1:] for a in p.attachments if a.filename not in later]
        notices = _notices(later, plan.too_big, parts=parts, max_bytes=max_bytes)
        body = render(message, inline={image.name for image in part.images}, notices=notices)
    else:
        body = render(
            message, inline=(), template=CONTINUATION_TEMPLATE, part=part.index + 1, parts=parts, files=part.attachments
        )
    return build_mail(
        body,
        subject=subject,
        to=to,
        header_message_id=header_id,
        images=part.images,
        attachments=part.attachments,
        part_label=f"{part.index + 1}/{parts}" if parts > 1 else None,
    )


def _notices(later: Sequence[str], too_big: Sequence[Attachment], *, parts: int, max_bytes: int) -> list[str]:
    """The sentences that open a split message's first mail (in Japanese, like the body)."""
    notices = []
    if parts > 1:
        notices.append(f"このメールは大きいため {parts} 通に分けて送ります。続きのメールに添付: {', '.join(later)}")
    if too_big:
        names = ", ".join(f"{a.filename} ({a.size / 1_000_000:.1f} MB)" for a in too_big)
        notices.append(
            f"次のファイルはメールの上限（{max_bytes / 1_000_000:.1f} MB）を超えるため添付できませんでした: {names}。"
            "必要な方は広報担当にお問い合わせください。"
        )
    return notices
