"""SQLite schema migrations (schema.sql), run by `start()` on the store's worker thread.
Which sections run is `migrations.pending`; the PostgreSQL twin is `postgres_migrations`."""

from __future__ import annotations

import sqlite3
from typing import Final

from shoal.meta.migrations import load_migrations, pending
from shoal.meta.sqlite_txn import write_txn

MIGRATIONS: Final = load_migrations("schema.sql")
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def migrate(conn: sqlite3.Connection, now_ms: int) -> None:
    with write_txn(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        for version, statements in pending(MIGRATIONS, schema_version(conn)):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now_ms))


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0])
