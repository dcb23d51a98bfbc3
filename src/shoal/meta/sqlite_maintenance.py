"""SQLite I/O of the maintenance calls: garbage collection, retention, producer and offset
expiry.

Run on the store's worker thread with its connection (see `sqlite.py`); what they decide is in
`maintenance`. The PostgreSQL twin is `postgres_maintenance`.
"""

from __future__ import annotations

import sqlite3

from shoal.meta.maintenance import dropped_in_request_order, new_log_start
from shoal.meta.sqlite_txn import write_txn
from shoal.meta.store import FileInfo, PartitionState


def unreferenced_files(
    conn: sqlite3.Connection, created_before_ms: int, limit: int
) -> list[FileInfo]:
    rows = conn.execute(
        "SELECT file_id, key, size FROM files AS f WHERE created_at < ?"
        " AND coalesce(released_at, 0) < ?"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " ORDER BY id LIMIT ?",
        (created_before_ms, created_before_ms, limit),
    ).fetchall()
    return [FileInfo(r[0], r[1], int(r[2])) for r in rows]


def forget_files(conn: sqlite3.Connection, file_ids: list[str]) -> list[str]:
    dropped: set[str] = set()
    with write_txn(conn):
        for file_id in dict.fromkeys(file_ids):
            cur = conn.execute(
                "DELETE FROM files AS f WHERE file_id = ?"
                " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)",
                (file_id,),
            )
            if cur.rowcount:
                dropped.add(file_id)
    return dropped_in_request_order(file_ids, dropped)


def release_files(conn: sqlite3.Connection, file_refs: set[int], now_ms: int) -> None:
    """Stamp the files among `file_refs` that no index row points into any more (called in the
    transaction that dropped the rows)."""
    conn.executemany(
        "UPDATE files AS f SET released_at = ? WHERE id = ?"
        " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)",
        [(now_ms, ref) for ref in sorted(file_refs)],
    )


def advance_log_start(
    conn: sqlite3.Connection, topic: str, partition: int, offset: int, now_ms: int
) -> PartitionState | None:
    with write_txn(conn):
        row = conn.execute(
            "SELECT log_start_offset, next_offset FROM partitions"
            " WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        if row is None:
            return None
        start = new_log_start(int(row[0]), int(row[1]), offset)
        conn.execute(
            "UPDATE partitions SET log_start_offset = ? WHERE topic = ? AND partition = ?",
            (start, topic, partition),
        )
        # Rows are dense and ordered, so "last_offset < start" is a prefix of the key range.
        dropped = conn.execute(
            "DELETE FROM batches WHERE topic = ? AND partition = ? AND base_offset < ?"
            " AND last_offset < ? RETURNING file_ref",
            (topic, partition, start, start),
        ).fetchall()
        release_files(conn, {int(r[0]) for r in dropped}, now_ms)
    return PartitionState(start, int(row[1]))


def expire_producers(conn: sqlite3.Connection, idle_before_ms: int) -> int:
    with write_txn(conn):
        states = conn.execute(
            "DELETE FROM producer_state WHERE updated_at < ?", (idle_before_ms,)
        ).rowcount
        ids = conn.execute(
            "DELETE FROM producers WHERE transactional_id IS NULL AND updated_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM producer_state AS s"
            " WHERE s.producer_id = producers.producer_id)",
            (idle_before_ms,),
        ).rowcount
    return int(states) + int(ids)


def expire_offsets(conn: sqlite3.Connection, expired_before_ms: int) -> tuple[int, int]:
    """Kafka's offsets.retention.minutes: every committed offset of a group stored Empty since
    before the cutoff, and each offset of a group that never joined (commits only) committed
    before it, go; then the Empty groups left without offsets. (offsets, groups) removed."""
    with write_txn(conn):
        offsets = conn.execute(
            "DELETE FROM group_offsets WHERE group_id IN (SELECT group_id FROM consumer_groups"
            " WHERE state = 'Empty' AND updated_at < ?)"
            " OR (commit_time < ? AND group_id NOT IN (SELECT group_id FROM consumer_groups))",
            (expired_before_ms, expired_before_ms),
        ).rowcount
        groups = conn.execute(
            "DELETE FROM consumer_groups WHERE state = 'Empty' AND updated_at < ?"
            " AND group_id NOT IN (SELECT group_id FROM group_offsets)",
            (expired_before_ms,),
        ).rowcount
    return int(offsets), int(groups)
