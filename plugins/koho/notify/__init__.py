"""Getting word to people: alerts, digests and reports, mailed through Airflow's SMTP provider.

One notifier for everything Koho mails: a :class:`Message` (recipients, subject, a Japanese HTML
template, inline ``cid:`` images, attachments) is rendered with a plain-text alternative, split
under the size limit, and sent to each recipient exactly once (the ledger's outbox).
"""

from __future__ import annotations

from koho.notify.alerts import AlertSpec, notify_pending, record_alerts
from koho.notify.message import Attachment, InlineImage, Message, NotifyError, content_id
from koho.notify.recipients import city_name, crisis_team, department, max_message_bytes, pr_section
from koho.notify.sender import MailNotSent, SendReport, send

__all__ = [
    "AlertSpec",
    "Attachment",
    "InlineImage",
    "MailNotSent",
    "Message",
    "NotifyError",
    "SendReport",
    "city_name",
    "content_id",
    "crisis_team",
    "department",
    "max_message_bytes",
    "notify_pending",
    "pr_section",
    "record_alerts",
    "send",
]
