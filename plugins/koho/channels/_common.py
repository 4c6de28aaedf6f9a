"""What the traditional channels (website, newsletter) share: safe file writing and paths.

Both channels write files that other people read while Koho may be writing them (the web
server serving the feed, an editor opening last month's workbook). A reader must only ever
see the old file or the new one, never half of one, and a worker killed mid-write must not
leave a broken file behind: every write goes to a temporary file in the same folder, is
flushed to disk, then renamed over the target (``os.replace`` is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from koho.config.loader import include_dir
from koho.errors import KohoError
from koho.text.cells import XML_ILLEGAL

LOCK_FILE = ".koho.lock"
#: How long a writer waits for another one of the same folder; rendering a feed takes well under a second.
LOCK_TIMEOUT_SECONDS = 60.0


class ChannelError(KohoError):
    """A website or newsletter item cannot be published as given (says which item and why)."""


class FolderBusy(ChannelError):
    """Another writer held the output folder for longer than the lock timeout; trying later may work."""


def resolve_output_dir(configured: str | os.PathLike[str]) -> Path:
    """The configured output folder; a relative one is relative to the project (beside include/).

    Relative to the project rather than the working directory, because Airflow workers,
    the api-server and ``make run`` all start in different folders.
    """
    path = Path(configured).expanduser()
    return path if path.is_absolute() else include_dir().parent / path


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so that readers see the old or the new file, never a mix."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the web server must be able to read it
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(target: Path, text: str, *, encoding: str = "utf-8") -> None:
    atomic_write_bytes(target, text.encode(encoding))


@contextlib.contextmanager
def folder_lock(folder: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Serialise writers of one output folder (two publishing tasks must not lose each other's entry),
    across processes and threads; ``filelock`` locks with fcntl, Windows' msvcrt or a lock file,
    whichever the system has. Raises :class:`FolderBusy` rather than waiting without end."""
    timeout = LOCK_TIMEOUT_SECONDS if timeout is None else timeout
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusy(f"{folder} is being written by another publisher for more than {timeout:g} s") from None
    try:
        yield
    finally:
        lock.release()


def xml_safe(text: str) -> str:
    """``text`` without the control characters that would make an XML document ill-formed."""
    return XML_ILLEGAL.sub("", text)


def is_web_url(value: str) -> bool:
    """True for absolute http(s) URLs: the only links Koho puts in an ``href`` or ``src``.

    Escaping does not make ``javascript:`` or ``data:`` links safe, so anything else is refused
    (website input) or shown as text (platform answers in the calendar view).
    """
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
