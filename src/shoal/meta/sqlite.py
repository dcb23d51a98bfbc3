"""The SQLite metadata store: embedded deployments and single-host clusters.

All sqlite3 work runs in dedicated worker threads (sqlite3 blocks), one connection each, in three
*lanes* so that one kind of work never queues behind another: `main` (commits, topics, the
index reads of Fetch, groups, producers), `membership` (heartbeats and the live-agent list: a
heartbeat queued behind a scan would make peers drop a healthy agent) and `scans` (reads that
may walk many rows: timestamp lookups, the GC's file listing, lag's commit pages). Each lane
runs its statements in order. Several connections, and processes, may use one file: WAL lets
readers run beside the one writer, `BEGIN IMMEDIATE` takes the write lock up front so that a
read-then-write transaction can never be overtaken, and `busy_timeout` bounds the wait. A
private in-memory database (":memory:") has one connection, so all lanes are one there.
`synchronous=FULL` fsyncs the WAL on every commit: "acked means durable" needs it (NORMAL may
lose the last commits on power loss).

Errors: sqlite3 failures (including a lock wait past busy_timeout) surface as MetadataError.
A cancelled caller does not cancel the statement already running in the worker thread.

This module is the plumbing and the public methods; the transaction bodies are in
`sqlite_<part>` modules (topics, index, commits, producers, maintenance, groups, agents,
migrations), each the twin of a `postgres_<part>` module, and what they decide is in the
shared decision modules (`commits`, `producers`, ...).
"""

from __future__ import annotations

import asyncio
import functools
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from shoal.common.clock import Clock, monotonic_s, wall_ms
from shoal.meta import (
    sqlite_commits,
    sqlite_index,
    sqlite_maintenance,
    sqlite_migrations,
    sqlite_producers,
    sqlite_topics,
)
from shoal.meta.maintenance import check_swap, page_limit
from shoal.meta.sqlite_agents import SqliteAgentStoreMixin
from shoal.meta.sqlite_groups import SqliteGroupStoreMixin
from shoal.meta.store import (
    BatchOutcome,
    BatchRow,
    CompactionFile,
    FileInfo,
    FileRow,
    HwmCallback,
    MetadataError,
    OffsetAtTime,
    PartitionState,
    PendingBatch,
    RowMove,
    SwapResult,
    TopicInfo,
)
from shoal.meta.topics import check_new_topic

T = TypeVar("T")

SCHEMA_VERSION: Final = sqlite_migrations.SCHEMA_VERSION

MAIN, MEMBERSHIP, SCANS = "main", "membership", "scans"


class _Lane:
    """One worker thread and its connection: the statements sent to it run one at a time."""

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shoal-sqlite-{name}")
        self.conn: sqlite3.Connection | None = None

    def guard(self, fn: Callable[..., T], *args: Any) -> T:
        if self.conn is None:
            raise MetadataError("metadata store is closed")
        try:
            return fn(self.conn, *args)
        except sqlite3.Error as exc:
            raise MetadataError(f"sqlite: {exc}") from exc

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL. Changing the journal mode needs an exclusive lock and SQLite does not
    run the busy handler for it, so several processes opening a new file at once would get
    "database is locked" at once: retry until the busy timeout instead."""
    deadline = monotonic_s() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or monotonic_s() >= deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


class SqliteMetadataStore(SqliteGroupStoreMixin, SqliteAgentStoreMixin):
    """The whole `MetadataStore` on one SQLite file (":memory:" in tests). `clock` stamps the
    times the store records (file and commit times, producer activity)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        clock: Clock = wall_ms,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}

    # -- plumbing ----------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(MAIN, fn, *args)

    async def _scan(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(SCANS, fn, *args)

    async def _membership(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._on(MEMBERSHIP, fn, *args)

    async def _on(self, lane_name: str, fn: Callable[..., T], *args: Any) -> T:
        lane = self._lanes.get(lane_name)
        if lane is None:
            raise MetadataError("metadata store is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(lane.executor, functools.partial(lane.guard, fn, *args))

    async def start(self) -> None:
        if self._lanes:
            return
        loop = asyncio.get_running_loop()
        lanes: dict[str, _Lane] = {}
        try:
            # Main first, alone: it creates and migrates the schema the others then use.
            main = lanes[MAIN] = _Lane(MAIN)
            main.conn = await loop.run_in_executor(main.executor, self._open, True)
            for name in (MEMBERSHIP, SCANS):
                if self.path == ":memory:":
                    lanes[name] = main
                    continue
                lane = lanes[name] = _Lane(name)
                lane.conn = await loop.run_in_executor(lane.executor, self._open, False)
        except BaseException:
            for lane in set(lanes.values()):
                lane.executor.submit(lane.close)
                lane.executor.shutdown(wait=False)
            raise
        self._lanes = lanes

    def _open(self, migrate: bool) -> sqlite3.Connection:
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
            if migrate:
                sqlite_migrations.migrate(conn, self._clock())
        except sqlite3.Error as exc:
            conn.close()
            raise MetadataError(f"cannot prepare {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        lanes, self._lanes = self._lanes, {}
        loop = asyncio.get_running_loop()
        for lane in set(lanes.values()):
            await loop.run_in_executor(lane.executor, lane.close)
            lane.executor.shutdown(wait=True)

    async def schema_version(self) -> int:
        return await self._call(sqlite_migrations.schema_version)

    async def subscribe_high_watermarks(self, callback: HwmCallback) -> None:
        """A no-op: SQLite has no notification channel, so `callback` is never called. Agents
        that share a SQLite file run on one host, and the read path's high-watermark poller
        finds the other processes' commits (this agent's own wake its long polls directly)."""

    # -- topics ------------------------------------------------------------------------------
    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicInfo:
        check_new_topic(partitions)
        return await self._call(
            sqlite_topics.create_topic, name, partitions, dict(configs), self._clock()
        )

    async def delete_topic(self, name: str, topic_id: uuid.UUID | None = None) -> None:
        await self._call(sqlite_topics.delete_topic, name, topic_id, self._clock())

    async def get_topic(self, name: str) -> TopicInfo | None:
        return await self._call(sqlite_topics.get_topic, "name", name)

    async def get_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return await self._call(sqlite_topics.get_topic, "topic_id", str(topic_id))

    async def list_topics(self) -> list[TopicInfo]:
        return await self._call(sqlite_topics.list_topics)

    async def create_partitions(self, name: str, total: int) -> TopicInfo:
        return await self._call(sqlite_topics.create_partitions, name, total)

    async def set_topic_configs(self, name: str, configs: dict[str, str | None]) -> TopicInfo:
        return await self._call(sqlite_topics.alter_configs, name, dict(configs), False)

    async def replace_topic_configs(self, name: str, configs: dict[str, str]) -> TopicInfo:
        return await self._call(sqlite_topics.alter_configs, name, dict(configs), True)

    # -- partitions and the index -----------------------------------------------------------
    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        states = await self._call(sqlite_index.partition_states, [(topic, partition)])
        return states.get((topic, partition))

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]:
        if not keys:
            return {}
        return await self._call(sqlite_index.partition_states, list(keys))

    async def commit_file(self, file: FileInfo, batches: list[PendingBatch]) -> list[BatchOutcome]:
        return (await self.commit_files([(file, batches)]))[0]

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        return await self._call(
            sqlite_commits.commit_files, [(f, list(b)) for f, b in files], self._clock
        )

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        return await self._call(
            sqlite_index.read_batches, topic, partition, offset, max_bytes, page_limit(max_batches)
        )

    async def offset_for_timestamp(
        self, topic: str, partition: int, timestamp: int
    ) -> OffsetAtTime | None:
        return await self._scan(sqlite_index.offset_for_timestamp, topic, partition, timestamp)

    async def max_timestamp_offset(self, topic: str, partition: int) -> OffsetAtTime | None:
        # Walks every batch of the partition (no index on max_timestamp: it would cost every
        # commit an index write for a rare lookup), hence the scans lane.
        return await self._scan(sqlite_index.max_timestamp_offset, topic, partition)

    async def offset_keeping_bytes(
        self, topic: str, partition: int, retained_bytes: int
    ) -> int | None:
        # Walks every batch of the partition: the scans lane, like the lookup above.
        return await self._scan(sqlite_index.offset_keeping_bytes, topic, partition, retained_bytes)

    # -- files (garbage collection) ---------------------------------------------------------
    async def unreferenced_files(self, created_before_ms: int, limit: int = 1000) -> list[FileInfo]:
        """Files recorded before `created_before_ms` (epoch ms) that no index row points into,
        oldest first: never-committed garbage and files emptied by deletion or retention."""
        return await self._scan(
            sqlite_maintenance.unreferenced_files, created_before_ms, page_limit(limit)
        )

    async def forget_files(self, file_ids: list[str]) -> list[str]:
        """Drop the records of files that are still unreferenced; returns the ids dropped.
        Delete the objects only after this (a file re-referenced meanwhile is kept)."""
        return await self._call(sqlite_maintenance.forget_files, list(file_ids))

    # -- retention ---------------------------------------------------------------------------
    async def advance_log_start(
        self, topic: str, partition: int, offset: int
    ) -> PartitionState | None:
        """Retention and DeleteRecords: move the log start up to `offset` (clamped to the high
        watermark, never backwards) and drop the index rows wholly below it. A batch that
        straddles the new start stays. Returns the new state, None for an unknown partition."""
        return await self._call(
            sqlite_maintenance.advance_log_start, topic, partition, offset, self._clock()
        )

    # -- file compaction ---------------------------------------------------------------------
    async def compaction_candidates(
        self, size_below: int, created_before_ms: int, limit: int = 1000
    ) -> list[CompactionFile]:
        """See `MetadataStore.compaction_candidates`."""
        return await self._scan(
            sqlite_maintenance.compaction_candidates,
            size_below,
            created_before_ms,
            page_limit(limit),
        )

    async def file_rows(self, file_ids: list[str]) -> list[FileRow]:
        """See `MetadataStore.file_rows`."""
        if not file_ids:
            return []
        return await self._scan(sqlite_maintenance.file_rows, list(file_ids))

    async def swap_files(
        self, file: FileInfo | None, level: int, moves: list[RowMove], drops: list[FileRow]
    ) -> SwapResult:
        """See `MetadataStore.swap_files`."""
        check_swap(file, moves)
        return await self._call(
            sqlite_maintenance.swap_files, file, level, list(moves), list(drops), self._clock()
        )

    async def expire_producers(self, idle_before_ms: int) -> int:
        """Forget idempotence state, and non-transactional producer ids, untouched since
        `idle_before_ms` (epoch ms; Kafka's producer.id.expiration.ms). A later batch of such
        a producer is accepted as a first batch. Returns the number of rows removed."""
        return await self._call(sqlite_maintenance.expire_producers, idle_before_ms)

    async def expire_offsets(self, expired_before_ms: int) -> tuple[int, int]:
        """See `MetadataStore.expire_offsets`."""
        result: tuple[int, int] = await self._call(
            sqlite_maintenance.expire_offsets, expired_before_ms
        )
        return result

    # -- producers ---------------------------------------------------------------------------
    async def init_producer(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """See `producers.decide_init`. Raises ProducerFencedError (a MetadataError)."""
        return await self._call(
            sqlite_producers.init_producer,
            transactional_id, producer_id, producer_epoch, self._clock(),
        )
