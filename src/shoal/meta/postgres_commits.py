"""PostgreSQL I/O of the commit transaction: the body `postgres.py` runs for `commit_files`.

It locks the partition rows it writes with `SELECT ... ORDER BY topic, partition FOR UPDATE`
(sorted, so two commits can never deadlock), reads the producer state only after holding those
locks (READ COMMITTED: a later statement sees what the previous lock holder committed), plans
with `commits.plan_commit`, and writes file, index rows, cursors, producer state and the NOTIFY
in one statement of data-modifying CTEs over `unnest` arrays. The SQLite twin is
`sqlite_commits`.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from shoal.common.clock import Clock
from shoal.meta.commits import (
    PartitionKey,
    ProducerEntry,
    ProducerKey,
    check_deadline,
    plan_commit,
)
from shoal.meta.pg_listen import CHANNEL, encode_payloads
from shoal.meta.postgres_index import KEYS, split_keys
from shoal.meta.store import BatchOutcome, DuplicateFileError, FileInfo, PendingBatch

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

# With each partition its topic's id, so a batch validated against a topic since deleted and
# re-created is refused; only the partition rows are locked.
_LOCK_PARTITIONS = f"""
SELECT p.topic, p.partition, p.next_offset, p.log_start_offset, t.topic_id
FROM partitions AS p JOIN topics AS t ON t.name = p.topic
WHERE (p.topic, p.partition) IN ({KEYS})
ORDER BY p.topic, p.partition FOR UPDATE OF p
"""
_PRODUCER_STATE = """
SELECT s.topic, s.partition, s.producer_id, s.epoch, s.recent FROM producer_state AS s
JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, pid)
  ON s.topic = u.t AND s.partition = u.p AND s.producer_id = u.pid
"""
# One statement, one round trip: every write of a commit plus its notifications.
_WRITE_COMMIT = f"""
WITH f AS (
  INSERT INTO files (file_id, key, size, created_at, committed)
  VALUES ($1, $2, $3, $4, $5) RETURNING id
), b AS (
  INSERT INTO batches (topic, partition, base_offset, last_offset, file_ref, byte_pos, byte_len,
                       record_count, max_timestamp, producer_id, producer_epoch, base_sequence)
  SELECT u.t, u.p, u.b, u.b + u.rc - 1, (SELECT id FROM f), u.bp, u.bl, u.rc, u.mt,
         u.pid, u.pe, u.bs
  FROM unnest($6::text[], $7::int[], $8::bigint[], $9::bigint[], $10::int[], $11::int[],
              $12::bigint[], $13::bigint[], $14::int[], $15::int[])
       AS u(t, p, b, bp, bl, rc, mt, pid, pe, bs)
), c AS (
  UPDATE partitions AS x SET next_offset = u.n
  FROM unnest($16::text[], $17::int[], $18::bigint[]) AS u(t, p, n)
  WHERE x.topic = u.t AND x.partition = u.p
), s AS (
  INSERT INTO producer_state (topic, partition, producer_id, epoch, recent, updated_at)
  SELECT u.t, u.p, u.pid, u.e, u.r, $4
  FROM unnest($19::text[], $20::int[], $21::bigint[], $22::int[], $23::bytea[])
       AS u(t, p, pid, e, r)
  ON CONFLICT (topic, partition, producer_id) DO UPDATE
  SET epoch = excluded.epoch, recent = excluded.recent, updated_at = excluded.updated_at
)
SELECT (SELECT id FROM f),
       (SELECT count(pg_notify('{CHANNEL}', n)) FROM unnest($24::text[]) AS n)
"""

async def commit_files(
    conn: Conn, files: list[tuple[FileInfo, list[PendingBatch]]], notify: bool, clock: Clock
) -> list[list[BatchOutcome]]:
    if len(files) > 1:
        # Every partition of the group locked at once, in sorted order like a single commit:
        # locking file by file could take them out of order and deadlock with another agent.
        keys = {(b.topic, b.partition) for _, batches in files for b in batches}
        if keys:
            await conn.fetch(_LOCK_PARTITIONS, *split_keys(keys))
    return [await _commit_one(conn, file, batches, notify, clock) for file, batches in files]


async def _commit_one(
    conn: Conn, file: FileInfo, batches: list[PendingBatch], notify: bool, clock: Clock
) -> list[BatchOutcome]:
    partitions: dict[PartitionKey, tuple[int, int]] = {}
    topic_ids: dict[str, uuid.UUID] = {}
    keys = {(b.topic, b.partition) for b in batches}
    if keys:
        # Locked already in a group; the re-read still gives the offsets as of earlier files.
        for r in await conn.fetch(_LOCK_PARTITIONS, *split_keys(keys)):
            partitions[(r[0], int(r[1]))] = (int(r[2]), int(r[3]))
            topic_ids[r[0]] = uuid.UUID(bytes=r[4].bytes)
    # Read once the locks are held: the deadline counts any wait for them.
    now = clock()
    check_deadline(file, now)
    producers: dict[ProducerKey, ProducerEntry] = {}
    wanted = {
        (b.topic, b.partition, b.producer_id)
        for b in batches
        if b.producer_id >= 0 and (b.topic, b.partition) in partitions
    }
    if wanted:
        # After the locks: every earlier commit to these partitions is visible now.
        rows = await conn.fetch(
            _PRODUCER_STATE,
            [w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted],
        )
        for r in rows:
            producers[(int(r[2]), r[0], int(r[1]))] = ProducerEntry.decode(int(r[3]), r[4])
    plan = plan_commit(batches, partitions, producers, topic_ids)
    rows_ = plan.rows
    advanced = [(k, c.next_offset) for k, c in plan.partitions.items() if c.advanced]
    changed = list(plan.producers.items())
    payloads = encode_payloads([(t, p, n) for (t, p), n in advanced]) if notify else []
    try:
        await conn.fetchrow(
            _WRITE_COMMIT,
            file.file_id, file.key, file.size, now, bool(rows_),
            [b.topic for b, _ in rows_], [b.partition for b, _ in rows_],
            [base for _, base in rows_], [b.byte_pos for b, _ in rows_],
            [b.byte_len for b, _ in rows_], [b.record_count for b, _ in rows_],
            [b.max_timestamp for b, _ in rows_], [b.producer_id for b, _ in rows_],
            [b.producer_epoch for b, _ in rows_], [b.base_sequence for b, _ in rows_],
            [k[0] for k, _ in advanced], [k[1] for k, _ in advanced], [n for _, n in advanced],
            [k[1] for k, _ in changed], [k[2] for k, _ in changed], [k[0] for k, _ in changed],
            [e.epoch for _, e in changed], [e.encode_recent() for _, e in changed],
            payloads,
        )
    except asyncpg.exceptions.UniqueViolationError as exc:
        if exc.constraint_name == "files_file_id_key":
            raise DuplicateFileError(f"file {file.file_id} was already committed") from exc
        raise
    return plan.outcomes
