"""PostgreSQL I/O of the maintenance calls (garbage collection, retention, producer and offset
expiry):
transaction bodies run by `postgres.py`. What they decide is in `maintenance`; the SQLite twin
is `sqlite_maintenance`."""

from __future__ import annotations

from typing import Any

from shoal.meta.maintenance import dropped_in_request_order, new_log_start
from shoal.meta.store import FileInfo, PartitionState

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)


async def unreferenced_files(conn: Conn, created_before_ms: int, limit: int) -> list[FileInfo]:
    rows = await conn.fetch(
        "SELECT file_id, key, size FROM files AS f WHERE created_at < $1"
        " AND coalesce(released_at, 0) < $1"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " ORDER BY id LIMIT $2",
        created_before_ms, limit,
    )
    return [FileInfo(r[0], r[1], int(r[2])) for r in rows]


async def forget_files(conn: Conn, file_ids: list[str]) -> list[str]:
    rows = await conn.fetch(
        "DELETE FROM files AS f WHERE file_id = ANY($1::text[])"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " RETURNING file_id",
        file_ids,
    )
    return dropped_in_request_order(file_ids, {r[0] for r in rows})


async def release_files(conn: Conn, file_refs: set[int], now_ms: int) -> None:
    """Stamp the files among `file_refs` that no index row points into any more (called in the
    transaction that dropped the rows)."""
    if file_refs:
        await conn.execute(
            "UPDATE files AS f SET released_at = $1 WHERE id = ANY($2::bigint[])"
            " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)",
            now_ms, sorted(file_refs),
        )


async def advance_log_start(
    conn: Conn, topic: str, partition: int, offset: int, now_ms: int
) -> PartitionState | None:
    row = await conn.fetchrow(
        "SELECT log_start_offset, next_offset FROM partitions"
        " WHERE topic = $1 AND partition = $2 FOR UPDATE",
        topic, partition,
    )
    if row is None:
        return None
    start = new_log_start(int(row[0]), int(row[1]), offset)
    await conn.execute(
        "UPDATE partitions SET log_start_offset = $3 WHERE topic = $1 AND partition = $2",
        topic, partition, start,
    )
    # Rows are dense and ordered, so "last_offset < start" is a prefix of the key range.
    dropped = await conn.fetch(
        "DELETE FROM batches WHERE topic = $1 AND partition = $2 AND base_offset < $3"
        " AND last_offset < $3 RETURNING file_ref",
        topic, partition, start,
    )
    await release_files(conn, {int(r[0]) for r in dropped}, now_ms)
    return PartitionState(start, int(row[1]))


async def expire_producers(conn: Conn, idle_before_ms: int) -> int:
    states = await conn.fetchval(
        "WITH d AS (DELETE FROM producer_state WHERE updated_at < $1 RETURNING 1)"
        " SELECT count(*) FROM d",
        idle_before_ms,
    )
    ids = await conn.fetchval(
        "WITH d AS (DELETE FROM producers AS p WHERE transactional_id IS NULL"
        " AND updated_at < $1 AND NOT EXISTS"
        " (SELECT 1 FROM producer_state AS s WHERE s.producer_id = p.producer_id)"
        " RETURNING 1) SELECT count(*) FROM d",
        idle_before_ms,
    )
    return int(states) + int(ids)


async def expire_offsets(conn: Conn, expired_before_ms: int) -> tuple[int, int]:
    """As `sqlite_maintenance.expire_offsets`."""
    offsets = await conn.fetchval(
        "WITH d AS (DELETE FROM group_offsets WHERE group_id IN (SELECT group_id FROM"
        " consumer_groups WHERE state = 'Empty' AND updated_at < $1) OR (commit_time < $1 AND"
        " group_id NOT IN (SELECT group_id FROM consumer_groups)) RETURNING 1)"
        " SELECT count(*) FROM d",
        expired_before_ms,
    )
    groups = await conn.fetchval(
        "WITH d AS (DELETE FROM consumer_groups WHERE state = 'Empty' AND updated_at < $1"
        " AND group_id NOT IN (SELECT group_id FROM group_offsets) RETURNING 1)"
        " SELECT count(*) FROM d",
        expired_before_ms,
    )
    return int(offsets), int(groups)
