"""PostgreSQL I/O of the maintenance calls (garbage collection, retention, file compaction,
producer and offset expiry):
transaction bodies run by `postgres.py`. What they decide is in `maintenance`; the SQLite twin
is `sqlite_maintenance`."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from shoal.meta.commits import check_deadline
from shoal.meta.maintenance import dropped_in_request_order, new_log_start, oldest_first
from shoal.meta.store import (
    CompactionFile,
    DuplicateFileError,
    FileInfo,
    FileRow,
    PartitionState,
    RowMove,
    SwapResult,
)

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)


# As sqlite_maintenance.UNREFERENCED_SQL: each kind from its partial index (migration 7).
_UNREFERENCED_SQL = """
(SELECT id, file_id, key, size FROM files AS f
  WHERE released_at IS NOT NULL AND released_at < $1 AND created_at < $1
  AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)
  ORDER BY released_at LIMIT $2)
UNION ALL
(SELECT id, file_id, key, size FROM files AS f
  WHERE NOT committed AND released_at IS NULL AND created_at < $1
  AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)
  ORDER BY created_at LIMIT $2)
"""


async def unreferenced_files(conn: Conn, created_before_ms: int, limit: int) -> list[FileInfo]:
    rows = await conn.fetch(_UNREFERENCED_SQL, created_before_ms, limit)
    return [FileInfo(r[1], r[2], int(r[3])) for r in oldest_first(rows, limit)]


async def forget_files(conn: Conn, file_ids: list[str]) -> list[str]:
    rows = await conn.fetch(
        "DELETE FROM files AS f WHERE file_id = ANY($1::text[])"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " RETURNING file_id",
        file_ids,
    )
    return dropped_in_request_order(file_ids, {r[0] for r in rows})


async def release_files(conn: Conn, file_refs: set[int], now_ms: int) -> int:
    """Stamp the files among `file_refs` that no index row points into any more (called in the
    transaction that dropped the rows); returns how many were stamped."""
    if not file_refs:
        return 0
    released = await conn.fetchval(
        "WITH r AS (UPDATE files AS f SET released_at = $1 WHERE id = ANY($2::bigint[])"
        " AND released_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id) RETURNING 1)"
        " SELECT count(*) FROM r",
        now_ms, sorted(file_refs),
    )
    return int(released)


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


async def compaction_candidates(
    conn: Conn, size_below: int, created_before_ms: int, limit: int
) -> list[CompactionFile]:
    rows = await conn.fetch(
        "SELECT file_id, key, size, level, created_at FROM files AS f"
        " WHERE size < $1 AND created_at < $2 AND released_at IS NULL"
        " AND EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " ORDER BY id LIMIT $3",
        size_below, created_before_ms, limit,
    )
    return [CompactionFile(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


async def file_rows(conn: Conn, file_ids: list[str]) -> list[FileRow]:
    rows = await conn.fetch(
        "SELECT f.file_id, b.topic, b.partition, b.base_offset, b.last_offset, b.byte_pos,"
        " b.byte_len FROM batches AS b JOIN files AS f ON f.id = b.file_ref"
        " WHERE f.file_id = ANY($1::text[]) ORDER BY b.topic, b.partition, b.base_offset",
        list(dict.fromkeys(file_ids)),
    )
    return [
        FileRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows
    ]


async def swap_files(
    conn: Conn, file: FileInfo | None, level: int, moves: list[RowMove], drops: list[FileRow],
    now_ms: int,
) -> SwapResult:
    new_ref = None if file is None else await _record_merged(conn, file, level, now_ms)
    old_ids = sorted({m.row.file_id for m in moves} | {r.file_id for r in drops})
    refs = {
        r[0]: int(r[1])
        for r in await conn.fetch(
            "SELECT file_id, id FROM files WHERE file_id = ANY($1::text[])", old_ids
        )
    }
    # One statement per kind, the rows as arrays: a merge moves thousands of rows.
    moved = await conn.fetchval(
        "WITH m AS (UPDATE batches AS b SET file_ref = $1, byte_pos = m.new_pos,"
        " byte_len = m.new_len FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[],"
        " $6::bigint[], $7::bigint[], $8::int[])"
        " AS m(topic, partition, base_offset, old_ref, old_pos, new_pos, new_len)"
        " WHERE b.topic = m.topic AND b.partition = m.partition"
        " AND b.base_offset = m.base_offset AND b.file_ref = m.old_ref"
        " AND b.byte_pos = m.old_pos RETURNING 1) SELECT count(*) FROM m",
        new_ref, *_columns(
            [(m.row, m.byte_pos, m.byte_len) for m in moves if m.row.file_id in refs], refs
        ),
    )
    dropped = await conn.fetchval(
        "WITH d AS (DELETE FROM batches AS b USING unnest($1::text[], $2::int[],"
        " $3::bigint[], $4::bigint[], $5::bigint[])"
        " AS d(topic, partition, base_offset, old_ref, old_pos)"
        " WHERE b.topic = d.topic AND b.partition = d.partition"
        " AND b.base_offset = d.base_offset AND b.file_ref = d.old_ref"
        " AND b.byte_pos = d.old_pos RETURNING 1) SELECT count(*) FROM d",
        *_columns([(r, 0, 0) for r in drops if r.file_id in refs], refs)[:5],
    )
    if new_ref is not None and not moved:
        # Nothing points into the new file: garbage from the start, as in sqlite_maintenance.
        await conn.execute("UPDATE files SET committed = false WHERE id = $1", new_ref)
    released = await release_files(conn, set(refs.values()), now_ms)
    return SwapResult(int(moved), int(dropped), released)


async def _record_merged(conn: Conn, file: FileInfo, level: int, now_ms: int) -> int:
    check_deadline(file, now_ms)
    try:
        ref = await conn.fetchval(
            "INSERT INTO files (file_id, key, size, created_at, committed, level)"
            " VALUES ($1, $2, $3, $4, true, $5) RETURNING id",
            file.file_id, file.key, file.size, now_ms, level,
        )
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise DuplicateFileError(f"file {file.file_id} is already recorded") from exc
    return int(ref)


def _columns(
    rows: list[tuple[FileRow, int, int]], refs: dict[str, int]
) -> tuple[list[str], list[int], list[int], list[int], list[int], list[int], list[int]]:
    """(row, new pos, new len) triples as the column arrays `unnest` takes."""
    return (
        [r.topic for r, _, _ in rows],
        [r.partition for r, _, _ in rows],
        [r.base_offset for r, _, _ in rows],
        [refs[r.file_id] for r, _, _ in rows],
        [r.byte_pos for r, _, _ in rows],
        [pos for _, pos, _ in rows],
        [length for _, _, length in rows],
    )
