"""Assemble the sandbox: one sub-app per platform under its prefix, plus /healthz and /_admin."""

from __future__ import annotations

import importlib
import time

from fastapi import FastAPI, Request

from sandbox.admin import router as admin_router
from sandbox.state import SandboxState

#: Platform modules in ``sandbox/platforms``; each has ``PREFIX`` and ``create_app(state)``.
PLATFORM_MODULES = ("x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon", "jma")


def create_app(state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState()
    app = FastAPI(title="Koho sandbox", docs_url="/_docs", openapi_url="/_openapi.json")
    app.state.sandbox = state
    app.include_router(admin_router)
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
