"""What every platform router shares: the error type, the request gate, lost responses.

A router calls :func:`gate` at the top of each endpoint. The gate counts the request against
the rate-limit bucket, draws an injected fault, sleeps for ``slow`` faults, and raises
:class:`SandboxError` for the others. Each platform sub-app turns a ``SandboxError`` into that
platform's own error body with an exception handler, so the same fault looks like X's problem
JSON on ``/x`` and like a Graph API error on ``/facebook``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from sandbox.faults import Fault
from sandbox.ratelimit import Window
from sandbox.state import Account, SandboxState


@dataclass
class SandboxError(Exception):
    """An error a platform would return. ``kind`` is one of the fault kinds or
    ``invalid_token``, ``invalid``, ``not_found``, ``too_long``, ``forbidden``."""

    kind: str
    status: int
    message: str
    window: Window | None = None
    headers: dict[str, str] = field(default_factory=dict)


DEFAULT_STATUS = {
    "rate_limit": 429,
    "server_error": 503,
    "expired_token": 401,
    "invalid_token": 401,
    "duplicate": 403,
    "invalid": 400,
    "too_long": 400,
    "not_found": 404,
    "forbidden": 403,
}


#: Leading bytes of the image formats platforms accept, and their media types.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(data: bytes) -> str | None:
    """The media type an upload really is, from its bytes (platforms do not trust the file name)."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its header; (0, 0) when the sandbox cannot tell."""
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 0, 0


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("access_token")


def state_of(request: Request) -> SandboxState:
    return request.app.state.sandbox


async def gate(
    request: Request,
    platform: str,
    operation: str,
    account: Account | None,
    *,
    bucket: str | None = None,
    cost: int = 1,
) -> tuple[Fault | None, Window | None]:
    """Apply rate limits and injected faults to one request.

    Returns the ``lost_response`` fault (the router applies the request, then calls
    :func:`lost_response`) and the rate-limit window for the router's headers. Raises
    :class:`SandboxError` for every other fault.
    """
    state = state_of(request)
    account_id = account.account_id if account else "-"
    window = None
    if bucket and account is not None:
        window = state.limits.hit(platform, account_id, bucket, cost)
        if window is not None and not window.allowed:
            state.stats.record(platform, account_id, 429, time.time())
            raise SandboxError("rate_limit", 429, "Too Many Requests", window=window)
    names = (account.account_id, account.handle) if account else ()
    fault = state.faults.draw(platform, names, operation)
    if fault is None:
        return None, window
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return None, window
    if fault.kind == "lost_response":
        return fault, window
    if fault.kind == "rate_limit":
        state.stats.record(platform, account_id, 429, time.time())
        limit = window.limit if window else 1
        forced = Window(limit, 0, time.time() + max(fault.delay, 1.0), False)
        raise SandboxError("rate_limit", 429, "Too Many Requests", window=forced)
    messages = {
        "server_error": "Service Unavailable",
        "expired_token": "token expired",
        "duplicate": "duplicate content",
    }
    raise SandboxError(fault.kind, DEFAULT_STATUS[fault.kind], messages[fault.kind], window=window)


async def lost_response(fault: Fault) -> Response:
    """The request was applied; the answer never reaches the client (a gateway times out)."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    return HTMLResponse("<html><body><h1>504 Gateway Time-out</h1></body></html>", status_code=504)


def sub_app(title: str, render_error) -> FastAPI:
    """A platform sub-app whose errors come out in the platform's own shape.

    ``render_error(SandboxError) -> Response`` builds the body and headers.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(SandboxError)
    async def _handle(request: Request, exc: SandboxError) -> Response:
        return render_error(exc)

    return app
