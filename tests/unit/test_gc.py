"""Garbage collection against the real metadata stores (SQLite, PostgreSQL) and a local-folder
object store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.jobs.gc import GarbageCollector
from shoal.meta.open import open_metadata_store
from shoal.meta.store import (
    BatchOutcome,
    DuplicateFileError,
    FileInfo,
    MetadataStore,
    PartitionState,
    PendingBatch,
)
from shoal.objstore.store import ObjectStore
from shoal.protocol.batch import parse_header
from shoal.protocol.errors import REQUEST_TIMED_OUT
from shoal.write.segment_format import new_file_id, segment_key
from shoal.write.writer import AppendItem, SegmentWriter
from tests.unit.batchgen import make_batch

GRACE_MS = 60_000


@dataclass
class Env:
    store: ObjectStore
    meta: MetadataStore
    now_ms: int

    def gc(self, **kw: int) -> GarbageCollector:
        # The collector's clock runs a grace period ahead unless a test moves it.
        return GarbageCollector(
            self.store,
            self.meta,
            interval_ms=kw.pop("interval_ms", 1000),
            grace_ms=kw.pop("grace_ms", GRACE_MS),
            clock_ms=lambda: self.now_ms,
            **kw,
        )

    async def put_file(self, age_ms: int, size: int = 64) -> FileInfo:
        file_id = new_file_id(int(time.time() * 1000) - age_ms)
        key = segment_key(file_id)
        await self.store.put_create(key, b"x" * size)
        return FileInfo(file_id, key, size)

    async def keys(self) -> set[str]:
        return {m.key for m in await self.store.list("segments/")}


@pytest.fixture
async def env(tmp_path: Path, db_url: str) -> AsyncIterator[Env]:
    meta = open_metadata_store(db_url)
    await meta.start()
    await meta.create_topic("t", 1, {})
    try:
        # Objects get the real clock as last_modified; the collector's clock is moved past it.
        # file:// rather than memory://: obstore's MemoryStore can stall when a list and a
        # delete overlap, which a background collector makes likely.
        store = ObjectStore.from_url(f"file://{tmp_path}/objects", 5000)
        yield Env(store, meta, int(time.time() * 1000))
    finally:
        await meta.close()


def _batch(partition: int = 0, topic: str = "t") -> PendingBatch:
    return PendingBatch(topic, partition, 0, 64, 1, 0, 0, -1, -1, -1)


async def test_orphans_older_than_grace_go_committed_files_stay(env: Env) -> None:
    committed = await env.put_file(age_ms=0)
    outcomes = await env.meta.commit_file(committed, [_batch()])
    assert outcomes[0].error_code == 0
    orphan = await env.put_file(age_ms=0)

    gc = env.gc()
    env.now_ms += GRACE_MS // 2
    assert (await gc.run_once()).orphans_deleted == 0, "an orphan went before its grace"
    assert await env.keys() == {committed.key, orphan.key}

    env.now_ms += GRACE_MS
    result = await gc.run_once()
    assert result.orphans_deleted == 1
    assert await env.keys() == {committed.key}
    # The claim record stays one more grace period, then the unreferenced pass forgets it.
    claims = await env.meta.unreferenced_files(int(time.time() * 1000) + 1000)
    assert [f.file_id for f in claims] == [orphan.file_id]
    env.now_ms = int(time.time() * 1000) + 2 * GRACE_MS
    assert (await gc.run_once()).unreferenced_deleted == 1
    assert await env.meta.unreferenced_files(env.now_ms + GRACE_MS) == []
    assert await env.keys() == {committed.key}


async def test_claimed_orphan_cannot_be_committed_later(env: Env) -> None:
    """A writer whose commit arrives after GC took the file gets an error, not a dangling row."""
    slow = await env.put_file(age_ms=0)
    env.now_ms += 2 * GRACE_MS
    assert (await env.gc().run_once()).orphans_deleted == 1
    # Even after the claim record's own grace period has begun; it lasts until a later cycle.
    with pytest.raises(DuplicateFileError):
        await env.meta.commit_file(slow, [_batch()])
    state = await env.meta.partition_state("t", 0)
    assert state is not None and state.high_watermark == 0


async def test_unreferenced_files_are_deleted_after_grace(env: Env) -> None:
    refused = await env.put_file(age_ms=0)
    # Every batch refused (unknown partition): the file is recorded but nothing points into it.
    outcomes = await env.meta.commit_file(refused, [_batch(partition=7)])
    assert outcomes[0].error_code != 0
    gc = env.gc()
    env.now_ms += GRACE_MS // 2
    result = await gc.run_once()
    assert result.unreferenced_deleted == 0 and await env.keys() == {refused.key}
    env.now_ms += GRACE_MS
    result = await gc.run_once()
    assert result.unreferenced_deleted == 1
    assert await env.keys() == set()
    assert await env.meta.unreferenced_files(env.now_ms + GRACE_MS) == []


async def test_deletions_per_cycle_are_bounded(env: Env) -> None:
    orphans = [await env.put_file(age_ms=0) for _ in range(5)]
    gc = env.gc(files_per_cycle_max=2)
    env.now_ms += 2 * GRACE_MS
    # The clock is far ahead, so claim records of one cycle are due in the next and share
    # its budget: the bound covers both kinds.
    results = [await gc.run_once() for _ in range(8)]
    assert all(r.orphans_deleted + r.unreferenced_deleted <= 2 for r in results)
    assert results[0].orphans_deleted == 2
    assert sum(r.orphans_deleted for r in results) == len(orphans)
    assert await env.keys() == set()


async def test_listing_pages_resume_where_the_last_cycle_stopped(env: Env) -> None:
    committed = []
    for _ in range(6):
        f = await env.put_file(age_ms=0)
        assert (await env.meta.commit_file(f, [_batch()]))[0].error_code == 0
        committed.append(f)
    orphan = await env.put_file(age_ms=0)  # newest key: listed last
    gc = env.gc(list_per_cycle_max=3)
    env.now_ms += 2 * GRACE_MS
    results = [await gc.run_once() for _ in range(3)]
    assert [r.examined for r in results] == [3, 3, 1]
    assert [r.orphans_deleted for r in results] == [0, 0, 1]
    keys = await env.keys()
    assert orphan.key not in keys and keys == {f.key for f in committed}


async def test_keys_not_written_by_shoal_are_left_alone(env: Env) -> None:
    foreign = ["segments/readme.txt", "segments/2020/01/01/NOTANID.seg"]
    for key in foreign:
        await env.store.put_create(key, b"x")
    env.now_ms += 2 * GRACE_MS
    result = await env.gc().run_once()
    assert result.orphans_deleted == 0
    assert await env.keys() == set(foreign)


async def test_start_and_stop_run_cycles_in_the_background(env: Env) -> None:
    orphan = await env.put_file(age_ms=0)
    env.now_ms += 2 * GRACE_MS
    gc = env.gc(interval_ms=10)
    gc.start()
    try:
        # Until the cycle that deleted the orphan has finished, not just deleted it: a stop
        # between the delete and the end of that cycle leaves it uncounted (seen in a full
        # run on PostgreSQL). Up to 30 s.
        for _ in range(3000):
            if orphan.key not in await env.keys() and gc.stats["orphans_deleted"] >= 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await gc.stop()
    assert orphan.key not in await env.keys()
    assert gc.stats["cycles"] >= 1 and gc.stats["orphans_deleted"] == 1


async def test_two_collectors_at_once_delete_each_orphan_once(env: Env) -> None:
    """Agents with the jobs role run GC side by side: claims decide who deletes what."""
    orphans = [await env.put_file(age_ms=0) for _ in range(12)]
    env.now_ms += 2 * GRACE_MS
    first, second = env.gc(files_per_cycle_max=5), env.gc(files_per_cycle_max=5)
    for _ in range(4):
        a, b = await asyncio.gather(first.run_once(), second.run_once())
        assert a.errors == 0 and b.errors == 0
    assert await env.keys() == set()
    assert first.stats["orphans_deleted"] + second.stats["orphans_deleted"] == len(orphans)


class _KnowingStore:
    """The real store plus `known_files` (answered from the commits made through it), counting
    commit_file calls: shows the orphan scan uses the one read instead of claim attempts."""

    def __init__(self, inner: MetadataStore) -> None:
        self._inner = inner
        self.recorded: set[str] = set()
        self.commit_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_file(self, file: FileInfo, batches: list[PendingBatch]) -> Any:
        self.commit_calls += 1
        outcomes = await self._inner.commit_file(file, batches)
        self.recorded.add(file.file_id)
        return outcomes

    async def known_files(self, file_ids: list[str]) -> set[str]:
        return self.recorded & set(file_ids)


async def test_known_files_spares_claims_of_committed_files(env: Env) -> None:
    knowing = _KnowingStore(env.meta)
    committed = [await env.put_file(age_ms=0) for _ in range(4)]
    for f in committed:
        await knowing.commit_file(f, [_batch()])
    orphan = await env.put_file(age_ms=0)
    env.now_ms += 2 * GRACE_MS
    gc = GarbageCollector(
        env.store,
        cast(MetadataStore, knowing),
        interval_ms=1000,
        grace_ms=GRACE_MS,
        clock_ms=lambda: env.now_ms,
    )
    calls_before = knowing.commit_calls
    result = await gc.run_once()
    assert result.orphans_deleted == 1 and result.examined == 5
    assert knowing.commit_calls - calls_before == 1, "claimed files the store already knew"
    assert await env.keys() == {f.key for f in committed}
    assert orphan.key not in await env.keys()


class _HeldCommits:
    """The metadata store of an agent whose commits stall (a paused process, a store outage):
    `commit_files` waits for `release` before it reaches the store."""

    def __init__(self, inner: MetadataStore) -> None:
        self._inner = inner
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        self.waiting.set()
        await self.release.wait()
        return await self._inner.commit_files(files)


async def test_a_commit_that_outlives_the_claim_is_refused(env: Env, db_url: str) -> None:
    """Issue 12 item 4. The GC claims an orphan, deletes it, and a grace later forgets the
    claim; a writer's commit of that file arriving after all this must not index the deleted
    object (on the old code it did: KAFKA_STORAGE_ERROR at those offsets forever). The writer
    gives the commit half a grace from the seal; the store refuses it after that."""
    # The late agent's store reads the same clock the test moves for the collector.
    late_store = open_metadata_store(db_url, clock=lambda: env.now_ms)
    await late_store.start()
    held = _HeldCommits(late_store)
    writer = SegmentWriter(
        env.store,
        cast(MetadataStore, held),
        flush_interval_ms=1,
        flush_bytes_max=1 << 20,
        uploads_in_flight_max=1,
        buffer_bytes_max=1 << 20,
        on_commit=lambda _: None,
        commit_within_ms=GRACE_MS // 2,
    )
    await writer.start()
    try:
        data = make_batch([(None, b"value")])
        append = asyncio.create_task(
            writer.append([AppendItem("t", 0, data, parse_header(data))])
        )
        await asyncio.wait_for(held.waiting.wait(), 10)
        assert len(await env.keys()) == 1  # uploaded, its commit stalled
        gc = env.gc()
        env.now_ms = int(time.time() * 1000) + 2 * GRACE_MS
        assert (await gc.run_once()).orphans_deleted == 1
        env.now_ms += 2 * GRACE_MS
        assert (await gc.run_once()).unreferenced_deleted == 1
        assert await env.keys() == set()
        held.release.set()
        assert await asyncio.wait_for(append, 10) == [BatchOutcome(REQUEST_TIMED_OUT, -1)]
        assert await env.meta.partition_state("t", 0) == PartitionState(0, 0)
        assert await env.meta.read_batches("t", 0, 0, 1 << 20) == []
    finally:
        await writer.close()
        await late_store.close()
