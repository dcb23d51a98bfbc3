"""SQLite I/O of the commit transaction, on the store's worker thread (see `sqlite.py`).

Under `BEGIN IMMEDIATE` (the write lock, held from the first read) it loads the partition
cursors and producer entries of the batches, asks `commits.plan_commit`, and writes the file
record, index rows, cursors and producer state the plan gives. The PostgreSQL twin is
`postgres_commits`.
"""

from __future__ import annotations

import sqlite3
import uuid

from shoal.common.clock import Clock
from shoal.meta.commits import (
    PartitionKey,
    ProducerEntry,
    ProducerKey,
    check_deadline,
    index_row,
    plan_commit,
)
from shoal.meta.sqlite_txn import write_txn
from shoal.meta.store import BatchOutcome, DuplicateFileError, FileInfo, PendingBatch

_UPSERT_PRODUCER_STATE = """
INSERT INTO producer_state (topic, partition, producer_id, epoch, recent, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (topic, partition, producer_id)
DO UPDATE SET epoch = excluded.epoch, recent = excluded.recent, updated_at = excluded.updated_at
"""


def commit_files(
    conn: sqlite3.Connection, files: list[tuple[FileInfo, list[PendingBatch]]], clock: Clock
) -> list[list[BatchOutcome]]:
    with write_txn(conn):
        # Read once the write lock is held: the deadlines count any wait for it.
        now_ms = clock()
        for file, _ in files:
            check_deadline(file, now_ms)
        # In file order: a later file's plan reads the rows the earlier ones just wrote.
        return [_commit_one(conn, file, batches, now_ms) for file, batches in files]


def _commit_one(
    conn: sqlite3.Connection, file: FileInfo, batches: list[PendingBatch], now: int
) -> list[BatchOutcome]:
    partitions: dict[PartitionKey, tuple[int, int]] = {}
    for key in {(b.topic, b.partition) for b in batches}:
        row = conn.execute(
            "SELECT next_offset, log_start_offset FROM partitions"
            " WHERE topic = ? AND partition = ?",
            key,
        ).fetchone()
        if row is not None:
            partitions[key] = (int(row[0]), int(row[1]))
    producers: dict[ProducerKey, ProducerEntry] = {}
    for pid, topic, part in {
        (b.producer_id, b.topic, b.partition)
        for b in batches
        if b.producer_id >= 0 and (b.topic, b.partition) in partitions
    }:
        row = conn.execute(
            "SELECT epoch, recent FROM producer_state"
            " WHERE topic = ? AND partition = ? AND producer_id = ?",
            (topic, part, pid),
        ).fetchone()
        if row is not None:
            producers[(pid, topic, part)] = ProducerEntry.decode(int(row[0]), row[1])
    topic_ids: dict[str, uuid.UUID] = {}
    for topic in {b.topic for b in batches if b.topic_id is not None}:
        row = conn.execute("SELECT topic_id FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is not None:
            topic_ids[topic] = uuid.UUID(row[0])
    plan = plan_commit(batches, partitions, producers, topic_ids)
    try:
        file_ref = conn.execute(
            "INSERT INTO files (file_id, key, size, created_at, committed)"
            " VALUES (?, ?, ?, ?, ?)",
            (file.file_id, file.key, file.size, now, 1 if plan.rows else 0),
        ).lastrowid
    except sqlite3.IntegrityError as exc:
        raise DuplicateFileError(f"file {file.file_id} was already committed") from exc
    conn.executemany(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [index_row(b, base, file_ref) for b, base in plan.rows],
    )
    conn.executemany(
        "UPDATE partitions SET next_offset = ? WHERE topic = ? AND partition = ?",
        [(c.next_offset, t, p) for (t, p), c in plan.partitions.items() if c.advanced],
    )
    conn.executemany(
        _UPSERT_PRODUCER_STATE,
        [
            (topic, part, pid, e.epoch, e.encode_recent(), now)
            for (pid, topic, part), e in plan.producers.items()
        ],
    )
    return plan.outcomes
