"""Provider metadata: how Airflow learns Koho's connection types and shows their forms.

Registered through the ``apache_airflow_provider`` entry point in pyproject.toml. Airflow calls
this while it is itself being imported, so it reads :mod:`koho.platforms.catalog` only and never
imports a hook module (hooks import Airflow).
"""

from __future__ import annotations

from typing import Any

from koho import __version__
from koho.platforms.catalog import PLATFORMS, PlatformInfo


def _connection_type(info: PlatformInfo) -> dict[str, Any]:
    module, _, name = info.hook.partition(":")
    conn_fields = {
        field: {
            "label": label,
            "description": description,
            "schema": {"type": ["string", "null"]},
            **({"sensitive": True} if field in info.secret_extra_fields else {}),
        }
        for field, (label, description) in info.extra_fields.items()
    }
    return {
        "hook-class-name": f"{module}.{name}",
        "hook-name": info.hook_name,
        "connection-type": info.conn_type,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "Handle", "password": "Access token"},
            "placeholders": {
                "host": info.default_host or "https://your-instance.example",
                "login": "the account's handle (as in accounts.yaml)",
            },
        },
        "conn-fields": conn_fields,
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "koho",
        "name": "Koho",
        "description": "Social media operations for city halls: platform hooks and connection types.",
        "versions": [__version__],
        "connection-types": [_connection_type(info) for info in PLATFORMS.values()],
    }
