"""What every Koho DAG shares: owner, retries, start date, tags. DAG files import these."""

from __future__ import annotations

from datetime import timedelta

import pendulum

OWNER = "pr-section"
START_DATE = pendulum.datetime(2026, 1, 1, tz="Asia/Tokyo")
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
