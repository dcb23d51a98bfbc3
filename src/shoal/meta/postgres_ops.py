"""Transaction bodies of the PostgreSQL metadata store (see `postgres` for the connection
handling around them). Each function gets a connection that is already inside the transaction
(or, for reads, a single statement's snapshot); it never commits or catches errors itself.
"""

from __future__ import annotations

import importlib.resources
import json
import time
import uuid
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from shoal.meta.pg_listen import CHANNEL, encode_payloads
from shoal.meta.postgres_groups import delete_topic_offsets
from shoal.meta.sql_common import (
    EPOCH_MAX,
    PartitionKey,
    ProducerEntry,
    ProducerKey,
    parse_migrations,
    plan_commit,
)
from shoal.meta.store import (
    BatchOutcome,
    BatchRow,
    DuplicateFileError,
    FileInfo,
    InvalidPartitionsError,
    MetadataError,
    OffsetAtTime,
    PartitionState,
    PendingBatch,
    ProducerFencedError,
    TopicExistsError,
    TopicInfo,
    UnknownTopicError,
)

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

MIGRATIONS: Final = parse_migrations(
    importlib.resources.files("shoal.meta").joinpath("schema_pg.sql").read_text(encoding="utf-8")
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
# pg_advisory_xact_lock key for migrations: "shoal" in ASCII, any constant would do.
_MIGRATION_LOCK: Final = 0x73686F616C

_TOPIC_COLUMNS = "name, topic_id, partitions, configs"
_KEYS = "SELECT t, p FROM unnest($1::text[], $2::int[]) AS u(t, p)"
_LOCK_PARTITIONS = f"""
SELECT topic, partition, next_offset, log_start_offset FROM partitions
WHERE (topic, partition) IN ({_KEYS})
ORDER BY topic, partition FOR UPDATE
"""
_PARTITION_STATES = f"""
SELECT topic, partition, log_start_offset, next_offset FROM partitions
WHERE (topic, partition) IN ({_KEYS})
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _topic(row: Any) -> TopicInfo:
    return TopicInfo(row[0], uuid.UUID(bytes=row[1].bytes), int(row[2]), json.loads(row[3]))


def _encode_configs(configs: dict[str, str]) -> str:
    return json.dumps(configs, sort_keys=True, separators=(",", ":"))


async def migrate(conn: Conn) -> None:
    # Transaction-scoped: released by COMMIT/ROLLBACK, so a dying agent cannot keep it.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
    )
    current = await schema_version(conn)
    if current > SCHEMA_VERSION:
        raise MetadataError(
            f"database schema version {current} is newer than this shoal ({SCHEMA_VERSION})"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_version VALUES ($1, $2)", version, _now_ms())


async def schema_version(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


async def get_topic(
    conn: Conn, column: str, value: object, lock: bool = False
) -> TopicInfo | None:
    # `column` is one of two literals chosen by this module, never user input.
    row = await conn.fetchrow(
        f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE {column} = $1"
        + (" FOR UPDATE" if lock else ""),
        value,
    )
    return None if row is None else _topic(row)


async def _lock_topic(conn: Conn, name: str) -> TopicInfo:
    info = await get_topic(conn, "name", name, lock=True)
    if info is None:
        raise UnknownTopicError(name)
    return info


async def list_topics(conn: Conn) -> list[TopicInfo]:
    rows = await conn.fetch(f"SELECT {_TOPIC_COLUMNS} FROM topics ORDER BY name")
    return [_topic(r) for r in rows]


async def create_topic(
    conn: Conn, name: str, partitions: int, configs: dict[str, str]
) -> TopicInfo:
    topic_id = uuid.uuid4()
    created = await conn.fetchval(
        "INSERT INTO topics (name, topic_id, partitions, configs, created_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING 1",
        name, topic_id, partitions, _encode_configs(configs), _now_ms(),
    )
    if created is None:
        raise TopicExistsError(name)
    await conn.execute(
        "INSERT INTO partitions (topic, partition) SELECT $1, generate_series(0, $2 - 1)",
        name, partitions,
    )
    return TopicInfo(name, topic_id, partitions, dict(configs))


async def delete_topic(conn: Conn, name: str) -> None:
    await _lock_topic(conn, name)
    # Same lock order as commit_file (sorted partitions first), so the two cannot deadlock.
    await conn.execute(
        "SELECT 1 FROM partitions WHERE topic = $1 ORDER BY topic, partition FOR UPDATE", name
    )
    # Files stay: garbage collection removes them once no row points into them.
    for table in ("batches", "producer_state", "partitions"):
        await conn.execute(f"DELETE FROM {table} WHERE topic = $1", name)
    await delete_topic_offsets(conn, name)
    await conn.execute("DELETE FROM topics WHERE name = $1", name)


async def create_partitions(conn: Conn, name: str, total: int) -> TopicInfo:
    info = await _lock_topic(conn, name)
    if total <= info.partitions:
        raise InvalidPartitionsError(
            f"topic {name} has {info.partitions} partitions; cannot grow to {total}"
        )
    await conn.execute(
        "INSERT INTO partitions (topic, partition) SELECT $1, generate_series($2, $3 - 1)",
        name, info.partitions, total,
    )
    await conn.execute("UPDATE topics SET partitions = $1 WHERE name = $2", total, name)
    return TopicInfo(info.name, info.topic_id, total, info.configs)


async def alter_configs(
    conn: Conn, name: str, configs: dict[str, str | None], replace: bool
) -> TopicInfo:
    info = await _lock_topic(conn, name)
    merged: dict[str, str] = {} if replace else dict(info.configs)
    for key, value in configs.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    await conn.execute(
        "UPDATE topics SET configs = $1 WHERE name = $2", _encode_configs(merged), name
    )
    return TopicInfo(info.name, info.topic_id, info.partitions, merged)


def _split_keys(keys: list[tuple[str, int]] | set[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [k[0] for k in keys], [k[1] for k in keys]


async def partition_states(
    conn: Conn, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], PartitionState]:
    rows = await conn.fetch(_PARTITION_STATES, *_split_keys(keys))
    return {(r[0], int(r[1])): PartitionState(int(r[2]), int(r[3])) for r in rows}


async def commit_files(
    conn: Conn, files: list[tuple[FileInfo, list[PendingBatch]]], notify: bool
) -> list[list[BatchOutcome]]:
    now = _now_ms()
    if len(files) > 1:
        # Every partition of the group locked at once, in sorted order like a single commit:
        # locking file by file could take them out of order and deadlock with another agent.
        keys = {(b.topic, b.partition) for _, batches in files for b in batches}
        if keys:
            await conn.fetch(_LOCK_PARTITIONS, *_split_keys(keys))
    return [await _commit_one(conn, file, batches, notify, now) for file, batches in files]


async def _commit_one(
    conn: Conn, file: FileInfo, batches: list[PendingBatch], notify: bool, now: int
) -> list[BatchOutcome]:
    partitions: dict[PartitionKey, tuple[int, int]] = {}
    keys = {(b.topic, b.partition) for b in batches}
    if keys:
        # Locked already in a group; the re-read still gives the offsets as of earlier files.
        for r in await conn.fetch(_LOCK_PARTITIONS, *_split_keys(keys)):
            partitions[(r[0], int(r[1]))] = (int(r[2]), int(r[3]))
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
    plan = plan_commit(batches, partitions, producers)
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


async def max_timestamp_offset(conn: Conn, topic: str, partition: int) -> OffsetAtTime | None:
    row = await conn.fetchrow(
        "SELECT base_offset, max_timestamp FROM batches WHERE topic = $1 AND partition = $2"
        " ORDER BY max_timestamp DESC, base_offset ASC LIMIT 1",
        topic, partition,
    )
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))


async def unreferenced_files(conn: Conn, created_before_ms: int, limit: int) -> list[FileInfo]:
    rows = await conn.fetch(
        "SELECT file_id, key, size FROM files AS f WHERE created_at < $1"
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
    dropped = {r[0] for r in rows}
    return [f for f in dict.fromkeys(file_ids) if f in dropped]


async def advance_log_start(
    conn: Conn, topic: str, partition: int, offset: int
) -> PartitionState | None:
    row = await conn.fetchrow(
        "SELECT log_start_offset, next_offset FROM partitions"
        " WHERE topic = $1 AND partition = $2 FOR UPDATE",
        topic, partition,
    )
    if row is None:
        return None
    start = max(int(row[0]), min(offset, int(row[1])))
    await conn.execute(
        "UPDATE partitions SET log_start_offset = $3 WHERE topic = $1 AND partition = $2",
        topic, partition, start,
    )
    # Rows are dense and ordered, so "last_offset < start" is a prefix of the key range.
    await conn.execute(
        "DELETE FROM batches WHERE topic = $1 AND partition = $2 AND base_offset < $3"
        " AND last_offset < $3",
        topic, partition, start,
    )
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


async def init_producer(
    conn: Conn, transactional_id: str | None, producer_id: int, producer_epoch: int
) -> tuple[int, int]:
    """Kafka's InitProducerId decisions, exactly as `sqlite._init_producer` documents them.
    Rows are locked FOR UPDATE so two agents bumping one id serialise."""
    now = _now_ms()
    if transactional_id is None:
        if producer_id >= 0:
            epoch = await conn.fetchval(
                "SELECT epoch FROM producers"
                " WHERE producer_id = $1 AND transactional_id IS NULL FOR UPDATE",
                producer_id,
            )
            if epoch is not None and int(epoch) == producer_epoch:
                return await _bump(conn, producer_id, producer_epoch, None, now)
        return await _new_producer(conn, None, now)
    while True:
        row = await conn.fetchrow(
            "SELECT producer_id, epoch FROM producers WHERE transactional_id = $1 FOR UPDATE",
            transactional_id,
        )
        if row is None:
            # Two agents may race to map a new transactional id: one insert wins, the other
            # sees nothing inserted and goes round to bump the winner's epoch.
            new_id = await conn.fetchval(
                "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
                " VALUES ($1, 0, $2, $2) ON CONFLICT (transactional_id) DO NOTHING"
                " RETURNING producer_id",
                transactional_id, now,
            )
            if new_id is not None:
                return int(new_id), 0
            continue
        current_id, current_epoch = int(row[0]), int(row[1])
        if producer_id >= 0 and (producer_id, producer_epoch) != (current_id, current_epoch):
            raise ProducerFencedError(
                f"transactional id {transactional_id!r} is at producer {current_id} epoch"
                f" {current_epoch}, not {producer_id}/{producer_epoch}"
            )
        return await _bump(conn, current_id, current_epoch, transactional_id, now)


async def _new_producer(conn: Conn, transactional_id: str | None, now: int) -> tuple[int, int]:
    new_id = await conn.fetchval(
        "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
        " VALUES ($1, 0, $2, $2) RETURNING producer_id",
        transactional_id, now,
    )
    return int(new_id), 0


async def _bump(
    conn: Conn, producer_id: int, epoch: int, transactional_id: str | None, now: int
) -> tuple[int, int]:
    if epoch >= EPOCH_MAX:
        # Release the transactional id from the exhausted producer id before re-mapping it.
        await conn.execute(
            "UPDATE producers SET transactional_id = NULL, updated_at = $1"
            " WHERE producer_id = $2",
            now, producer_id,
        )
        return await _new_producer(conn, transactional_id, now)
    await conn.execute(
        "UPDATE producers SET epoch = $1, updated_at = $2 WHERE producer_id = $3",
        epoch + 1, now, producer_id,
    )
    return producer_id, epoch + 1
