"""Alembic environment for the ledger.

:func:`koho.ledger.db.migrate` runs Alembic in code and hands over an open connection through
``config.attributes["connection"]``. Developers can also use the ``alembic`` command with
``plugins/koho/ledger/alembic.ini`` and ``-x url=...`` (see that file), e.g. to write the next
migration with ``--autogenerate``.

This file is only meaningful inside Alembic: the guard at the bottom keeps a plain import of it
(Airflow's plugin loader imports every ``.py`` under ``plugins/``) from failing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from koho.ledger.db import get_engine
from koho.ledger.models import VERSION_TABLE, Base

target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite can only ALTER tables by copying them
        compare_type=True,
        **kwargs,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str | None:
    return context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")


def run_migrations() -> None:
    """Offline: print SQL for the URL's dialect. Online: migrate the given or configured DB."""
    if context.is_offline_mode():
        _configure(url=_url(), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = _url()
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    with get_engine(url).begin() as conn:  # the ledger's engine settings (SQLite pragmas...)
        _run_on(conn)


# Alembic sets ``context.config`` only while it runs this file.
if hasattr(context, "config"):
    run_migrations()
