"""Compare a migrated database with the models: shared by the schema and the migration tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from koho.ledger.models import VERSION_TABLE, Base


def schema_differences(conn: Connection, metadata: sa.MetaData = Base.metadata) -> list[Any]:
    """What differs between the database and ``metadata``: Alembic's diff plus CHECK constraint names.

    Alembic does not compare CHECK constraints, so their names are compared here.
    """
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "compare_type": True, "compare_server_default": True}
    )
    diff: list[Any] = list(compare_metadata(context, metadata))
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue  # already reported by Alembic as add_table
        in_models = {ck.name for ck in table.constraints if isinstance(ck, sa.CheckConstraint)}
        in_db = {ck["name"] for ck in inspector.get_check_constraints(table.name)}
        if in_db != in_models:
            diff.append(("check_constraints", table.name, sorted(in_db ^ in_models)))
    return diff
