"""Koho in the Airflow UI: the posting calendar (an Airflow 3 plugin: FastAPI app + nav entry).

Importing this package does nothing heavy; the plugin class is in :mod:`koho.ui.plugin`, the
web app in :mod:`koho.ui.app`, the data it shows in :mod:`koho.ui.calendar_data`.
"""

from __future__ import annotations

#: Where the api-server mounts Koho's app; the nav entry and every link derive from it.
URL_PREFIX = "/koho"
