"""A ``limits`` storage in one SQLite file, for the processes of one machine (the embedded setup).

``limits`` ships storages for a server (Redis, Memcached, MongoDB) and for one process (memory);
LocalExecutor's worker processes share neither, only the filesystem. SQLite's own file lock makes
each acquire one atomic transaction across processes without a server, so this small storage is
hand-written where ``limits`` has none. It registers the ``sqlite:///<path>`` scheme, so
``limits.storage.storage_from_string`` builds it like any other.

Only what Koho's budgets use is implemented: counters (``incr``/``get``/``get_expiry``) and the
moving window. Times come from ``clock`` (epoch seconds) so tests can move time themselves.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from limits.storage import MovingWindowSupport, Storage
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS window_entries (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_window_entries_key_at ON window_entries (key, at)",
    "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL)",
)


def sqlite_path(uri: str) -> Path:
    """The file of ``sqlite:///<absolute path>`` (or ``sqlite:///relative``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or not parsed.path:
        raise ValueError(f"expected sqlite:///<path to a file>, got {uri!r}")
    return Path(unquote(parsed.path))


class SQLiteStorage(Storage, MovingWindowSupport):
    """Counters and moving windows in a SQLite file shared by every process that opens it."""

    STORAGE_SCHEME = ["sqlite"]  # noqa: RUF012 - the attribute limits registers schemes from

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        *,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.path = sqlite_path(uri)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        # One connection per process: a connection inherited across fork() must not be used.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            # Switching to WAL can answer "database is locked" at once, without the busy timeout,
            # while another process opens the same new file: try again for a few seconds.
            for attempt in Retrying(
                retry=retry_if_exception_type(sqlite3.OperationalError),
                stop=stop_after_delay(10),
                wait=wait_random(0.01, 0.1),
                reraise=True,
            ):
                with attempt:
                    conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # windows need no fsync per commit: a lost second is harmless
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: it holds the file's write lock from its start, so a read and the
        write decided on it are one step for every process."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ----------------------------------------------------------------- counters

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount``; a new (or expired) counter starts at 0 and expires ``expiry`` seconds from now."""
        now = self._clock()
        with self._transaction() as conn:
            conn.execute("DELETE FROM counters WHERE key = ? AND expires_at <= ?", (key, now))
            conn.execute(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (key, amount, now + expiry),
            )
            return int(conn.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()[0])

    def get(self, key: str) -> int:
        row = self._live_counter(key)
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._live_counter(key)
        return float(row[1]) if row else self._clock()

    def _live_counter(self, key: str) -> tuple[int, float] | None:
        with self._lock:
            return (
                self._connection()
                .execute(
                    "SELECT value, expires_at FROM counters WHERE key = ? AND expires_at > ?", (key, self._clock())
                )
                .fetchone()
            )

    def clear(self, key: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))
            conn.execute("DELETE FROM window_entries WHERE key = ?", (key,))

    def check(self) -> bool:
        try:
            with self._lock:
                self._connection().execute("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        with self._transaction() as conn:
            removed = (
                conn.execute("DELETE FROM counters").rowcount + conn.execute("DELETE FROM window_entries").rowcount
            )
        return removed

    # ----------------------------------------------------------------- moving window

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` entries now if the last ``expiry`` seconds hold at most ``limit - amount``."""
        if amount > limit:
            return False
        now = self._clock()
        with self._transaction() as conn:
            conn.execute("DELETE FROM window_entries WHERE key = ? AND at <= ?", (key, now - expiry))
            (count,) = conn.execute("SELECT COUNT(*) FROM window_entries WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            conn.executemany("INSERT INTO window_entries (key, at) VALUES (?, ?)", [(key, now)] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry still in the window, entries in it); (now, 0) when empty."""
        now = self._clock()
        with self._lock:
            oldest, count = (
                self._connection()
                .execute("SELECT MIN(at), COUNT(*) FROM window_entries WHERE key = ? AND at > ?", (key, now - expiry))
                .fetchone()
            )
        return (float(oldest), int(count)) if count else (now, 0)
