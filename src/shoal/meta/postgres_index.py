"""PostgreSQL reads of partition state and the index: statements run by `postgres.py`, each
its own snapshot. The SQLite twin is `sqlite_index`."""

from __future__ import annotations

import uuid
from typing import Any

from shoal.meta.store import BatchRow, OffsetAtTime, PartitionState

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

# (topic, partition) keys bound as two arrays.
KEYS = "SELECT t, p FROM unnest($1::text[], $2::int[]) AS u(t, p)"
_PARTITION_STATES = f"""
SELECT p.topic, p.partition, p.log_start_offset, p.next_offset, t.topic_id
FROM partitions AS p JOIN topics AS t ON t.name = p.topic
WHERE (p.topic, p.partition) IN ({KEYS})
"""
# Rows from the one holding `offset` on, cut where the running byte total reaches max_bytes
# (the first row always comes back), so a small max_bytes transfers only what is needed.
_READ_BATCHES = """
SELECT base_offset, last_offset, key, size, byte_pos, byte_len, record_count, max_timestamp
FROM (
  SELECT b.base_offset, b.last_offset, f.key, f.size, b.byte_pos, b.byte_len, b.record_count,
         b.max_timestamp,
         sum(b.byte_len) OVER w - b.byte_len AS before, row_number() OVER w AS n
  FROM batches AS b JOIN files AS f ON f.id = b.file_ref
  WHERE b.topic = $1 AND b.partition = $2 AND b.last_offset >= $3
    AND b.base_offset >= coalesce(
      (SELECT max(base_offset) FROM batches
       WHERE topic = $1 AND partition = $2 AND base_offset <= $3), $3)
  WINDOW w AS (ORDER BY b.base_offset)
  ORDER BY b.base_offset
  LIMIT $4
) AS r
WHERE n = 1 OR before < $5
ORDER BY base_offset
"""


def split_keys(keys: list[tuple[str, int]] | set[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [k[0] for k in keys], [k[1] for k in keys]


async def partition_states(
    conn: Conn, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], PartitionState]:
    rows = await conn.fetch(_PARTITION_STATES, *split_keys(keys))
    return {
        (r[0], int(r[1])): PartitionState(int(r[2]), int(r[3]), uuid.UUID(bytes=r[4].bytes))
        for r in rows
    }


async def read_batches(
    conn: Conn, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int
) -> list[BatchRow]:
    rows = await conn.fetch(_READ_BATCHES, topic, partition, offset, max_batches, max_bytes)
    return [BatchRow(*r) for r in rows]


async def offset_for_timestamp(
    conn: Conn, topic: str, partition: int, timestamp: int
) -> OffsetAtTime | None:
    row = await conn.fetchrow(
        "SELECT base_offset, max_timestamp FROM batches"
        " WHERE topic = $1 AND partition = $2 AND max_timestamp >= $3"
        " ORDER BY base_offset LIMIT 1",
        topic, partition, timestamp,
    )
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))


async def offset_keeping_bytes(
    conn: Conn, topic: str, partition: int, retained_bytes: int
) -> int | None:
    value = await conn.fetchval(
        "SELECT MAX(base_offset) FROM (SELECT base_offset,"
        " SUM(byte_len) OVER (ORDER BY base_offset DESC) AS tail_bytes"
        " FROM batches WHERE topic = $1 AND partition = $2) AS t WHERE tail_bytes >= $3",
        topic, partition, retained_bytes,
    )
    return None if value is None else int(value)


async def max_timestamp_offset(conn: Conn, topic: str, partition: int) -> OffsetAtTime | None:
    row = await conn.fetchrow(
        "SELECT base_offset, max_timestamp FROM batches WHERE topic = $1 AND partition = $2"
        " ORDER BY max_timestamp DESC, base_offset ASC LIMIT 1",
        topic, partition,
    )
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))
