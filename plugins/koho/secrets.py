"""Keep secrets out of logs, XCom, exceptions and reports.

Hooks register every secret they hold (tokens, passwords, channel secrets); any text that may
leave the process goes through :func:`redact` first. Airflow's own masker is told as well, so
task logs are covered even for text Koho does not format itself.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_BEARER = re.compile(r"(?i)(bearer\s+|access_token=|token=|password=)[^\s&\"',]+")


def register(secret: str | None) -> None:
    """Remember a secret value so :func:`redact` hides it, and tell Airflow's log masker."""
    if not secret or len(secret) < 4:
        return
    with _lock:
        _secrets.add(secret)
    try:  # Airflow is optional here: the library is usable and tested without it running.
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older layouts
        return
    mask_secret(secret)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and bearer-looking token replaced."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    return _BEARER.sub(lambda m: m.group(1) + "***", text)
