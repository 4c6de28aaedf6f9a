"""The Airflow plugin that puts Koho's calendar into the Airflow UI.

Airflow 3 plugins extend the UI with FastAPI apps (served by the api-server) and "external
views" (nav entries, shown in an iframe when they have a ``url_route``). The app is built
lazily, on the api-server's first request for the plugin's apps, because every Airflow
component loads plugins (scheduler, workers, dag-processor) and only the api-server serves
them; no component needs a database connection to load it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from koho.ui import URL_PREFIX

#: The nav entry. ``href`` is relative (no leading slash) so it follows ``[api] base_url``;
#: ``url_route`` makes the UI show the page inside Airflow at ``/plugin/koho-calendar``.
CALENDAR_VIEW: dict[str, Any] = {
    "name": "Koho calendar",
    "href": f"{URL_PREFIX.strip('/')}/calendar",
    "url_route": "koho-calendar",
    "destination": "nav",
    "category": "browse",
    "icon": f"{URL_PREFIX.strip('/')}/icon.svg",
}


class KohoUIPlugin(AirflowPlugin):
    """Koho's calendar view: ``/koho/calendar`` (HTML) and ``/koho/calendar.json``."""

    name = "koho_ui"
    external_views = [CALENDAR_VIEW]  # noqa: RUF012 - Airflow reads these class attributes

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from koho.ui.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Koho"}]
