"""Dump the ledger to one portable file and restore it into an empty, migrated ledger.

The ledger is the city's record of what it published and what residents wrote, so a backup
must lose nothing and must restore anywhere. The dump is JSON lines written through SQLAlchemy
rather than ``pg_dump`` or SQLite's ``.backup``: the same file restores into SQLite or Postgres
(moving from ``make run`` to the distributed setup included), and it carries the schema
revision so a restore into a ledger of another revision is refused instead of half-applied.
Whole-database snapshots with the native tools are still documented for the operators
(docs/operations.md); they complement this, they do not replace it.

File layout: a header line ``{"koho_ledger_dump": 1, "revision": ..., "tables": {name: rows}}``
then one line per row ``{"table": name, "row": {...}}``, timestamps as ISO 8601 with offset.
The file is created readable by its owner only: it holds residents' comments.

Usage::

    python -m koho.ledger.backup dump  ledger.jsonl [--conn-id koho_db | --url URL]
    python -m koho.ledger.backup restore ledger.jsonl [--conn-id koho_db | --url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from koho.errors import KohoError
from koho.ledger.db import Ledger, safe_url
from koho.ledger.health import current_revision, head_revision
from koho.ledger.models import Base, UTCDateTime

FORMAT_VERSION = 1
BATCH_ROWS = 1000


class BackupError(KohoError):
    """A dump or restore that cannot be done safely; the message says where and what."""


@dataclass(frozen=True)
class DumpSummary:
    revision: str
    tables: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def _tables() -> list[sa.Table]:
    return list(Base.metadata.sorted_tables)  # parents before children


def _encode(column: sa.Column, value: Any) -> Any:
    if value is not None and isinstance(column.type, UTCDateTime):
        return value.isoformat()
    return value


def _decode(column: sa.Column, value: Any, where: str) -> Any:
    if value is not None and isinstance(column.type, UTCDateTime):
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise BackupError(f"{where}, column '{column.name}': {value!r} is not an ISO 8601 timestamp") from None
    return value


def _require_head(conn: Connection, what: str) -> str:
    revision = current_revision(conn)
    head = head_revision()
    if revision != head:
        raise BackupError(
            f"{what} is at schema revision {revision or '(none: not migrated)'}, this Koho expects {head}: "
            "migrate it first (Ledger.migrate(), or `airflow-init` in docker compose)"
        )
    return head


def dump(engine: Engine, out: IO[str]) -> DumpSummary:
    """Write every row of the ledger to ``out`` from one consistent snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():  # one transaction: a snapshot even while Airflow keeps writing
            revision = _require_head(conn, "the ledger")
            counts = {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in _tables()
            }
            header = {"koho_ledger_dump": FORMAT_VERSION, "revision": revision, "tables": counts}
            out.write(json.dumps(header, ensure_ascii=False) + "\n")
            for table in _tables():
                order = list(table.primary_key.columns)
                result = conn.execution_options(yield_per=BATCH_ROWS).execute(sa.select(table).order_by(*order))
                for row in result.mappings():
                    encoded = {column.name: _encode(column, row[column.name]) for column in table.columns}
                    out.write(json.dumps({"table": table.name, "row": encoded}, ensure_ascii=False) + "\n")
    return DumpSummary(revision, counts)


def _read(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise BackupError(f"{source}:{number}: not a JSON line ({exc.msg})") from None


def _header(records: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
    number, header = next(records, (1, None))
    if not isinstance(header, dict) or header.get("koho_ledger_dump") != FORMAT_VERSION:
        raise BackupError(f"{source}:{number}: not a Koho ledger dump (format {FORMAT_VERSION}) header")
    if not isinstance(header.get("tables"), dict) or not isinstance(header.get("revision"), str):
        raise BackupError(f"{source}:{number}: the header lacks 'revision' or 'tables'")
    return header


def _parents_first(table: sa.Table, rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Order rows of a self-referencing table (a thread's parts) so each parent precedes its children."""
    links = [(fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table is table]
    if not links:
        return rows
    ordered: list[dict[str, Any]] = []
    present: dict[str, set[Any]] = {target: set() for _, target in links}
    pending = rows
    while pending:
        ready = [r for r in pending if all(r.get(src) is None or r[src] in present[dst] for src, dst in links)]
        if not ready:
            raise BackupError(f"{where}: {len(pending)} row(s) of '{table.name}' refer to rows missing from the dump")
        for row in ready:
            ordered.append(row)
            for _, target in links:
                present[target].add(row[target])
        ready_ids = {id(r) for r in ready}
        pending = [r for r in pending if id(r) not in ready_ids]
    return ordered


def _reset_sequences(conn: Connection) -> None:
    """Postgres serial counters must start past the restored ids, or the next insert collides."""
    if conn.dialect.name != "postgresql":
        return
    for table in _tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                sequence = conn.execute(
                    sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
                ).scalar()
                if sequence:
                    top = conn.execute(sa.select(sa.func.max(column))).scalar()
                    conn.execute(
                        sa.text("SELECT setval(:s, :v, :called)"),
                        {"s": sequence, "v": top or 1, "called": top is not None},
                    )


def restore(engine: Engine, lines: Iterable[str], source: str = "dump") -> DumpSummary:
    """Load a dump into an empty ledger at the dump's revision: all rows, in one transaction, or none."""
    tables = {table.name: table for table in _tables()}
    records = _read(lines, source)
    header = _header(records, source)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    for number, record in records:
        where = f"{source}:{number}"
        name = record.get("table") if isinstance(record, dict) else None
        if name not in tables or not isinstance(record.get("row"), dict):
            raise BackupError(f"{where}: expected {{'table': <a ledger table>, 'row': {{...}}}}, got table {name!r}")
        table = tables[name]
        unknown = set(record["row"]) - set(table.columns.keys())
        if unknown:
            raise BackupError(f"{where}, table '{name}': unknown column(s) {sorted(unknown)}")
        rows[name].append({key: _decode(table.columns[key], value, where) for key, value in record["row"].items()})
    counted = {name: len(found) for name, found in rows.items() if found or name in header["tables"]}
    expected = {name: int(n) for name, n in header["tables"].items()}
    if counted != expected:
        raise BackupError(f"{source}: the header announces {expected} rows but the file holds {counted}: truncated?")
    with engine.begin() as conn:
        revision = _require_head(conn, "the target ledger")
        if header["revision"] != revision:
            raise BackupError(
                f"{source}: dumped at schema revision {header['revision']}, the target ledger is at {revision}: "
                "restore into a ledger of the dump's revision, then migrate it"
            )
        for table in tables.values():
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                raise BackupError(
                    f"the target ledger's table '{table.name}' is not empty: restore only into an empty ledger"
                )
        for name, table in tables.items():
            ordered = _parents_first(table, rows[name], source)
            for start in range(0, len(ordered), BATCH_ROWS):
                conn.execute(table.insert(), ordered[start : start + BATCH_ROWS])
        _reset_sequences(conn)
    return DumpSummary(header["revision"], expected)


def _open_private(path: Path) -> IO[str]:
    """A new file only its owner can read (the dump holds residents' personal data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _ledger(args: argparse.Namespace) -> Ledger:
    return Ledger(args.url) if args.url else Ledger.from_airflow(args.conn_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m koho.ledger.backup", description="Back up or restore Koho's ledger."
    )
    parser.add_argument("action", choices=["dump", "restore"])
    parser.add_argument("file", type=Path, help="the dump file (dump refuses to overwrite one)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--conn-id", help="Airflow connection of the ledger (default: koho_db)")
    target.add_argument("--url", help="SQLAlchemy URL of the ledger instead of an Airflow connection")
    args = parser.parse_args(argv)
    try:
        ledger = _ledger(args)
        if args.action == "dump":
            try:
                out = _open_private(args.file)
            except FileExistsError:
                raise BackupError(f"{args.file} already exists: choose a new file name") from None
            with out:
                summary = dump(ledger.engine, out)
        else:
            with args.file.open(encoding="utf-8") as lines:
                summary = restore(ledger.engine, lines, source=str(args.file))
    except (KohoError, OSError) as exc:
        print(f"koho ledger {args.action}: {exc}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError as exc:  # the driver's first line names host and cause, never the password
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        where = safe_url(args.url) if args.url else f"connection '{args.conn_id or 'koho_db'}'"
        print(f"koho ledger {args.action}: {where}: {reason}", file=sys.stderr)
        return 1
    if args.action == "dump":
        print(f"dumped {summary.rows} rows (revision {summary.revision}) of {safe_url(ledger.url)} to {args.file}")
    else:
        print(
            f"restored {summary.rows} rows (revision {summary.revision}) from {args.file} into {safe_url(ledger.url)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
