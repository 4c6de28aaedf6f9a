"""Provider metadata: how Airflow learns Koho's connection types and shows their forms.

Registered through the ``apache_airflow_provider`` entry point in pyproject.toml. The form of
each platform's connection is derived from its hook's class attributes, so a new platform
module brings its connection form with it.
"""

from __future__ import annotations

import logging
from typing import Any

from koho import __version__

log = logging.getLogger(__name__)


def _connection_type(platform: str) -> dict[str, Any]:
    from koho.platforms.registry import HOOKS, hook_class

    hook = hook_class(platform)
    module, _, name = HOOKS[platform].partition(":")
    conn_fields = {
        field: {
            "label": label,
            "description": description,
            "schema": {"type": ["string", "null"]},
            **({"sensitive": True} if field in hook.secret_extra_fields else {}),
        }
        for field, (label, description) in hook.extra_fields.items()
    }
    return {
        "hook-class-name": f"{module}.{name}",
        "hook-name": hook.hook_name,
        "connection-type": hook.conn_type,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "Handle", "password": "Access token"},
            "placeholders": {
                "host": hook.default_host or "https://your-instance.example",
                "login": "the account's handle (as in accounts.yaml)",
            },
        },
        "conn-fields": conn_fields,
    }


def get_provider_info() -> dict[str, Any]:
    from koho.platforms.registry import PLATFORMS

    types = []
    for platform in PLATFORMS:
        try:
            types.append(_connection_type(platform))
        except ImportError as exc:  # one broken platform module must not take the UI down
            log.error("Koho platform '%s' could not be loaded: %s", platform, exc)
    return {
        "package-name": "koho",
        "name": "Koho",
        "description": "Social media operations for city halls: platform hooks and connection types.",
        "versions": [__version__],
        "connection-types": types,
    }
