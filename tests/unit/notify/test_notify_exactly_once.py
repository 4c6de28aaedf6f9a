"""Exactly once per (recipient, message id), against a real SMTP server: a retry skips what was
recorded sent; a worker killed between the relay's acceptance and the record leaves a claim
that the next try of the same task takes over and resends with the same Message-ID (or holds
as ``maybe_sent``); another worker waits until the claim is stale; a refused mail is retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from koho.ledger import outbox
from koho.ledger.outbox import Claimant
from koho.notify import MailNotSent, Message, send
from tests.conftest import smtp_connection

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TRY_1 = Claimant("feedback_digest/run-1/send", 1)
TRY_2 = Claimant("feedback_digest/run-1/send", 2)
TO = ("kanko@city.example.jp", "kiki@city.example.jp", "koho@city.example.jp")


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (not even ``except Exception``)."""


def digest(**changes) -> Message:
    fields = {
        "id": "feedback_digest:2026-12-04",
        "to": TO,
        "subject": "[Koho] テスト市: 住民の声",
        "template": "mail/report.html.j2",
        "context": {"city_name": "テスト市", "title": "住民の声", "paragraphs": ["3件"], "figures": [], "rows": []}
        | {"columns": [], "attachments_note": ""},
    }
    return Message(**{**fields, **changes})


def kill_when_recording(monkeypatch, recipient: str) -> None:
    """The worker dies right after the relay accepted ``recipient``'s mail, before it is recorded."""
    record = outbox.mark_sent

    def mark_sent(session, row_id, attempts, **kwargs):
        if session.get(outbox.OutboxMail, row_id).recipient == recipient:
            raise WorkerKilled
        return record(session, row_id, attempts, **kwargs)

    monkeypatch.setattr(outbox, "mark_sent", mark_sent)


def statuses(ledger, message_id: str) -> dict[str, str]:
    with ledger.session(readonly=True) as session:
        return {row.recipient: row.status for row in outbox.mails_of(session, message_id)}


def test_sending_again_mails_no_one_twice(ledger, smtp):
    first = send(digest(), ledger=ledger, claimant=TRY_1, now=T0)
    again = send(digest(), ledger=ledger, claimant=TRY_2, now=T0 + timedelta(minutes=1))

    assert first.sent == list(TO) and again.sent == [] and again.already_sent == list(TO)
    assert len(smtp.messages) == 3
    assert statuses(ledger, "feedback_digest:2026-12-04") == dict.fromkeys(TO, "sent")


def test_a_retry_after_a_kill_mid_send_resends_only_the_unrecorded_mail_with_the_same_message_id(
    ledger, smtp, monkeypatch
):
    kill_when_recording(monkeypatch, "kiki@city.example.jp")
    with pytest.raises(WorkerKilled):
        send(digest(), ledger=ledger, claimant=TRY_1, now=T0)
    assert [m["To"] for m in smtp.messages] == ["kanko@city.example.jp", "kiki@city.example.jp"]  # relay had it
    assert statuses(ledger, "feedback_digest:2026-12-04") == {
        "kanko@city.example.jp": "sent",
        "kiki@city.example.jp": "sending",
    }
    monkeypatch.undo()
    smtp_connection(monkeypatch, smtp.port)

    retry = send(digest(), ledger=ledger, claimant=TRY_2, now=T0 + timedelta(seconds=30))

    assert retry.already_sent == ["kanko@city.example.jp"]
    assert retry.resent_unsure == ["kiki@city.example.jp"] and retry.sent == [
        "kiki@city.example.jp",
        "koho@city.example.jp",
    ]
    assert [m["To"] for m in smtp.messages].count("kanko@city.example.jp") == 1
    kiki = smtp.to("kiki@city.example.jp")
    assert len(kiki) == 2 and kiki[0]["Message-ID"] == kiki[1]["Message-ID"]  # receivers can drop the copy
    assert kiki[0]["Message-ID"] != smtp.to("koho@city.example.jp")[0]["Message-ID"]
    assert statuses(ledger, "feedback_digest:2026-12-04") == dict.fromkeys(TO, "sent")
    with ledger.session(readonly=True) as session:
        row = next(r for r in outbox.mails_of(session, "feedback_digest:2026-12-04") if r.recipient.startswith("kiki"))
        assert row.maybe_sent_before and row.attempts == 2 and row.mail_message_id == kiki[0]["Message-ID"]


def test_a_message_that_must_not_be_resent_is_held_as_maybe_sent(ledger, smtp, monkeypatch):
    kill_when_recording(monkeypatch, "kiki@city.example.jp")
    with pytest.raises(WorkerKilled):
        send(digest(resend_unknown=False), ledger=ledger, claimant=TRY_1, now=T0)
    monkeypatch.undo()
    smtp_connection(monkeypatch, smtp.port)

    retry = send(digest(resend_unknown=False), ledger=ledger, claimant=TRY_2, now=T0 + timedelta(seconds=30))

    assert list(retry.held) == ["kiki@city.example.jp"] and not retry.complete
    assert len(smtp.to("kiki@city.example.jp")) == 1
    assert statuses(ledger, "feedback_digest:2026-12-04")["kiki@city.example.jp"] == "maybe_sent"


def test_another_worker_leaves_a_live_claim_alone_until_it_is_stale(ledger, smtp, monkeypatch):
    kill_when_recording(monkeypatch, "kiki@city.example.jp")
    with pytest.raises(WorkerKilled):
        send(digest(), ledger=ledger, claimant=TRY_1, now=T0)
    monkeypatch.undo()
    smtp_connection(monkeypatch, smtp.port)
    other = Claimant("feedback_digest/run-2/send", 1)

    with pytest.raises(MailNotSent, match=r"kiki@city\.example\.jp: being sent by feedback_digest/run-1/send"):
        send(digest(), ledger=ledger, claimant=other, now=T0 + timedelta(minutes=5))
    assert len(smtp.to("kiki@city.example.jp")) == 1 and len(smtp.to("koho@city.example.jp")) == 1

    late = send(digest(), ledger=ledger, claimant=other, now=T0 + outbox.DEFAULT_STALE_AFTER + timedelta(seconds=1))
    assert late.resent_unsure == ["kiki@city.example.jp"] and len(smtp.to("koho@city.example.jp")) == 1


def test_a_relay_that_refuses_leaves_the_mails_to_the_next_try(ledger, smtp, monkeypatch):
    from sandbox.server import free_port

    smtp_connection(monkeypatch, free_port())  # nothing listens there
    with pytest.raises(MailNotSent) as refused:
        send(digest(), ledger=ledger, claimant=TRY_1, now=T0)
    assert set(refused.value.report.failed) == set(TO) and smtp.messages == []
    assert statuses(ledger, "feedback_digest:2026-12-04") == dict.fromkeys(TO, "failed")

    smtp_connection(monkeypatch, smtp.port)
    retry = send(digest(), ledger=ledger, claimant=TRY_2, now=T0 + timedelta(minutes=1))
    assert retry.sent == list(TO) and retry.resent_unsure == [] and len(smtp.messages) == 3
