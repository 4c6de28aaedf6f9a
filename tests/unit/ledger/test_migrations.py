"""Upgrades from every released schema: each revision's data survives the way to head.

For every revision in the Alembic history the test builds the schema at that revision, writes
the representative rows of every revision up to it with plain SQL (as that revision's code
would have written them, ``revision_seeds.SEEDS``), upgrades to head, and reads every row back
through the models.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from koho.ledger.db import alembic_config, get_engine, migrate
from koho.ledger.models import VERSION_TABLE
from tests.unit.ledger.revision_seeds import SEEDS, history, read_back, seed_up_to
from tests.unit.ledger.schema_compare import schema_differences


def test_every_revision_has_seed_data() -> None:
    missing = [rev for rev in history() if rev not in SEEDS]
    assert missing == [], f"add representative rows for revision(s) {missing} to SEEDS"


@pytest.mark.parametrize("start", history())
def test_upgrade_from_each_revision_keeps_the_data(fresh_url: str, start: str) -> None:
    migrate(fresh_url, start)
    engine = get_engine(fresh_url)
    with engine.begin() as conn:
        written = seed_up_to(conn, start)
    migrate(fresh_url)
    with engine.connect() as conn:
        assert schema_differences(conn) == []
        for table, row in written:
            assert read_back(conn, table, row) == row, table


def test_downgrade_to_base_and_back(fresh_url: str) -> None:
    migrate(fresh_url)
    config = alembic_config()
    engine = get_engine(fresh_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {VERSION_TABLE}
    migrate(fresh_url)
    with engine.connect() as conn:
        assert schema_differences(conn) == []
