"""Notifier fixtures: the real SMTP server (``mailbox``) behind ``koho_smtp``, keeping the raw
bytes of every mail too (to check what went over the wire, not only what parses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import smtp_connection


@dataclass
class Smtp:
    """What the SMTP server received: parsed mails, their raw bytes, and who each was sent to."""

    box: Any
    port: int
    raw: list[bytes] = field(default_factory=list)
    envelopes: list[list[str]] = field(default_factory=list)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.box.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp(mailbox, monkeypatch) -> Smtp:
    box, port = mailbox
    smtp_connection(monkeypatch, port)
    caught = Smtp(box, port)
    keep = box.handle_DATA

    async def handle_data(server, session, envelope):
        caught.raw.append(envelope.original_content or envelope.content)
        caught.envelopes.append(list(envelope.rcpt_tos))
        return await keep(server, session, envelope)

    box.handle_DATA = handle_data  # the controller looks the handler's method up on each mail
    return caught
