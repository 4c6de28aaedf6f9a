"""What a notification is: recipients, a subject, a Japanese HTML template, images and files.

A message is data (no SMTP in here) so that it can be rendered, measured, split and recorded
before anything is sent. ``id`` names the message for exactly-once sending: the same id to the
same recipient is mailed once, however often a task is retried.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koho.errors import KohoError

#: Types Python's table may not know on a minimal system (mailcap-less containers).
_KNOWN_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_MIME = re.compile(r"^[a-z]+/[A-Za-z0-9.+-]+$")
_CID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


class NotifyError(KohoError):
    """A message that cannot be sent as given (no recipient, a bad address, a bad part)."""


def mime_type_of(filename: str) -> str:
    """The MIME type for a file name; ``application/octet-stream`` when it says nothing."""
    suffix = Path(filename).suffix.lower()
    return _KNOWN_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Attachment:
    """A file attached to the mail (CSV, XLSX, a chart the body does not show inline)."""

    filename: str
    data: bytes = field(repr=False)
    mime_type: str = ""

    def __post_init__(self) -> None:
        if not self.filename or "/" in self.filename or "\\" in self.filename or "\n" in self.filename:
            raise NotifyError(f"attachment file name {self.filename!r}: give a plain file name")
        if not self.mime_type:
            object.__setattr__(self, "mime_type", mime_type_of(self.filename))
        if not _MIME.match(self.mime_type):
            raise NotifyError(f"attachment {self.filename}: {self.mime_type!r} is not a MIME type like text/csv")

    @classmethod
    def from_path(cls, path: str | Path, filename: str | None = None) -> Attachment:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotifyError(f"attachment {path.name}: cannot be read ({exc.strerror or exc})") from exc
        return cls(filename or path.name, data)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML shows where the template calls ``inline_image(name, alt)``.

    It travels as a ``multipart/related`` part with ``Content-ID: <name>`` and the HTML refers to
    it as ``cid:name`` (mail clients such as Gmail drop ``data:`` images).
    """

    name: str
    data: bytes = field(repr=False)
    mime_type: str = "image/png"
    filename: str = ""

    def __post_init__(self) -> None:
        if not _CID.match(self.name):
            raise NotifyError(f"inline image name {self.name!r}: use letters, digits, '.', '_' or '-'")
        if not self.mime_type.startswith("image/") or not _MIME.match(self.mime_type):
            raise NotifyError(f"inline image {self.name}: {self.mime_type} is not an image type")
        if not self.filename:
            extension = mimetypes.guess_extension(self.mime_type) or ".img"
            object.__setattr__(self, "filename", self.name + extension)

    @property
    def size(self) -> int:
        return len(self.data)

    def as_attachment(self) -> Attachment:
        return Attachment(self.filename, self.data, self.mime_type)


@dataclass(frozen=True)
class Message:
    """One notification, mailed to each recipient separately (per-recipient exactly once)."""

    id: str
    to: tuple[str, ...]
    subject: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[InlineImage, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    #: After a worker died between handing a mail to the relay and recording it: resend (with
    #: the same Message-ID, so mail systems can drop the copy) or hold it as ``maybe_sent``.
    resend_unknown: bool = True

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 255:
            raise NotifyError(f"message id {self.id!r}: give 1 to 255 characters")
        recipients = tuple(sorted({str(a).strip() for a in self.to if a and str(a).strip()}))
        if not recipients:
            raise NotifyError(f"{self.id}: no recipient address (check the departments' email in departments.yaml)")
        object.__setattr__(self, "to", recipients)
        object.__setattr__(self, "subject", " ".join(self.subject.split()))
        names = [image.name for image in self.images]
        if len(names) != len(set(names)):
            raise NotifyError(f"{self.id}: two inline images share a name")


def bad_address(address: str) -> str | None:
    """Why ``address`` cannot be mailed to, or None (header injection and typos stop here)."""
    if len(address) > 320 or not _ADDRESS.match(address):
        return f"'{address}' is not a mail address"
    return None


def content_id(prefix: str, *parts: Any) -> str:
    """A message id from what the message says: the same content is the same message."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return f"{prefix}:{digest}"
