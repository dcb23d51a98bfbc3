"""PostgreSQL schema migrations (schema_pg.sql), run by `start()` in one transaction under a
transaction-level advisory lock, so agents starting at once migrate exactly once. Which
sections run is `migrations.pending`; the SQLite twin is `sqlite_migrations`."""

from __future__ import annotations

from typing import Any, Final

from shoal.meta.migrations import load_migrations, pending

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

MIGRATIONS: Final = load_migrations("schema_pg.sql")
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
# pg_advisory_xact_lock key for migrations: "shoal" in ASCII, any constant would do.
_MIGRATION_LOCK: Final = 0x73686F616C


async def migrate(conn: Conn, now_ms: int) -> None:
    # Transaction-scoped: released by COMMIT/ROLLBACK, so a dying agent cannot keep it.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
    )
    for version, statements in pending(MIGRATIONS, await schema_version(conn)):
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_version VALUES ($1, $2)", version, now_ms)


async def schema_version(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
