"""The PostgreSQL metadata store: clusters of agents on several hosts.

This module is the plumbing (pool, deadlines, error mapping, retries) and the public methods;
the transaction bodies are in `postgres_<part>` modules (topics, index, commits, producers,
maintenance, groups, agents, migrations), each the twin of a `sqlite_<part>` module, and what
they decide is in the shared decision modules (`commits`, `producers`, ...).

Concurrency: `commit_file` locks the partition rows it writes, sorted, so two commits can never
deadlock (see `postgres_commits`). A commit is 5 round trips (BEGIN, lock, producer read if
idempotent, write, COMMIT) whatever its size.

Connections: one bounded asyncpg pool; every statement has `command_timeout` and every call an
overall deadline. Connection failures and timeouts surface as MetadataError (retriable). A broken
connection is replaced on the next acquire, so the store recovers by itself when the server is
back; a call whose transaction failed before COMMIT was sent is retried once on a fresh
connection. A failure during COMMIT is ambiguous and is reported, never retried.

Migrations (schema_pg.sql) run on start() under a transaction-level advisory lock, so several
agents starting at once migrate exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import asyncpg  # type: ignore[import-untyped]

from shoal.common.clock import Clock, wall_ms
from shoal.meta import (
    postgres_commits,
    postgres_index,
    postgres_maintenance,
    postgres_migrations,
    postgres_producers,
    postgres_topics,
)
from shoal.meta.maintenance import check_swap, page_limit
from shoal.meta.pg_listen import HwmListener
from shoal.meta.postgres_agents import PostgresAgentStoreMixin
from shoal.meta.postgres_groups import PostgresGroupStoreMixin
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
Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)
SCHEMA_VERSION: Final = postgres_migrations.SCHEMA_VERSION

# Errors after which the same transaction may simply be run again.
_TRANSIENT_SQLSTATES: Final = frozenset({"40001", "40P01"})  # serialization, deadlock
_CONNECTION_ERRORS: Final = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
    OSError,
)

# The server is restarting: nothing was done, another connection may succeed.
_SERVER_GOING: Final = (
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


async def _no_reset(conn: Conn) -> None:
    """Pool reset hook: our sessions change no state (no SET, LISTEN or session locks) and
    asyncpg still rolls back an open transaction, so skip the default reset round trip."""


class _Retry(Exception):
    """Internal: the transaction failed before COMMIT and may be run again."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class PostgresMetadataStore(PostgresGroupStoreMixin, PostgresAgentStoreMixin):
    """The whole `MetadataStore` on PostgreSQL (asyncpg).

    `dsn` is handed to asyncpg as is. Bounds: `pool_max` connections, `command_timeout_s` per
    statement, `call_timeout_s` per method call (acquire + transaction), `connect_timeout_s`
    per connection attempt. `clock` stamps the times the store records.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        command_timeout_s: float = 10.0,
        call_timeout_s: float = 15.0,
        connect_timeout_s: float = 5.0,
        notify: bool = True,
        clock: Clock = wall_ms,
    ) -> None:
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise ValueError(f"need 0 <= pool_min <= pool_max, >= 1: {pool_min}, {pool_max}")
        self.dsn = dsn
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._command_timeout_s = command_timeout_s
        self._call_timeout_s = call_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._notify = notify
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        # Transactions run again, by cause ("40P01" deadlock, "40001", "connection", ...).
        self.retries: Counter[str] = Counter()
        self._listener: HwmListener | None = None

    @property
    def pool_max(self) -> int:
        return self._pool_max

    @property
    def notify(self) -> bool:
        return self._notify

    @property
    def call_timeout_s(self) -> float:
        return self._call_timeout_s

    # -- plumbing ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._pool is not None:
            return
        try:
            async with asyncio.timeout(self._call_timeout_s + self._connect_timeout_s):
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=self._pool_min,
                    max_size=self._pool_max,
                    command_timeout=self._command_timeout_s,
                    timeout=self._connect_timeout_s,
                    max_inactive_connection_lifetime=60.0,
                    reset=_no_reset,
                )
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS, TimeoutError) as exc:
            raise MetadataError(f"postgresql: cannot connect: {exc}") from exc
        try:
            await self._run(pool, postgres_migrations.migrate, (self._clock(),), write=True)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        if pool is not None:
            try:
                async with asyncio.timeout(self._call_timeout_s):
                    await pool.close()
            except Exception:
                pool.terminate()

    async def subscribe_high_watermarks(self, callback: HwmCallback) -> None:
        """Call `callback([(topic, partition, high_watermark), ...])` whenever any agent commits
        to those partitions. One dedicated connection (outside the pool) LISTENs for all
        subscribers and reconnects with backoff if it drops; notifications sent while it was
        down are lost (keep polling as well, just less often). Waits up to the connect timeout
        for the listener to be up. The callback runs on the event loop: keep it cheap."""
        if self._pool is None:
            raise MetadataError("metadata store is not started")
        if self._listener is None:
            self._listener = HwmListener(
                lambda: asyncpg.connect(
                    self.dsn, timeout=self._connect_timeout_s,
                    command_timeout=self._command_timeout_s,
                ),
                probe_timeout_s=self._command_timeout_s,
            )
        await self._listener.add(callback, wait_s=self._connect_timeout_s)

    def _live_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise MetadataError("metadata store is not started, or closed")
        return self._pool

    async def _transaction(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `fn(conn, *args)` in one transaction; see the module doc for errors/retries."""
        return await self._run(self._live_pool(), fn, args, write=True)

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a single-statement read (its own snapshot) outside an explicit transaction."""
        return await self._run(self._live_pool(), fn, args, write=False)

    async def _run(
        self, pool: asyncpg.Pool, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], *,
        write: bool,
    ) -> T:
        attempts = 3
        try:
            async with asyncio.timeout(self._call_timeout_s):
                for attempt in range(attempts):
                    try:
                        return await self._attempt(pool, fn, args, write)
                    except _Retry as again:
                        self.retries[again.cause] += 1
                        if attempt == attempts - 1:
                            cause = again.__cause__
                            raise MetadataError(f"postgresql: {cause}") from cause
                        await asyncio.sleep(0.02 * (attempt + 1))
        except TimeoutError as exc:
            raise MetadataError(f"postgresql: timed out: {exc}") from exc
        raise AssertionError("unreachable")

    async def _attempt(
        self, pool: asyncpg.Pool, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
        write: bool,
    ) -> T:
        committing = False
        try:
            async with pool.acquire() as conn:
                if not write:
                    return await fn(conn, *args)
                tx = conn.transaction()
                await tx.start()
                try:
                    result = await fn(conn, *args)
                except BaseException:
                    if not conn.is_closed():
                        try:
                            await tx.rollback()
                        except Exception:
                            conn.terminate()
                    raise
                committing = True
                await tx.commit()
                return result
        except MetadataError:
            raise
        except asyncpg.PostgresError as exc:
            retriable = exc.sqlstate in _TRANSIENT_SQLSTATES or isinstance(exc, _SERVER_GOING)
            if retriable and not committing:
                raise _Retry(str(exc.sqlstate)) from exc
            raise MetadataError(f"postgresql: {exc}") from exc
        except _CONNECTION_ERRORS as exc:
            if not committing:
                raise _Retry("connection") from exc
            raise MetadataError(
                f"postgresql: connection lost during COMMIT, outcome unknown: {exc}"
            ) from exc
        except TimeoutError as exc:
            if committing:
                raise MetadataError("postgresql: timed out during COMMIT, outcome unknown") from exc
            raise

    async def schema_version(self) -> int:
        return await self._read(postgres_migrations.schema_version)

    # -- topics ------------------------------------------------------------------------------
    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicInfo:
        check_new_topic(partitions)
        return await self._transaction(
            postgres_topics.create_topic, name, partitions, dict(configs), self._clock()
        )

    async def delete_topic(self, name: str, topic_id: uuid.UUID | None = None) -> None:
        await self._transaction(postgres_topics.delete_topic, name, topic_id, self._clock())

    async def get_topic(self, name: str) -> TopicInfo | None:
        return await self._read(postgres_topics.get_topic, "name", name)

    async def get_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return await self._read(postgres_topics.get_topic, "topic_id", topic_id)

    async def list_topics(self) -> list[TopicInfo]:
        return await self._read(postgres_topics.list_topics)

    async def create_partitions(self, name: str, total: int) -> TopicInfo:
        return await self._transaction(postgres_topics.create_partitions, name, total)

    async def set_topic_configs(self, name: str, configs: dict[str, str | None]) -> TopicInfo:
        return await self._transaction(postgres_topics.alter_configs, name, dict(configs), False)

    async def replace_topic_configs(self, name: str, configs: dict[str, str]) -> TopicInfo:
        return await self._transaction(postgres_topics.alter_configs, name, dict(configs), True)

    # -- partitions and the index -----------------------------------------------------------
    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        states = await self._read(postgres_index.partition_states, [(topic, partition)])
        return states.get((topic, partition))

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]:
        if not keys:
            return {}
        return await self._read(postgres_index.partition_states, list(keys))

    async def commit_file(self, file: FileInfo, batches: list[PendingBatch]) -> list[BatchOutcome]:
        return (await self.commit_files([(file, batches)]))[0]

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        return await self._transaction(
            postgres_commits.commit_files,
            [(f, list(b)) for f, b in files], self._notify, self._clock,
        )

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        return await self._read(
            postgres_index.read_batches,
            topic, partition, offset, max_bytes, page_limit(max_batches),
        )

    async def offset_for_timestamp(
        self, topic: str, partition: int, timestamp: int
    ) -> OffsetAtTime | None:
        return await self._read(postgres_index.offset_for_timestamp, topic, partition, timestamp)

    async def max_timestamp_offset(self, topic: str, partition: int) -> OffsetAtTime | None:
        return await self._read(postgres_index.max_timestamp_offset, topic, partition)

    async def offset_keeping_bytes(
        self, topic: str, partition: int, retained_bytes: int
    ) -> int | None:
        return await self._read(
            postgres_index.offset_keeping_bytes, topic, partition, retained_bytes
        )

    # -- maintenance -------------------------------------------------------------------------
    async def unreferenced_files(self, created_before_ms: int, limit: int = 1000) -> list[FileInfo]:
        """Files recorded before `created_before_ms` (epoch ms) that no index row points into,
        oldest first."""
        return await self._read(
            postgres_maintenance.unreferenced_files, created_before_ms, page_limit(limit)
        )

    async def forget_files(self, file_ids: list[str]) -> list[str]:
        """Drop the records of files that are still unreferenced; returns the ids dropped."""
        if not file_ids:
            return []
        return await self._transaction(postgres_maintenance.forget_files, list(file_ids))

    async def advance_log_start(
        self, topic: str, partition: int, offset: int
    ) -> PartitionState | None:
        """Move the log start up to `offset` (clamped to the high watermark, never backwards)
        and drop the index rows wholly below it."""
        return await self._transaction(
            postgres_maintenance.advance_log_start, topic, partition, offset, self._clock()
        )

    # -- file compaction ---------------------------------------------------------------------
    async def compaction_candidates(
        self, size_below: int, created_before_ms: int, limit: int = 1000
    ) -> list[CompactionFile]:
        """See `MetadataStore.compaction_candidates`."""
        return await self._read(
            postgres_maintenance.compaction_candidates,
            size_below,
            created_before_ms,
            page_limit(limit),
        )

    async def file_rows(self, file_ids: list[str]) -> list[FileRow]:
        """See `MetadataStore.file_rows`."""
        if not file_ids:
            return []
        return await self._read(postgres_maintenance.file_rows, list(file_ids))

    async def swap_files(
        self, file: FileInfo | None, level: int, moves: list[RowMove], drops: list[FileRow]
    ) -> SwapResult:
        """See `MetadataStore.swap_files`."""
        check_swap(file, moves)
        return await self._transaction(
            postgres_maintenance.swap_files, file, level, list(moves), list(drops), self._clock()
        )

    async def expire_producers(self, idle_before_ms: int) -> int:
        """Forget idempotence state, and non-transactional producer ids, untouched since
        `idle_before_ms`. Returns the number of rows removed."""
        return await self._transaction(postgres_maintenance.expire_producers, idle_before_ms)

    async def expire_offsets(self, expired_before_ms: int) -> tuple[int, int]:
        """See `MetadataStore.expire_offsets`."""
        result: tuple[int, int] = await self._transaction(
            postgres_maintenance.expire_offsets, expired_before_ms
        )
        return result

    # -- producers ---------------------------------------------------------------------------
    async def init_producer(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """See `producers.decide_init`. Raises ProducerFencedError (a MetadataError)."""
        return await self._transaction(
            postgres_producers.init_producer,
            transactional_id, producer_id, producer_epoch, self._clock(),
        )


