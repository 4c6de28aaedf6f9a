"""Koho's ledger: its own database of accounts, calendar entries, deliveries, metrics,
feedback and alerts (never Airflow's metadata DB, which tasks cannot reach in Airflow 3).

Typical use in a task::

    from koho.ledger import Ledger, deliveries

    ledger = Ledger.from_airflow()          # connection "koho_db" (or $KOHO_LEDGER_CONN_ID)
    with ledger.session() as session:       # commit on success, rollback on error
        claim = deliveries.claim_for_sending(session, delivery_id, dag_run_id)

One module per aggregate, each a set of functions taking a Session and the only place that
queries or writes its tables: :mod:`~koho.ledger.accounts`, :mod:`~koho.ledger.entries`,
:mod:`~koho.ledger.deliveries` (the exactly-once state machine), :mod:`~koho.ledger.alerts`,
:mod:`~koho.ledger.feedback`, :mod:`~koho.ledger.metrics`, :mod:`~koho.ledger.cursors`.
``repo`` re-exports their functions under the old flat names for code not yet moved.

Migrations run with :func:`migrate` (or ``Ledger.migrate()``): idempotent, SQLite and Postgres.
"""

from __future__ import annotations

from koho.ledger import repo
from koho.ledger.db import Ledger, LedgerConfigError, get_engine, migrate, safe_url, url_from_connection

__all__ = ["Ledger", "LedgerConfigError", "get_engine", "migrate", "repo", "safe_url", "url_from_connection"]
