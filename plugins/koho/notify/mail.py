"""Send a rendered HTML mail through the Airflow SMTP provider's hook.

The connection (``koho_smtp`` unless ``KOHO_SMTP_CONN_ID`` says otherwise) holds the relay,
credentials and ``from_email``; in the demo and tests it points at a local SMTP catcher.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from koho.templating import render_html


def smtp_conn_id() -> str:
    return os.environ.get("KOHO_SMTP_CONN_ID", "koho_smtp")


def send_mail(*, to: Iterable[str], subject: str, template: str, conn_id: str | None = None, **context: Any) -> None:
    """Render ``include/templates/<template>`` and send it; raises if the relay refuses."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = sorted({address for address in to if address})
    if not recipients:
        raise ValueError("no recipient address for the mail (check the departments' email in departments.yaml)")
    html = render_html(template, subject=subject, **context)
    with SmtpHook(smtp_conn_id=conn_id or smtp_conn_id()) as hook:
        hook.send_email_smtp(to=recipients, subject=subject, html_content=html, mime_charset="utf-8")
