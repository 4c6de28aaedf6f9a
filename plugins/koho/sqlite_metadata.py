"""Connection arguments for Airflow's metadata database when it is a SQLite file (``make run``).

The embedded setup runs the api-server, scheduler, dag-processor, triggerer and task processes
on one SQLite file. SQLite lets one writer in at a time and Python's driver gives up after 5 s
of waiting, which on a small, busy machine turns an ordinary write — pausing a DAG, triggering a
run — into an HTTP 500 "Database error". Waiting longer for the lock is the right trade for a
single-machine deployment; Postgres (the distributed setup) never reads this.

Airflow imports the dict named by ``[database] sql_alchemy_connect_args``
(``scripts/koho_env.py`` sets it for SQLite only).
"""

from __future__ import annotations

from typing import Any

#: Seconds a connection waits for SQLite's write lock before failing with "database is locked".
BUSY_TIMEOUT_SECONDS = 30

# Two dicts, not one: Airflow adds its own keys to the sync engine's arguments in place.
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_SECONDS}
ASYNC_CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_SECONDS}
