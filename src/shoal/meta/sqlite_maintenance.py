"""SQLite I/O of the maintenance calls: garbage collection, retention, file compaction,
producer and offset expiry.

Run on the store's worker thread with its connection (see `sqlite.py`); what they decide is in
`maintenance`. The PostgreSQL twin is `postgres_maintenance`.
"""

from __future__ import annotations

import sqlite3

from shoal.meta.commits import check_deadline
from shoal.meta.maintenance import dropped_in_request_order, new_log_start, oldest_first
from shoal.meta.sqlite_txn import write_txn
from shoal.meta.store import (
    CompactionFile,
    DuplicateFileError,
    FileInfo,
    FileRow,
    PartitionState,
    RowMove,
    SwapResult,
)

# The two kinds of unreferenced file, each from its partial index (migration 7), so a cycle
# reads what is garbage and not every file: released files (their last row dropped) and files
# never committed (GC claims, files whose every batch was refused, merges that moved nothing).
UNREFERENCED_SQL = """
SELECT id, file_id, key, size FROM (SELECT id, file_id, key, size FROM files AS f
  WHERE released_at IS NOT NULL AND released_at < ?1 AND created_at < ?1
  AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)
  ORDER BY released_at LIMIT ?2)
UNION ALL
SELECT id, file_id, key, size FROM (SELECT id, file_id, key, size FROM files AS f
  WHERE committed = 0 AND released_at IS NULL AND created_at < ?1
  AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)
  ORDER BY created_at LIMIT ?2)
"""


def unreferenced_files(
    conn: sqlite3.Connection, created_before_ms: int, limit: int
) -> list[FileInfo]:
    rows = conn.execute(UNREFERENCED_SQL, (created_before_ms, limit)).fetchall()
    return [FileInfo(r[1], r[2], int(r[3])) for r in oldest_first(rows, limit)]


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


def release_files(conn: sqlite3.Connection, file_refs: set[int], now_ms: int) -> int:
    """Stamp the files among `file_refs` that no index row points into any more (called in the
    transaction that dropped the rows); returns how many were stamped."""
    released = 0
    for ref in sorted(file_refs):
        released += conn.execute(
            "UPDATE files AS f SET released_at = ? WHERE id = ? AND released_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)",
            (now_ms, ref),
        ).rowcount
    return released


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


def compaction_candidates(
    conn: sqlite3.Connection, size_below: int, created_before_ms: int, limit: int
) -> list[CompactionFile]:
    rows = conn.execute(
        "SELECT file_id, key, size, level, created_at FROM files AS f"
        " WHERE size < ? AND created_at < ? AND released_at IS NULL"
        " AND EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = f.id)"
        " ORDER BY id LIMIT ?",
        (size_below, created_before_ms, limit),
    ).fetchall()
    return [CompactionFile(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


def file_rows(conn: sqlite3.Connection, file_ids: list[str]) -> list[FileRow]:
    out: list[FileRow] = []
    conn.execute("BEGIN")  # one snapshot for every file
    try:
        for file_id in dict.fromkeys(file_ids):
            out.extend(
                FileRow(file_id, r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in conn.execute(
                    "SELECT b.topic, b.partition, b.base_offset, b.last_offset, b.byte_pos,"
                    " b.byte_len FROM batches AS b JOIN files AS f ON f.id = b.file_ref"
                    " WHERE f.file_id = ?",
                    (file_id,),
                )
            )
    finally:
        conn.execute("COMMIT")
    out.sort(key=lambda r: (r.topic, r.partition, r.base_offset))
    return out


_ROW_AT = "topic = ? AND partition = ? AND base_offset = ? AND file_ref = ? AND byte_pos = ?"


def swap_files(
    conn: sqlite3.Connection,
    file: FileInfo | None,
    level: int,
    moves: list[RowMove],
    drops: list[FileRow],
    now_ms: int,
) -> SwapResult:
    with write_txn(conn):
        new_ref = None if file is None else _record_merged(conn, file, level, now_ms)
        old_ids = {m.row.file_id for m in moves} | {r.file_id for r in drops}
        refs: dict[str, int] = {}
        for file_id in old_ids:
            row = conn.execute("SELECT id FROM files WHERE file_id = ?", (file_id,)).fetchone()
            if row is not None:
                refs[file_id] = int(row[0])
        moved = dropped = 0
        for move in moves:
            ref = refs.get(move.row.file_id)
            if ref is None:
                continue
            r = move.row
            moved += conn.execute(
                f"UPDATE batches SET file_ref = ?, byte_pos = ?, byte_len = ? WHERE {_ROW_AT}",
                (new_ref, move.byte_pos, move.byte_len, r.topic, r.partition, r.base_offset,
                 ref, r.byte_pos),
            ).rowcount
        for r in drops:
            ref = refs.get(r.file_id)
            if ref is None:
                continue
            dropped += conn.execute(
                f"DELETE FROM batches WHERE {_ROW_AT}",
                (r.topic, r.partition, r.base_offset, ref, r.byte_pos),
            ).rowcount
        if new_ref is not None and not moved:
            # Nothing points into the new file: it is garbage from the start (the GC deletes
            # it one grace after now, as any unreferenced file).
            conn.execute("UPDATE files SET committed = 0 WHERE id = ?", (new_ref,))
        released = release_files(conn, set(refs.values()), now_ms)
    return SwapResult(moved, dropped, released)


def _record_merged(conn: sqlite3.Connection, file: FileInfo, level: int, now_ms: int) -> int:
    check_deadline(file, now_ms)
    try:
        ref = conn.execute(
            "INSERT INTO files (file_id, key, size, created_at, committed, level)"
            " VALUES (?, ?, ?, ?, 1, ?)",
            (file.file_id, file.key, file.size, now_ms, level),
        ).lastrowid
    except sqlite3.IntegrityError as exc:
        raise DuplicateFileError(f"file {file.file_id} is already recorded") from exc
    assert ref is not None
    return ref
