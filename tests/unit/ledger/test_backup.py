"""Backup and restore of the ledger: a dump restored into a fresh ledger holds every row unchanged."""

from __future__ import annotations

import io
import json
import stat
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from koho.ledger.backup import BackupError, dump, main, restore
from koho.ledger.db import get_engine, migrate
from koho.ledger.models import Base, Delivery
from tests.unit.ledger.revision_seeds import fill_through_history

JST = ZoneInfo("Asia/Tokyo")


def _everything(engine: Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {
            table.name: [
                dict(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
            ]
            for table in Base.metadata.sorted_tables
        }


def _full_ledger(url: str) -> Engine:
    """Every revision's rows, plus a thread whose parent has the higher id and times in JST."""
    fill_through_history(url)
    engine = get_engine(url)
    base = datetime(2026, 12, 24, 18, 0, 0, 654321, tzinfo=JST)
    with engine.begin() as conn:
        rows = [
            {"id": 9, "part_index": 0, "parent_delivery_id": None, "idempotency_key": "k-parent"},
            {"id": 5, "part_index": 1, "parent_delivery_id": 9, "idempotency_key": "k-child"},
        ]
        for row in rows:
            conn.execute(
                sa.insert(Delivery.__table__).values(
                    entry_id="2026-12-festival",
                    account_id="city-x",
                    revision=3,
                    due_at=base,
                    status="planned",
                    text="続き：会場は市役所前広場です。\n🎄 雨天決行",
                    planned_created_at=base + timedelta(seconds=1),
                    attempts=0,
                    created_at=base,
                    updated_at=base,
                    **row,
                )
            )
    everything = _everything(engine)
    assert all(everything.values()), "every table holds rows before the dump"
    return engine


def _dump_text(engine: Engine) -> str:
    out = io.StringIO()
    dump(engine, out)
    return out.getvalue()


def _fresh_migrated(url: str) -> Engine:
    migrate(url)
    return get_engine(url)


@pytest.fixture
def target_url(fresh_url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second empty database on the same backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.db'}"
    return request.getfixturevalue("postgres").create_database(f"restored_{uuid.uuid4().hex[:6]}")


def test_restore_loses_nothing(fresh_url: str, target_url: str) -> None:
    source = _full_ledger(fresh_url)
    dumped = _dump_text(source)
    target = _fresh_migrated(target_url)
    summary = restore(target, dumped.splitlines())
    assert summary.tables == {name: len(rows) for name, rows in _everything(source).items()}
    assert _everything(target) == _everything(source)
    with target.begin() as conn:  # ids continue after the restored ones (Postgres sequences)
        new_id = conn.execute(
            sa.insert(Base.metadata.tables["alerts"]).returning(sa.column("id")),
            {
                "kind": "review",
                "severity": "info",
                "subject": "s",
                "detail": {},
                "dedup_key": "after-restore",
                "created_at": datetime(2026, 12, 25, tzinfo=JST),
            },
        ).scalar_one()
    assert new_id > max(row["id"] for row in _everything(source)["alerts"])


def test_dump_is_readable_json_with_offsets(fresh_url: str) -> None:
    lines = _dump_text(_full_ledger(fresh_url)).splitlines()
    header = json.loads(lines[0])
    assert header["tables"]["deliveries"] == 3 and len(lines) == 1 + sum(header["tables"].values())
    feedback = next(json.loads(line)["row"] for line in lines[1:] if '"feedback_items"' in line)
    assert feedback["text"] == "駐車場はありますか？"  # Japanese kept as text, not escapes
    assert datetime.fromisoformat(feedback["created_at"]).utcoffset() == timedelta(0)


@pytest.mark.postgres
def test_a_sqlite_dump_restores_into_postgres(tmp_path: Path, postgres) -> None:
    source = _full_ledger(f"sqlite:///{tmp_path / 'demo.db'}")
    target = _fresh_migrated(postgres.create_database(f"from_sqlite_{uuid.uuid4().hex[:6]}"))
    restore(target, _dump_text(source).splitlines())
    assert _everything(target) == _everything(source)


def test_restore_refuses_a_ledger_that_is_not_empty(fresh_url: str, target_url: str) -> None:
    dumped = _dump_text(_full_ledger(fresh_url))
    target = _fresh_migrated(target_url)
    restore(target, dumped.splitlines())
    with pytest.raises(BackupError, match="'accounts' is not empty"):
        restore(target, dumped.splitlines())


def test_restore_refuses_a_ledger_not_migrated(fresh_url: str, target_url: str) -> None:
    dumped = _dump_text(_full_ledger(fresh_url))
    with pytest.raises(BackupError, match=r"revision \(none: not migrated\).*migrate it first"):
        restore(get_engine(target_url), dumped.splitlines())


def test_a_truncated_dump_is_refused_and_nothing_is_written(fresh_url: str, target_url: str) -> None:
    lines = _dump_text(_full_ledger(fresh_url)).splitlines()
    target = _fresh_migrated(target_url)
    with pytest.raises(BackupError, match="truncated"):
        restore(target, lines[:-1], source="ledger.jsonl")
    assert not any(_everything(target).values())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"ledger\.jsonl:3: not a JSON line"),
        ('{"table": "users", "row": {}}', r"ledger\.jsonl:3: .*got table 'users'"),
        ('{"table": "cursors", "row": {"password": "x"}}', r"ledger\.jsonl:3, table 'cursors': unknown column"),
        (
            '{"table": "cursors", "row": {"account_id": "city-x", "stream": "s", "cursor": "c", "updated_at": "soon"}}',
            r"ledger\.jsonl:3, column 'updated_at': 'soon' is not an ISO 8601 timestamp",
        ),
    ],
)
def test_bad_lines_are_located(tmp_path: Path, line: str, message: str) -> None:
    header = json.dumps({"koho_ledger_dump": 1, "revision": "0001", "tables": {"cursors": 1}})
    good = '{"table": "cursors", "row": {"account_id": "a", "stream": "s", "cursor": "c", "updated_at": null}}'
    with pytest.raises(BackupError, match=message):
        restore(get_engine(f"sqlite:///{tmp_path / 'l.db'}"), [header, good, line], source="ledger.jsonl")


def test_cli_dumps_to_a_private_file_and_restores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source_url = f"sqlite:///{tmp_path / 'city.db'}"
    target_url = f"sqlite:///{tmp_path / 'new.db'}"
    source = _full_ledger(source_url)
    file = tmp_path / "ledger.jsonl"
    assert main(["dump", str(file), "--url", source_url]) == 0
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert main(["dump", str(file), "--url", source_url]) == 1  # never overwrites a backup
    assert "already exists" in capsys.readouterr().err
    _fresh_migrated(target_url)
    assert main(["restore", str(file), "--url", target_url]) == 0
    assert _everything(get_engine(target_url)) == _everything(source)


def test_cli_never_prints_the_database_password(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = "postgresql+psycopg2://koho:s3cret-pw@127.0.0.1:1/koho?connect_timeout=1"
    assert main(["dump", str(tmp_path / "x.jsonl"), "--url", url]) == 1
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.out + captured.err
