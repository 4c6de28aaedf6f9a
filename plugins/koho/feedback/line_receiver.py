"""The small web service LINE calls: ``POST /line/webhook``, and nothing else.

A separate service rather than a route in Airflow's api-server, because LINE must reach it from
the internet and a city does not expose its Airflow UI and API there: this service has one
route (and ``GET /healthz`` for its container), no login, and no power beyond storing verified
messages. The logic is
:mod:`koho.feedback.line_webhook`; this module only reads the body (never past the limit),
runs it off the event loop and answers.

Run it with ``python -m koho.feedback.line_receiver`` (``KOHO_LINE_WEBHOOK_PORT``, default 8090;
``KOHO_LINE_WEBHOOK_MAX_BYTES``, default 1,000,000). The LINE accounts are the registry's active
``line`` accounts; each one's bot user id and channel secret come from its Airflow connection,
re-read at most once a minute so a new account needs no restart.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from koho import secrets
from koho.feedback.line_webhook import MAX_BODY_BYTES, LineChannel, WebhookAnswer, channels_from_connections, receive
from koho.ledger.db import Ledger

log = logging.getLogger(__name__)

PATH = "/line/webhook"
PORT_ENV = "KOHO_LINE_WEBHOOK_PORT"
MAX_BYTES_ENV = "KOHO_LINE_WEBHOOK_MAX_BYTES"
REFRESH_SECONDS = 60.0


class CachedChannels:
    """The configured channels, loaded again after ``refresh_seconds`` (clock injectable for tests)."""

    def __init__(
        self,
        load: Callable[[], list[LineChannel]],
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._refresh, self._clock = load, refresh_seconds, clock
        self._lock = threading.Lock()
        self._channels: list[LineChannel] | None = None
        self._loaded_at = 0.0

    def __call__(self) -> list[LineChannel]:
        with self._lock:
            if self._channels is None or self._clock() - self._loaded_at >= self._refresh:
                self._channels, self._loaded_at = self._load(), self._clock()
            return self._channels


def channels_from_airflow() -> list[LineChannel]:
    """The registry's active LINE accounts with their connections' bot user ids and channel secrets."""
    from airflow.sdk import BaseHook

    from koho.config import load_config

    pairs = []
    for account in load_config().active_accounts():
        if account.platform != "line":
            continue
        try:
            extras = BaseHook.get_connection(account.connection_id).extra_dejson
        except Exception as exc:  # one unreadable connection must not stop the other accounts
            log.error(
                "LINE account %s: connection %s not readable (%s)",
                account.id,
                account.connection_id,
                type(exc).__name__,
            )
            continue
        pairs.append((account.id, extras))
    channels, problems = channels_from_connections(pairs)
    for problem in problems:
        log.error("%s", problem)
    for channel in channels:
        secrets.register(channel.channel_secret)
    return channels


async def _read_capped(request: Request, max_bytes: int) -> bytes | None:
    """The raw body, or None as soon as it grows past ``max_bytes`` (a lying Content-Length included)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    channels: Callable[[], list[LineChannel]],
    ledger: Callable[[], Ledger],
    *,
    max_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The receiver: ``channels`` and ``ledger`` are called per request (cache them), so it starts without either."""
    app = FastAPI(title="Koho LINE webhook", docs_url=None, redoc_url=None, openapi_url=None)

    def _handle(body: bytes, signature: str | None) -> WebhookAnswer:
        # Loading accounts and opening the ledger may block too: all of it runs off the event loop.
        return receive(body, signature, channels(), ledger(), max_bytes=max_bytes)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """For the container's health check: says the process answers, nothing about accounts."""
        return {"status": "ok"}

    @app.post(PATH)
    async def webhook(request: Request) -> JSONResponse:
        body = await _read_capped(request, max_bytes)
        if body is None:
            answer = WebhookAnswer(413, f"body is over the {max_bytes}-byte limit")
        else:
            try:
                answer = await run_in_threadpool(_handle, body, request.headers.get("x-line-signature"))
            except Exception as exc:  # the ledger is down, say: LINE may redeliver; nothing was acknowledged
                log.error("LINE webhook not stored: %s", secrets.redact(f"{type(exc).__name__}: {exc}"))
                answer = WebhookAnswer(500, "not stored; try again")
        _log(answer)
        return JSONResponse(answer.body(), status_code=answer.status)

    return app


def _log(answer: WebhookAnswer) -> None:
    """Counts and problems only: residents' text is personal data and stays out of logs."""
    if answer.status == 200:
        log.info(
            "LINE webhook for %s: %d stored, %d already stored, %d other events",
            answer.account_id,
            answer.stored,
            answer.duplicates,
            answer.ignored,
        )
        for problem in answer.problems:
            log.error("LINE webhook event not stored: %s", problem)
    else:
        log.warning("LINE webhook refused with %d: %s", answer.status, answer.message)


def main() -> None:  # pragma: no cover - the serving shell; create_app is what the tests exercise
    import uvicorn

    ledger = functools.cache(Ledger.from_airflow)  # opened on the first call, not at start
    max_bytes = int(os.environ.get(MAX_BYTES_ENV, MAX_BODY_BYTES))
    app = create_app(CachedChannels(channels_from_airflow), ledger, max_bytes=max_bytes)
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get(PORT_ENV, "8090")), timeout_keep_alive=5)  # noqa: S104


if __name__ == "__main__":
    main()
