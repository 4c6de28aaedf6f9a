"""The accounts a mapped collection task runs over: active ones with a connection, as operator kwargs."""

from __future__ import annotations

from koho.collection.targets import collection_targets
from koho.ledger.models import Account


def test_targets_are_the_active_accounts_with_a_connection(ledger):
    rows = [
        ("city-x", "x", "koho_city_x", "active"),
        ("city-mastodon", "mastodon", "koho_city_mastodon", "active"),
        ("old-mastodon", "mastodon", "koho_old_mastodon", "retired"),
        ("kanko-bluesky", "bluesky", None, "active"),
    ]
    with ledger.session() as session:
        for account_id, platform, conn_id, status in rows:
            session.add(
                Account(
                    id=account_id,
                    platform=platform,
                    handle=account_id,
                    display_name=account_id,
                    department="kouhou",
                    connection_id=conn_id,
                    status=status,
                )
            )
    assert collection_targets(ledger) == [
        {"platform": "mastodon", "conn_id": "koho_city_mastodon", "account_id": "city-mastodon"},
        {"platform": "x", "conn_id": "koho_city_x", "account_id": "city-x"},
    ]
    assert collection_targets(ledger, platforms=("x",)) == [
        {"platform": "x", "conn_id": "koho_city_x", "account_id": "city-x"}
    ]
