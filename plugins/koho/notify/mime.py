"""Build one mail's MIME tree with the standard library's ``email`` package.

Layout (RFC 2046/2387): ``multipart/mixed`` [ ``multipart/related`` [ ``multipart/alternative``
[ text/plain, text/html ], images with ``Content-ID`` ], attachments ], each level present only
when it has something to hold. Text parts are UTF-8 in base64, so the mail is 7-bit clean for
any relay; the subject and file names are RFC 2047/2231 encoded by the ``email`` policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate

from koho.notify.message import Attachment, InlineImage
from koho.notify.render import Rendered

POLICY = policy.SMTP


def mail_message_id(message_id: str, recipient: str, part: int, domain: str) -> str:
    """The Message-ID header of one mail: the same on every attempt, so copies can be dropped."""
    digest = hashlib.sha256(f"{message_id}\0{recipient.lower()}\0{part}".encode()).hexdigest()[:32]
    return f"<koho.{digest}@{domain or 'koho.invalid'}>"


def build_mail(
    rendered: Rendered,
    *,
    subject: str,
    to: str,
    header_message_id: str,
    images: Sequence[InlineImage] = (),
    attachments: Sequence[Attachment] = (),
    from_addr: str | None = None,
    part_label: str | None = None,
) -> EmailMessage:
    """One recipient's mail; ``From`` may be left to the SMTP connection (set when sending)."""
    mail = EmailMessage(policy=POLICY)
    if not images and not attachments:
        _alternative(mail, rendered)
    else:
        alternative = MIMEPart(policy=POLICY)
        _alternative(alternative, rendered)
        body = alternative
        if images:
            body = mail if not attachments else MIMEPart(policy=POLICY)
            body.make_related()
            body.set_param("type", "multipart/alternative")
            body.attach(alternative)
            for image in images:
                maintype, subtype = image.mime_type.split("/", 1)
                body.add_related(
                    image.data, maintype, subtype, cid=f"<{image.name}>", filename=image.filename, disposition="inline"
                )
        if attachments:
            mail.make_mixed()
            mail.attach(body)
            for attachment in attachments:
                maintype, subtype = attachment.mime_type.split("/", 1)
                params = {"charset": "utf-8"} if maintype == "text" else None  # Koho writes text files in UTF-8
                mail.add_attachment(attachment.data, maintype, subtype, filename=attachment.filename, params=params)
    mail["Subject"] = subject
    if from_addr:
        mail["From"] = from_addr
    mail["To"] = to
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = header_message_id
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to Koho's mails
    if part_label:
        mail["X-Koho-Part"] = part_label
    if "MIME-Version" not in mail:
        mail["MIME-Version"] = "1.0"
    return mail


def part_size(data_bytes: int, filename: str) -> int:
    """An upper bound of one base64 part's bytes in a mail: 76-character lines with CRLF, plus
    its headers and boundary (file names may be RFC 2231 encoded: 3 characters per byte)."""
    encoded = 4 * -(-data_bytes // 3)
    return encoded + 2 * -(-encoded // 76) + 512 + 3 * len(filename.encode())


def mail_size(mail: EmailMessage) -> int:
    """Bytes on the wire (what a relay's size limit counts)."""
    return len(mail.as_bytes())


def _alternative(part: MIMEPart, rendered: Rendered) -> None:
    part.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    part.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
