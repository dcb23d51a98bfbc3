"""The SQLite metadata store: embedded deployments and single-host clusters.

All sqlite3 work runs in one dedicated worker thread per store (sqlite3 blocks; one thread keeps
one connection and serialises this process's statements). Several processes may open the same
file: WAL lets readers run beside the one writer, `BEGIN IMMEDIATE` takes the write lock up front
so that a read-then-write transaction can never be overtaken, and `busy_timeout` bounds the wait.
`synchronous=FULL` fsyncs the WAL on every commit: "acked means durable" needs it (NORMAL may
lose the last commits on power loss).

Errors: sqlite3 failures (including a lock wait past busy_timeout) surface as MetadataError.
A cancelled caller does not cancel the statement already running in the worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from shoal.meta.sql_common import (
    PartitionKey,
    ProducerEntry,
    ProducerKey,
    index_row,
    parse_migrations,
    plan_commit,
)
from shoal.meta.sqlite_agents import SqliteAgentStoreMixin
from shoal.meta.sqlite_groups import SqliteGroupStoreMixin, delete_topic_offsets
from shoal.meta.sqlite_maintenance import (
    _advance_log_start,
    _expire_producers,
    _forget_files,
    _unreferenced_files,
)
from shoal.meta.sqlite_producers import _init_producer
from shoal.meta.sqlite_txn import now_ms as _now_ms
from shoal.meta.sqlite_txn import write_txn as _write_txn
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
    TopicExistsError,
    TopicInfo,
    UnknownTopicError,
)

T = TypeVar("T")

MIGRATIONS: Final = parse_migrations(
    importlib.resources.files("shoal.meta").joinpath("schema.sql").read_text(encoding="utf-8")
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

_TOPIC_COLUMNS = "name, topic_id, partitions, configs"
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
_UPSERT_PRODUCER_STATE = """
INSERT INTO producer_state (topic, partition, producer_id, epoch, recent, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (topic, partition, producer_id)
DO UPDATE SET epoch = excluded.epoch, recent = excluded.recent, updated_at = excluded.updated_at
"""


def _topic(row: tuple[Any, ...]) -> TopicInfo:
    return TopicInfo(row[0], uuid.UUID(row[1]), int(row[2]), json.loads(row[3]))


def _encode_configs(configs: dict[str, str]) -> str:
    return json.dumps(configs, sort_keys=True, separators=(",", ":"))


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL. Changing the journal mode needs an exclusive lock and SQLite does not
    run the busy handler for it, so several processes opening a new file at once would get
    "database is locked" at once: retry until the busy timeout instead."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


class SqliteMetadataStore(SqliteGroupStoreMixin, SqliteAgentStoreMixin):
    """`MetadataStore`, `GroupStore` and `AgentStore` on one SQLite file (":memory:" in tests)."""

    def __init__(
        self, path: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing ----------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise MetadataError("metadata store is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._guard, fn, *args))

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None:
            raise MetadataError("metadata store is closed")
        try:
            return fn(self._conn, *args)
        except sqlite3.Error as exc:
            raise MetadataError(f"sqlite: {exc}") from exc

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-sqlite")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise MetadataError(f"cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            _enable_wal(conn, self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
            _migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise MetadataError(f"cannot prepare {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_conn)
        executor.shutdown(wait=True)

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def schema_version(self) -> int:
        return await self._call(_schema_version)

    # -- topics ------------------------------------------------------------------------------
    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicInfo:
        if partitions < 1:
            raise InvalidPartitionsError(f"partitions must be >= 1, not {partitions}")
        return await self._call(_create_topic, name, partitions, dict(configs))

    async def delete_topic(self, name: str) -> None:
        await self._call(_delete_topic, name)

    async def get_topic(self, name: str) -> TopicInfo | None:
        return await self._call(_get_topic, "name", name)

    async def get_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return await self._call(_get_topic, "topic_id", str(topic_id))

    async def list_topics(self) -> list[TopicInfo]:
        return await self._call(_list_topics)

    async def create_partitions(self, name: str, total: int) -> TopicInfo:
        return await self._call(_create_partitions, name, total)

    async def set_topic_configs(self, name: str, configs: dict[str, str | None]) -> TopicInfo:
        return await self._call(_alter_configs, name, dict(configs), False)

    async def replace_topic_configs(self, name: str, configs: dict[str, str]) -> TopicInfo:
        return await self._call(_alter_configs, name, dict(configs), True)

    # -- partitions and the index -----------------------------------------------------------
    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        states = await self._call(_partition_states, [(topic, partition)])
        return states.get((topic, partition))

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]:
        if not keys:
            return {}
        return await self._call(_partition_states, list(keys))

    async def commit_file(self, file: FileInfo, batches: list[PendingBatch]) -> list[BatchOutcome]:
        return (await self._call(_commit_files, [(file, list(batches))]))[0]

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        return await self._call(_commit_files, [(f, list(b)) for f, b in files])

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        return await self._call(_read_batches, topic, partition, offset, max_bytes, max_batches)

    async def offset_for_timestamp(
        self, topic: str, partition: int, timestamp: int
    ) -> OffsetAtTime | None:
        return await self._call(_offset_for_timestamp, topic, partition, timestamp)

    async def max_timestamp_offset(self, topic: str, partition: int) -> OffsetAtTime | None:
        return await self._call(_max_timestamp_offset, topic, partition)

    # -- files (garbage collection) ---------------------------------------------------------
    async def unreferenced_files(self, created_before_ms: int, limit: int = 1000) -> list[FileInfo]:
        """Files recorded before `created_before_ms` (epoch ms) that no index row points into,
        oldest first: never-committed garbage and files emptied by deletion or retention."""
        return await self._call(_unreferenced_files, created_before_ms, limit)

    async def forget_files(self, file_ids: list[str]) -> list[str]:
        """Drop the records of files that are still unreferenced; returns the ids dropped.
        Delete the objects only after this (a file re-referenced meanwhile is kept)."""
        return await self._call(_forget_files, list(file_ids))

    # -- retention ---------------------------------------------------------------------------
    async def advance_log_start(
        self, topic: str, partition: int, offset: int
    ) -> PartitionState | None:
        """Retention and DeleteRecords: move the log start up to `offset` (clamped to the high
        watermark, never backwards) and drop the index rows wholly below it. A batch that
        straddles the new start stays. Returns the new state, None for an unknown partition."""
        return await self._call(_advance_log_start, topic, partition, offset)

    async def expire_producers(self, idle_before_ms: int) -> int:
        """Forget idempotence state, and non-transactional producer ids, untouched since
        `idle_before_ms` (epoch ms; Kafka's producer.id.expiration.ms). A later batch of such
        a producer is accepted as a first batch. Returns the number of rows removed."""
        return await self._call(_expire_producers, idle_before_ms)

    # -- producers ---------------------------------------------------------------------------
    async def init_producer(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """See `_init_producer`. Raises ProducerFencedError (a MetadataError)."""
        return await self._call(_init_producer, transactional_id, producer_id, producer_epoch)


# -- worker-thread functions (each gets the store's connection first) ------------------------


def _migrate(conn: sqlite3.Connection) -> None:
    with _write_txn(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        current = _schema_version(conn)
        if current > SCHEMA_VERSION:
            raise MetadataError(
                f"database schema version {current} is newer than this shoal ({SCHEMA_VERSION})"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, _now_ms()))


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _get_topic(conn: sqlite3.Connection, column: str, value: str) -> TopicInfo | None:
    # `column` is one of two literals chosen by the caller, never user input.
    row = conn.execute(
        f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE {column} = ?", (value,)
    ).fetchone()
    return None if row is None else _topic(row)


def _require_topic(conn: sqlite3.Connection, name: str) -> TopicInfo:
    info = _get_topic(conn, "name", name)
    if info is None:
        raise UnknownTopicError(name)
    return info


def _list_topics(conn: sqlite3.Connection) -> list[TopicInfo]:
    rows = conn.execute(f"SELECT {_TOPIC_COLUMNS} FROM topics ORDER BY name").fetchall()
    return [_topic(r) for r in rows]


def _create_topic(
    conn: sqlite3.Connection, name: str, partitions: int, configs: dict[str, str]
) -> TopicInfo:
    topic_id = uuid.uuid4()
    with _write_txn(conn):
        if _get_topic(conn, "name", name) is not None:
            raise TopicExistsError(name)
        conn.execute(
            "INSERT INTO topics (name, topic_id, partitions, configs, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, str(topic_id), partitions, _encode_configs(configs), _now_ms()),
        )
        conn.executemany(
            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
            [(name, p) for p in range(partitions)],
        )
    return TopicInfo(name, topic_id, partitions, dict(configs))


def _delete_topic(conn: sqlite3.Connection, name: str) -> None:
    with _write_txn(conn):
        _require_topic(conn, name)
        # Files stay: garbage collection removes them once no row points into them.
        for table in ("batches", "producer_state", "partitions"):
            conn.execute(f"DELETE FROM {table} WHERE topic = ?", (name,))
        delete_topic_offsets(conn, name)
        conn.execute("DELETE FROM topics WHERE name = ?", (name,))


def _create_partitions(conn: sqlite3.Connection, name: str, total: int) -> TopicInfo:
    with _write_txn(conn):
        info = _require_topic(conn, name)
        if total <= info.partitions:
            raise InvalidPartitionsError(
                f"topic {name} has {info.partitions} partitions; cannot grow to {total}"
            )
        conn.executemany(
            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
            [(name, p) for p in range(info.partitions, total)],
        )
        conn.execute("UPDATE topics SET partitions = ? WHERE name = ?", (total, name))
    return TopicInfo(info.name, info.topic_id, total, info.configs)


def _alter_configs(
    conn: sqlite3.Connection, name: str, configs: dict[str, str | None], replace: bool
) -> TopicInfo:
    with _write_txn(conn):
        info = _require_topic(conn, name)
        merged: dict[str, str] = {} if replace else dict(info.configs)
        for key, value in configs.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        conn.execute(
            "UPDATE topics SET configs = ? WHERE name = ?", (_encode_configs(merged), name)
        )
    return TopicInfo(info.name, info.topic_id, info.partitions, merged)


def _partition_states(
    conn: sqlite3.Connection, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], PartitionState]:
    out: dict[tuple[str, int], PartitionState] = {}
    # One read transaction: every answer comes from the same snapshot.
    conn.execute("BEGIN")
    try:
        for key in keys:
            row = conn.execute(
                "SELECT log_start_offset, next_offset FROM partitions"
                " WHERE topic = ? AND partition = ?",
                key,
            ).fetchone()
            if row is not None:
                out[key] = PartitionState(int(row[0]), int(row[1]))
    finally:
        conn.execute("COMMIT")
    return out


def _commit_files(
    conn: sqlite3.Connection, files: list[tuple[FileInfo, list[PendingBatch]]]
) -> list[list[BatchOutcome]]:
    now = _now_ms()
    with _write_txn(conn):
        # In file order: a later file's plan reads the rows the earlier ones just wrote.
        return [_commit_one(conn, file, batches, now) for file, batches in files]


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
    plan = plan_commit(batches, partitions, producers)
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


def _read_batches(
    conn: sqlite3.Connection,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int,
    max_batches: int,
) -> list[BatchRow]:
    out: list[BatchRow] = []
    total = 0
    for row in conn.execute(_READ_SQL, (topic, partition, offset, max(1, max_batches))):
        out.append(BatchRow(*row))
        total += row[5]
        if total >= max_bytes:
            break
    return out


def _offset_for_timestamp(
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


def _max_timestamp_offset(
    conn: sqlite3.Connection, topic: str, partition: int
) -> OffsetAtTime | None:
    row = conn.execute(
        "SELECT base_offset, max_timestamp FROM batches WHERE topic = ? AND partition = ?"
        " ORDER BY max_timestamp DESC, base_offset ASC LIMIT 1",
        (topic, partition),
    ).fetchone()
    return None if row is None else OffsetAtTime(int(row[0]), int(row[1]))
