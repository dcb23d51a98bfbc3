"""SQLite reads of partition state and the index, on the store's worker thread (see
`sqlite.py`). The PostgreSQL twin is `postgres_index`."""

from __future__ import annotations

import sqlite3
import uuid

from shoal.meta.store import BatchRow, OffsetAtTime, PartitionState

_READ_SQL = """
SELECT b.base_offset, b.last_offset, f.key, f.size, b.byte_pos, b.byte_len, b.record_count,
       b.max_timestamp
FROM batches AS b JOIN files AS f ON f.id = b.file_ref
WHERE b.topic = ?1 AND b.partition = ?2 AND b.last_offset >= ?3
  AND b.base_offset >= coalesce(
      (SELECT max(base_offset) FROM batches
       WHERE topic = ?1 AND partition = ?2 AND base_offset <= ?3), ?3)
ORDER BY b.base_offset
LIMIT ?4
"""


def partition_states(
    conn: sqlite3.Connection, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], PartitionState]:
    out: dict[tuple[str, int], PartitionState] = {}
    # One read transaction: every answer comes from the same snapshot.
    conn.execute("BEGIN")
    try:
        for key in keys:
            row = conn.execute(
                "SELECT p.log_start_offset, p.next_offset, t.topic_id"
                " FROM partitions AS p JOIN topics AS t ON t.name = p.topic"
                " WHERE p.topic = ? AND p.partition = ?",
                key,
            ).fetchone()
            if row is not None:
                out[key] = PartitionState(int(row[0]), int(row[1]), uuid.UUID(row[2]))
    finally:
        conn.execute("COMMIT")
    return out


def read_batches(
    conn: sqlite3.Connection,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int,
    max_batches: int,
) -> list[BatchRow]:
    out: list[BatchRow] = []
    total = 0
    for row in conn.execute(_READ_SQL, (topic, partition, offset, max_batches)):
        out.append(BatchRow(*row))
        total += row[5]
        if total >= max_bytes:
            break
    return out


def offset_for_timestamp(
    conn: sqlite3.Connection, topic: str, partition: int, timestamp: int
) -> OffsetAtTime | None:
    # Walks the partition in offset order: timestamps are nearly monotonic in practice, so the
    # first match is usually close to where the walk starts for old targets.
    row = conn.execute(
        "SELECT base_offset, max_timestamp FROM batches"
        " WHERE topic = ? AND partition = ? AND max_timestamp >= ?"
        " ORDER BY base_offset LIMIT 1",
        (topic, partition, timestamp),
    ).fetchone()
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))


# One walk of the partition's rows, newest first, summing their lengths (a window sum).
_KEEPING_BYTES_SQL = (
    "SELECT MAX(base_offset) FROM (SELECT base_offset,"
    " SUM(byte_len) OVER (ORDER BY base_offset DESC) AS tail_bytes"
    " FROM batches WHERE topic = ? AND partition = ?) WHERE tail_bytes >= ?"
)


def offset_keeping_bytes(
    conn: sqlite3.Connection, topic: str, partition: int, retained_bytes: int
) -> int | None:
    row = conn.execute(_KEEPING_BYTES_SQL, (topic, partition, retained_bytes)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def max_timestamp_offset(
    conn: sqlite3.Connection, topic: str, partition: int
) -> OffsetAtTime | None:
    row = conn.execute(
        "SELECT base_offset, max_timestamp FROM batches WHERE topic = ? AND partition = ?"
        " ORDER BY max_timestamp DESC, base_offset ASC LIMIT 1",
        (topic, partition),
    ).fetchone()
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))
