"""The few Airflow REST API calls the health check needs (tasks cannot read Airflow's metadata DB).

``/api/v2/monitor/health`` needs no login; listing pools does, with a JWT from ``/auth/token``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

TIMEOUT_S = 10


@dataclass(frozen=True)
class Health:
    """The health document, and the server's clock read from the answer's Date header."""

    components: dict[str, Any]
    server_date: datetime | None
    sent_at: datetime
    received_at: datetime


@dataclass
class AirflowApi:
    base_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = TIMEOUT_S

    @property
    def can_log_in(self) -> bool:
        return bool(self.username and self.password)

    def health(self, clock) -> Health:
        sent = clock()
        response = requests.get(f"{self.base_url.rstrip('/')}/api/v2/monitor/health", timeout=self.timeout)
        received = clock()
        response.raise_for_status()
        date = response.headers.get("Date")
        return Health(response.json(), parsedate_to_datetime(date) if date else None, sent, received)

    def pool_names(self) -> set[str]:
        base = self.base_url.rstrip("/")
        token = requests.post(
            f"{base}/auth/token", json={"username": self.username, "password": self.password}, timeout=self.timeout
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        names: set[str] = set()
        offset = 0
        while True:
            page = requests.get(
                f"{base}/api/v2/pools", params={"limit": 100, "offset": offset}, headers=headers, timeout=self.timeout
            )
            page.raise_for_status()
            body = page.json()
            names |= {pool["name"] for pool in body.get("pools", [])}
            offset += 100
            if offset >= int(body.get("total_entries", 0)):
                return names
