"""The calendar view as a FastAPI app, served by Airflow's api-server under ``/koho``.

``GET /koho/calendar?view=month|week&date=YYYY-MM-DD&account=ID`` is a server-rendered page
(autoescaped Jinja, no JavaScript) that the Airflow UI shows in its "Koho calendar" nav entry;
``GET /koho/calendar.json`` returns the same data for scripts and tests.

Why it looks like this:

* Plugin apps are *not* protected by Airflow automatically. Every data route requires an
  Airflow user allowed to use the UI (the same JWT cookie the UI itself uses), unless a test
  turns it off explicitly.
* Nothing happens at import: the ledger is opened on the first request (``koho_db``
  connection), so the api-server starts even when the ledger is down, and the page then says
  so instead of failing the whole server.
* Every link is relative ("calendar?...", "../dags/..."), so the view works under any
  ``[api] base_url`` and behind a reverse proxy; DAG run links target the top window because
  the page is shown inside the UI's iframe.
* Titles and error texts come from staff and platforms: autoescaped, and platform URLs are
  linked only when they are http(s). A strict Content-Security-Policy backs that up.
* A published post on an account whose connection posts to a stand-in platform (the sandbox)
  also links to the stand-in's timeline, where it is shown as the platform would show it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response

from koho.ledger.db import Ledger
from koho.templating import render_html
from koho.timeline_links import cached_timelines, post_link
from koho.timeutil import to_local
from koho.ui import URL_PREFIX
from koho.ui.calendar_data import STATUS_LABELS, VIEWS, WEEKDAYS_JA, CalendarPage, load_calendar

log = logging.getLogger(__name__)

__all__ = ["URL_PREFIX", "create_app"]
DAG_IDS_ENV = "KOHO_UI_DAG_IDS"
HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
}
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#4a6fa5" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="4" width="18" '
    'height="18" rx="2"/><path d="M16 2v4M8 2v4M3 10h18M8 14h.01M12 14h.01M16 14h.01M8 18h.01M12 18h.01"/></svg>'
)

LedgerSource = Ledger | Callable[[], Ledger] | None


class BadRequest(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _Ledgers:
    """The ledger to read: given (tests), or the ``koho_db`` connection, opened on first use."""

    def __init__(self, source: LedgerSource):
        self._source = source
        self._cached: Ledger | None = None
        self._lock = threading.Lock()

    def get(self) -> Ledger:
        if isinstance(self._source, Ledger):
            return self._source
        if self._source is not None:
            return self._source()
        with self._lock:  # failures are not cached: the next request tries again
            if self._cached is None:
                self._cached = Ledger.from_airflow()
            return self._cached


def dag_ids_from_env() -> dict[str, str]:
    """Entry origin -> DAG id, from ``$KOHO_UI_DAG_IDS`` (JSON), for runs recorded without their DAG."""
    raw = os.environ.get(DAG_IDS_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning('%s is not JSON (expected {"calendar": "<dag id>", ...}); ignored', DAG_IDS_ENV)
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


Timelines = Callable[[tuple[str, ...]], Mapping[str, str]]


def link_timelines(page: CalendarPage, timelines: Timelines) -> None:
    """Give each published item on a stand-in platform its timeline link (connection id -> timeline)."""
    published = [i for i in page.items if i.status == "published" and i.remote_id and i.connection_id and i.platform]
    found = timelines(tuple(sorted({i.connection_id for i in published if i.connection_id})))
    for item in published:
        timeline = found.get(item.connection_id or "")
        if timeline and item.platform and item.remote_id:
            item.timeline_url = post_link(timeline, item.platform, item.remote_id)


def create_app(
    ledger: LedgerSource = None,
    *,
    require_auth: bool = True,
    dag_ids: Mapping[str, str] | None = None,
    timelines: Timelines = cached_timelines,
) -> FastAPI:
    """Build the app. ``ledger``: a Ledger or a factory (default: the ``koho_db`` connection);
    ``timelines``: {connection id: stand-in timeline} for connection ids (default: their extras)."""
    ledgers = _Ledgers(ledger)
    dag_map = dict(dag_ids) if dag_ids is not None else dag_ids_from_env()
    app = FastAPI(title="Koho", docs_url=None, redoc_url=None, openapi_url=None)
    router = APIRouter(dependencies=[Depends(_ui_access())] if require_auth else [])

    def page_for(view: str, day: str | None, account: str | None) -> CalendarPage:
        anchor = _parse(view, day, account)
        with ledgers.get().session(readonly=True) as session:
            page = load_calendar(session, view, anchor, account=account or None, dag_ids=dag_map)  # type: ignore[arg-type]
        link_timelines(page, timelines)
        return page

    @router.get("/calendar", response_class=HTMLResponse)
    def calendar_html(view: str = "month", date: str | None = None, account: str | None = None) -> Response:
        try:
            page = page_for(view, date, account)
        except BadRequest as exc:
            return _html_error(400, "入力が正しくありません / Bad request", exc.message)
        except Exception as exc:
            log.exception("Koho calendar: the ledger could not be read")
            return _html_error(503, "台帳を読めません / Ledger unavailable", _unavailable(exc))
        html = render_html(
            "ui/calendar.html.j2",
            page=page,
            labels=STATUS_LABELS,
            weekdays=WEEKDAYS_JA,
            generated=to_local(datetime.now(UTC)),
        )
        return HTMLResponse(html, headers=HTML_HEADERS)

    @router.get("/calendar.json")
    def calendar_json(view: str = "month", date: str | None = None, account: str | None = None) -> Response:
        try:
            page = page_for(view, date, account)
        except BadRequest as exc:
            return JSONResponse({"detail": exc.message}, status_code=400)
        except Exception as exc:
            log.exception("Koho calendar: the ledger could not be read")
            return JSONResponse({"detail": _unavailable(exc)}, status_code=503)
        return JSONResponse(page.to_json(), headers={"Cache-Control": "no-store"})

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        return Response(ICON_SVG, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    app.include_router(router)
    return app


def _ui_access() -> Callable[..., Any]:
    """Airflow's own check that the caller is a UI user (imported here: only the api-server has it)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.WEBSITE)


def _parse(view: str, day: str | None, account: str | None) -> date:
    if view not in VIEWS:
        raise BadRequest(f"view must be one of {', '.join(VIEWS)} (got {view[:20]!r})")
    if account is not None and len(account) > 64:
        raise BadRequest("account id is too long")
    if not day:
        return to_local(datetime.now(UTC)).date()
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise BadRequest(f"date must look like 2026-11-30 (got {day[:20]!r})") from None


def _unavailable(exc: Exception) -> str:
    """A message that helps an operator without echoing connection details (they may hold secrets)."""
    from koho.ledger.db import LedgerConfigError

    if isinstance(exc, LedgerConfigError):
        return str(exc)
    return f"the Koho ledger (connection koho_db) could not be read: {type(exc).__name__}; see the api-server log"


def _html_error(status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(
        render_html("ui/error.html.j2", title=title, message=message), status_code=status, headers=HTML_HEADERS
    )


def __getattr__(name: str) -> Any:
    """``koho.ui.app.app``: the default app, built on first access (never at import)."""
    if name == "app":
        global _default_app
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)


_default_app: FastAPI | None = None
