"""Assemble the sandbox: one sub-app per platform under its prefix, plus /healthz, /_admin,
/_timeline and the API docs at /_docs (served from a package, not a CDN: a city hall's closed
network reaches no CDN)."""

from __future__ import annotations

import importlib
import time

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from sandbox.admin import router as admin_router
from sandbox.state import SandboxState
from sandbox.timeline import router as timeline_router

#: The request line and headers uvicorn accepts: a timeline preview carries a whole thread in its
#: query string (h11's default of 16 KiB is a few Japanese paragraphs).
MAX_REQUEST_HEAD = 1024 * 1024
#: uvicorn options every way of serving the sandbox shares.
SERVER_OPTIONS = {"access_log": False, "h11_max_incomplete_event_size": MAX_REQUEST_HEAD}

#: Platform modules in ``sandbox/platforms``; each has ``PREFIX`` and ``create_app(state)``.
PLATFORM_MODULES = ("x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon", "jma")


def create_app(state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState()
    app: FastAPI = FastAPIOffline(
        title="Koho sandbox",
        docs_url="/_docs",
        redoc_url=None,
        openapi_url="/_openapi.json",
        static_url="/_docs/static",
    )
    app.state.sandbox = state
    app.include_router(admin_router)
    app.include_router(timeline_router)
    mounted: list[str] = []
    for name in PLATFORM_MODULES:
        module = importlib.import_module(f"sandbox.platforms.{name}")
        sub = module.create_app(state)
        sub.state.sandbox = state
        app.mount(module.PREFIX, sub)
        mounted.append(name)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        parts = request.url.path.strip("/").split("/", 1)
        platform = bool(parts) and parts[0] in mounted
        if platform:
            state.request_started()
        try:
            response = await call_next(request)
        finally:
            if platform:
                state.request_finished()
        if platform and response.status_code != 429:
            # 429s are recorded where they are decided, with the account they belong to.
            state.stats.record(parts[0], "*", response.status_code, time.time())
        return response

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "platforms": mounted}

    return app
