"""Fetch assembly: index lookup, byte loading through a `BlockSource`, baseOffset patching, limits
and the long poll (DESIGN.md §4 steps 1, 2, 5, 6).

One fetch runs in three phases so that the response-level byte limit is applied before any byte
is loaded and all batches of one segment file (which holds many partitions) are read in one
`read_ranges` call:
1. index rows of every partition, concurrently (bounded);
2. selection in request order under partition and response limits (KIP-74: the first batch of
   the first non-empty partition is returned even if it exceeds the limits);
3. bytes per file, concurrently (bounded), then patching of each batch's baseOffset.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shoal.meta.store import BatchRow, PartitionState
from shoal.protocol import batch as record_batch
from shoal.protocol.errors import (
    KAFKA_STORAGE_ERROR,  # retriable: the object or metadata store failed for this partition
    NONE,
    OFFSET_OUT_OF_RANGE,
    UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
)
from shoal.read.block_cache import BlockSource, Chunk, spanned_bytes
from shoal.read.index_cache import IndexCache
from shoal.read.waiters import PartitionKey, PartitionWaiters

log = logging.getLogger(__name__)

_BASE_OFFSET = struct.Struct(">q")
_POLL_KEYS_MAX = 1000  # partitions per high-watermark poll query
_T = TypeVar("_T")
# Called with the bytes of the blocks a fetch is about to load (it may pin them until its
# response is written): True once that much is held for the response, False when there is no
# room now (the fetch then answers without data, and the client fetches again).
Reserve = Callable[[int], Awaitable[bool]]


class IndexReader(Protocol):
    """What the fetch reader needs from `shoal.meta.store.MetadataStore`."""

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None: ...

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]: ...

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]: ...


@dataclass(frozen=True, slots=True)
class PartitionFetch:
    topic: str
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    # The topic id the request named (Fetch v13+), if it named one: a partition of a topic
    # that has another id now (deleted, re-created) answers UNKNOWN_TOPIC_ID.
    topic_id: uuid.UUID | None = None


@dataclass(slots=True)
class PartitionRead:
    error_code: int
    high_watermark: int
    log_start_offset: int
    # The partition's record set as chunks to concatenate (as the wire format does): whole
    # batches in offset order with baseOffsets patched. A chunk is not one batch: a patched
    # batch is its 8-byte header plus a view of the rest, which may point into a cached block.
    # Encode or copy them before the next await that could outlive the response.
    batches: list[Chunk] = field(default_factory=list)
    byte_count: int = 0


@dataclass(slots=True)
class _Plan:
    req: PartitionFetch
    read: PartitionRead
    wanted: bool = False  # there are batches past the fetch offset
    rows: list[BatchRow] = field(default_factory=list)
    topic_id: uuid.UUID | None = None  # of the topic as the state was read


def _plan(req: PartitionFetch, state: PartitionState | None) -> _Plan:
    """Check the fetch offset against the partition's state."""
    if state is None:
        return _Plan(req, PartitionRead(UNKNOWN_TOPIC_OR_PARTITION, -1, -1))
    if req.topic_id is not None and state.topic_id is not None and req.topic_id != state.topic_id:
        return _Plan(req, PartitionRead(UNKNOWN_TOPIC_ID, -1, -1))
    read = PartitionRead(NONE, state.high_watermark, state.log_start_offset)
    offset = req.fetch_offset
    if offset < state.log_start_offset or offset > state.high_watermark:
        read.error_code = OFFSET_OUT_OF_RANGE
    wanted = state.log_start_offset <= offset < state.high_watermark
    return _Plan(req, read, wanted=wanted, topic_id=state.topic_id)


class FetchReader:
    def __init__(
        self,
        meta: IndexReader,
        blocks: BlockSource,
        waiters: PartitionWaiters,
        *,
        lookups_in_flight_max: int = 32,
        files_in_flight_max: int = 16,
        batches_per_partition_max: int = 5000,
        poll_interval_s: float | None = 0.25,
        index_rows_max: int = 100_000,
        index_ttl_s: float = 30.0,
        block_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """`poll_interval_s`: how often the high watermarks of partitions that fetches wait on are
        read from the metadata store, to see commits by other agents (one query per interval for
        all waiting fetches; None: rely on `waiters.notify` alone).
        `index_rows_max`: size of the index row cache (0: every fetch asks the store).
        `index_ttl_s`: how long cached rows are trusted; shorter than the GC's grace, since a
        compaction moves rows to new files and the old ones go one grace later."""
        self._meta = meta
        self._blocks = blocks
        self._waiters = waiters
        self._lookups_max = lookups_in_flight_max
        self._files_max = files_in_flight_max
        self._batches_max = batches_per_partition_max
        self._poll_s = poll_interval_s
        self._poller: asyncio.Task[None] | None = None
        self._block_bytes = block_bytes  # the unit `reserve` counts loads in
        self.index = (
            IndexCache(meta, rows_max=index_rows_max, ttl_s=index_ttl_s)
            if index_rows_max > 0
            else None
        )

    # -- public API ----------------------------------------------------------------------------
    async def read_partition(
        self, topic: str, partition: int, offset: int, max_bytes: int
    ) -> PartitionRead:
        """Whole batches holding offsets >= `offset`, up to `max_bytes` (at least one batch)."""
        try:
            state = await self._meta.partition_state(topic, partition)
        except Exception:
            log.warning("partition state of %s-%d failed", topic, partition, exc_info=True)
            return PartitionRead(KAFKA_STORAGE_ERROR, -1, -1)
        plan = _plan(PartitionFetch(topic, partition, offset, max_bytes), state)
        if plan.wanted:
            await self._read_index(plan, max_bytes)
        _select([plan], max_bytes)
        await self._load([plan])
        return plan.read

    def forget_topic(self, topic: str) -> None:
        """Drop what is known of a deleted topic (its name may come back with new offsets)."""
        self._waiters.forget(topic)
        if self.index is not None:
            self.index.forget(topic)

    async def fetch(
        self,
        requests: list[PartitionFetch],
        max_bytes: int,
        min_bytes: int,
        max_wait_ms: int,
        reserve: Reserve | None = None,
    ) -> list[PartitionRead]:
        """One Fetch: results in request order; waits up to `max_wait_ms` for `min_bytes`.
        With `reserve`, the blocks to load are reserved first (see `Reserve`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(max_wait_ms, 0) / 1000.0
        previous: dict[PartitionKey, int] | None = None
        while True:
            reads = await self._read_all(requests, max_bytes, reserve)
            total = sum(r.byte_count for r in reads)
            if total >= min_bytes or max_wait_ms <= 0 or not reads:
                return reads
            if any(r.error_code != NONE for r in reads):
                return reads  # as Kafka: an error answers at once
            hwms = {
                (q.topic, q.partition): r.high_watermark
                for q, r in zip(requests, reads, strict=True)
            }
            if previous is not None and all(hwms[k] <= previous.get(k, -1) for k in hwms):
                # Woken but nothing moved: a known high watermark is stale (topic recreated).
                for (topic, partition), hwm in hwms.items():
                    self._waiters.reset(topic, partition, hwm)
            previous = hwms
            if not await self._wait(list(hwms), hwms, deadline):
                return reads

    # -- long poll -----------------------------------------------------------------------------
    async def _wait(
        self, keys: list[PartitionKey], above: dict[PartitionKey, int], deadline: float
    ) -> bool:
        """True when a high watermark moved before `deadline`."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        self._ensure_poller()
        return await self._waiters.wait(keys, above, remaining)

    def _ensure_poller(self) -> None:
        if self._poll_s is None or (self._poller is not None and not self._poller.done()):
            return
        self._poller = asyncio.get_running_loop().create_task(self._poll_loop(self._poll_s))

    async def _poll_loop(self, interval_s: float) -> None:
        """One query per interval for every partition that any fetch waits on, however many
        fetches wait: commits by other agents reach the waiters through `notify`. Ends when
        nothing waits (the next wait starts it again)."""
        while True:
            await asyncio.sleep(interval_s)
            keys = self._waiters.waiting_keys()
            if not keys:
                return
            for i in range(0, len(keys), _POLL_KEYS_MAX):
                try:
                    async with asyncio.timeout(max(interval_s * 4, 1.0)):
                        states = await self._meta.partition_states(keys[i : i + _POLL_KEYS_MAX])
                except Exception:
                    log.warning("long-poll high watermark check failed", exc_info=True)
                    continue
                for (topic, partition), state in states.items():
                    self._waiters.notify(topic, partition, state.high_watermark)

    async def close(self) -> None:
        """Stop the long-poll poller (waiting fetches then time out or wake by `notify`)."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    # -- phases --------------------------------------------------------------------------------
    async def _read_all(
        self, requests: list[PartitionFetch], max_bytes: int, reserve: Reserve | None = None
    ) -> list[PartitionRead]:
        # One query for every partition's state, then index reads only where there is data.
        try:
            states = await self._meta.partition_states(
                list(dict.fromkeys((q.topic, q.partition) for q in requests))
            )
        except Exception:
            log.warning("partition states lookup failed", exc_info=True)
            return [PartitionRead(KAFKA_STORAGE_ERROR, -1, -1) for _ in requests]
        plans = [_plan(q, states.get((q.topic, q.partition))) for q in requests]
        wanted = [self._read_index(p, max_bytes) for p in plans if p.wanted]
        if wanted:
            await _gather_bounded(wanted, self._lookups_max)
        _select(plans, max_bytes)
        if reserve is not None:
            spanned = spanned_bytes(
                self._block_bytes,
                (
                    (r.file_key, r.file_size, r.byte_pos, r.byte_len)
                    for p in plans
                    for r in p.rows
                ),
            )
            if spanned and not await reserve(spanned):
                for plan in plans:
                    plan.rows = []
        await self._load(plans)
        return [p.read for p in plans]

    async def _read_index(self, plan: _Plan, response_max_bytes: int) -> None:
        """Candidate index rows of a partition with data past the fetch offset (phase 1)."""
        req = plan.req
        limit = max(min(req.partition_max_bytes, response_max_bytes), 1)
        try:
            if self.index is not None:
                rows = await self.index.read_batches(
                    req.topic,
                    req.partition,
                    req.fetch_offset,
                    limit,
                    self._batches_max,
                    plan.read.high_watermark,
                    plan.topic_id,
                )
            else:
                rows = await self._meta.read_batches(
                    req.topic, req.partition, req.fetch_offset, limit, self._batches_max
                )
        except Exception:
            log.warning("index lookup of %s-%d failed", req.topic, req.partition, exc_info=True)
            plan.read.error_code = KAFKA_STORAGE_ERROR
            return
        # Rows committed after the state was read lie beyond the reported high watermark: leave
        # them for the next fetch so that no batch is ever newer than the watermark sent with it.
        plan.rows = _usable(rows, req.fetch_offset, plan.read.high_watermark, limit)

    async def _load(self, plans: Sequence[_Plan]) -> None:
        """Read the selected rows' bytes, one `read_ranges` call per file (phase 3).

        Consecutive batches of a partition sit next to each other in a segment file, so they
        are read as one range ("run") and patched in one join: the per-batch cost is a header
        pack, not a read, a slice and a copy."""
        runs: list[_Run] = []
        by_file: dict[str, list[int]] = {}  # file key -> indexes into runs
        for pi, plan in enumerate(plans):
            rows = plan.rows
            i = 0
            while i < len(rows):
                first = rows[i]
                end = first.byte_pos + first.byte_len
                j = i + 1
                while j < len(rows):
                    row = rows[j]
                    if row.file_key != first.file_key or row.byte_pos != end:
                        break
                    end += row.byte_len
                    j += 1
                by_file.setdefault(first.file_key, []).append(len(runs))
                runs.append(_Run(pi, first.file_key, first.file_size, first.byte_pos, rows[i:j]))
                i = j
        if not runs:
            return
        loaded: list[Chunk | None] = [None] * len(runs)
        failed: set[int] = set()

        async def load_file(key: str) -> None:
            indexes = by_file[key]
            ranges = [(runs[k].start, runs[k].length()) for k in indexes]
            try:
                datas = await self._blocks.read_ranges(key, runs[indexes[0]].file_size, ranges)
            except Exception:
                log.warning("reading %s failed", key, exc_info=True)
                failed.update(runs[k].plan for k in indexes)
                return
            for k, data in zip(indexes, datas, strict=True):
                loaded[k] = data

        read_files = getattr(self._blocks, "read_files", None)
        if read_files is not None:
            # A batching source (the ring) asks each owner once for every file of the fetch.
            keys = list(by_file)
            requests = [
                (
                    k,
                    runs[by_file[k][0]].file_size,
                    [(runs[i].start, runs[i].length()) for i in by_file[k]],
                )
                for k in keys
            ]
            try:
                answers = await read_files(requests)
            except Exception as exc:
                answers = [exc] * len(keys)
            for key, answer in zip(keys, answers, strict=True):
                indexes = by_file[key]
                if isinstance(answer, Exception):
                    log.warning("reading %s failed: %r", key, answer)
                    failed.update(runs[k].plan for k in indexes)
                    continue
                for k, data in zip(indexes, answer, strict=True):
                    loaded[k] = data
        else:
            await _gather_bounded([load_file(k) for k in by_file], self._files_max)
        for run, data in zip(runs, loaded, strict=True):  # runs are in plan and offset order
            read = plans[run.plan].read
            if run.plan in failed:
                read.error_code = KAFKA_STORAGE_ERROR
                read.batches.clear()
                read.byte_count = 0
                if self.index is not None:
                    # The rows may point at a file compaction replaced and the GC deleted (a
                    # cover older than the grace): the client's retry looks them up afresh.
                    req = plans[run.plan].req
                    self.index.forget(req.topic, req.partition)
                continue
            assert data is not None
            _patch_run(data, run, read.batches)
            read.byte_count += len(data)


@dataclass(slots=True)
class _Run:
    """Consecutive batches of one partition that are adjacent in one file."""

    plan: int
    file_key: str
    file_size: int
    start: int
    rows: list[BatchRow]

    def length(self) -> int:
        last = self.rows[-1]
        return last.byte_pos + last.byte_len - self.start


def _patch_run(data: Chunk, run: _Run, out: list[Chunk]) -> None:
    """Append the run's batches to `out` as (patched header, view of the rest) pairs: the
    bytes are copied once, by the response encoder."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    pack = _BASE_OFFSET.pack
    start = run.start
    for row in run.rows:
        pos = row.byte_pos - start
        out.append(pack(row.base_offset))
        out.append(view[pos + 8 : pos + row.byte_len])


def _usable(
    rows: list[BatchRow], offset: int, hwm: int, limit: int, resorted: bool = False
) -> list[BatchRow]:
    """Rows holding offsets in [offset, hwm), in offset order, up to `limit` bytes (always the
    first one). One pass; the store returns rows in order, anything else is sorted first and
    overlapping rows are dropped."""
    out: list[BatchRow] = []
    total = 0
    prev = -1
    for row in rows:
        if row.last_offset < offset:
            continue
        if row.base_offset <= prev:
            if resorted:
                continue
            ordered = sorted(rows, key=lambda r: r.base_offset)
            return _usable(ordered, offset, hwm, limit, resorted=True)
        if row.base_offset >= hwm:
            break
        total += row.byte_len
        if total > limit and out:
            break
        out.append(row)
        prev = row.last_offset
    return out


def _select(plans: Sequence[_Plan], max_bytes: int) -> None:
    """Apply partition and response limits in request order (phase 2)."""
    remaining = max_bytes
    empty_so_far = True
    for plan in plans:
        kept: list[BatchRow] = []
        for row in plan.rows:  # already trimmed to the partition limit
            if row.byte_len > remaining and not (empty_so_far and not kept):
                break
            kept.append(row)
            remaining -= row.byte_len
        plan.rows = kept
        if kept:
            empty_so_far = False
        remaining = max(remaining, 0)


def patch_base_offset(batch: bytes, base_offset: int) -> bytes:
    """The batch with its baseOffset set (the CRC starts at `attributes`, so it stays valid);
    the batch itself when it already holds that offset (no copy)."""
    if batch[:8] == _BASE_OFFSET.pack(base_offset):
        return batch
    return record_batch.patch_base_offset(batch, base_offset)


async def _gather_bounded(coros: list[Coroutine[Any, Any, _T]], limit: int) -> list[_T]:
    """Await coroutines with at most `limit` running at once, results in order."""
    if len(coros) <= limit:
        return list(await asyncio.gather(*coros))
    sem = asyncio.Semaphore(limit)

    async def run(coro: Coroutine[Any, Any, _T]) -> _T:
        async with sem:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))
