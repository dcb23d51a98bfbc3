from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypedDict, Unpack, cast

import pytest
from crc32c import crc32c
from obstore.store import MemoryStore

from shoal.meta.store import BatchOutcome, FileInfo, MetadataError, PendingBatch
from shoal.objstore import ObjectStore, ObjectStoreError
from shoal.protocol.batch import BatchHeader, parse_header
from shoal.write.segment_format import decode_segment, file_id_ms
from shoal.write.writer import AppendItem, SegmentWriter
from tests.unit.batchgen import make_batch

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore

SLOW = 60_000  # an interval/timeout no test waits for


class Marks(list[tuple[str, int, int]]):
    """What on_commit reported, in call order."""


class WriterLimits(TypedDict, total=False):
    """The SegmentWriter limits a test may override; typed so `**` keeps each keyword's type."""

    flush_interval_ms: int
    flush_bytes_max: int
    uploads_in_flight_max: int
    buffer_bytes_max: int
    backpressure_timeout_ms: int
    commit_timeout_ms: int


class FakeMeta:
    """commit_files only: assigns offsets per partition in list order, records every file
    committed and every transaction (group) it was committed in."""

    def __init__(self) -> None:
        self.next_offset: dict[tuple[str, int], int] = {}
        self.commits: list[tuple[FileInfo, list[PendingBatch]]] = []
        self.groups: list[list[str]] = []
        self.fail_commits = 0

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        await asyncio.sleep(0)
        if self.fail_commits:
            self.fail_commits -= 1
            raise MetadataError("database went away")
        results = []
        for file, batches in files:
            out = []
            for b in batches:
                key = (b.topic, b.partition)
                base = self.next_offset.get(key, 0)
                self.next_offset[key] = base + b.record_count
                out.append(BatchOutcome(0, base))
            self.commits.append((file, batches))
            results.append(out)
        self.groups.append([f.file_id for f, _ in files])
        return results


class GatedStore(ObjectStore):
    """A memory store whose puts can be held back or failed, in call order."""

    def __init__(self) -> None:
        super().__init__(MemoryStore(), url="memory://", timeout_ms=5_000)
        self.gates: list[asyncio.Event | None] = []
        self.failures: set[int] = set()
        self.puts = 0
        self.uploaded: list[str] = []

    async def put_create(self, key: str, data: bytes | memoryview) -> None:
        n = self.puts
        self.puts += 1
        gate = self.gates[n] if n < len(self.gates) else None
        if gate is not None:
            await gate.wait()
        if n in self.failures:
            raise ObjectStoreError("503 after retries")
        await super().put_create(key, data)
        self.uploaded.append(key)


def item(topic: str, partition: int, size: int = 1024, records: int = 1) -> AppendItem:
    """A real v2 batch of exactly `size` bytes."""
    value_len = size - 70
    for _ in range(5):
        records_kv: list[tuple[bytes | None, bytes | None]] = [(None, b"v" * value_len)]
        records_kv += [(None, b"x")] * (records - 1)
        data = make_batch(records_kv)
        if len(data) == size:
            return AppendItem(topic, partition, data, parse_header(data))
        value_len -= len(data) - size
    raise AssertionError(f"cannot build a {size}-byte batch")


def fake_item(topic: str, partition: int, size: int) -> AppendItem:
    header = BatchHeader(0, size - 12, -1, 2, 0, 0, 0, 1, 1, -1, -1, -1, 1)
    return AppendItem(topic, partition, b"\0" * size, header)


def make_writer(
    store: ObjectStore,
    meta: FakeMeta,
    marks: Marks | None = None,
    **limits: Unpack[WriterLimits],
) -> SegmentWriter:
    on_commit: Callable[[list[tuple[str, int, int]]], None] = (
        marks.extend if marks is not None else (lambda _: None)
    )
    params: WriterLimits = {
        "flush_interval_ms": SLOW,
        "flush_bytes_max": 1 << 20,
        "uploads_in_flight_max": 4,
        "buffer_bytes_max": 16 << 20,
    } | limits
    return SegmentWriter(store, cast("MetadataStore", meta), on_commit=on_commit, **params)


async def until(cond: Callable[[], bool]) -> None:
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_size_seal_commits_one_file() -> None:
    store, meta, marks = GatedStore(), FakeMeta(), Marks()
    writer = make_writer(store, meta, marks, flush_bytes_max=2048)
    await writer.start()
    a, b = item("t", 0), item("t", 1)
    ra, rb = await asyncio.gather(writer.append([a]), writer.append([b]))
    assert ra == [BatchOutcome(0, 0)] and rb == [BatchOutcome(0, 0)]
    assert writer.stats["flushes_size"] == 1 and writer.stats["flushes_time"] == 0
    assert len(meta.commits) == 1 and len(meta.commits[0][1]) == 2
    assert sorted(marks) == [("t", 0, 1), ("t", 1, 1)]
    assert writer.buffered_bytes == 0
    await writer.close()


async def test_one_append_never_splits_across_files() -> None:
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta, flush_bytes_max=3000, flush_interval_ms=5)
    await writer.start()
    first = asyncio.create_task(writer.append([fake_item("t", 0, 2000)]))
    await asyncio.sleep(0)
    # 2000 + 2 x 1000 does not fit 3000: the open segment is sealed, the pair goes on together.
    second = await writer.append([fake_item("t", 0, 1000), fake_item("t", 1, 1000)])
    await first
    assert [o.error_code for o in second] == [0, 0]
    assert [len(batches) for _, batches in meta.commits] == [1, 2]
    # One append larger than flush_bytes_max still gets a file of its own.
    big = await writer.append([fake_item("t", 0, 5000)])
    assert big == [BatchOutcome(0, 2)]
    await writer.close()


async def test_time_seal() -> None:
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta, flush_interval_ms=10)
    await writer.start()
    out = await writer.append([item("t", 0, records=3)])
    assert out == [BatchOutcome(0, 0)]
    assert writer.stats["flushes_time"] == 1 and writer.stats["flushes_size"] == 0
    out = await writer.append([item("t", 0)])
    assert out == [BatchOutcome(0, 3)]  # the 3-record batch took offsets 0..2
    await writer.close()


async def test_seal_spacing_one_interval_after_previous_seal() -> None:
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta, flush_interval_ms=SLOW)
    await writer.start()
    # After a quiet spell the first segment is sealed at once, not an interval later.
    assert await asyncio.wait_for(writer.append([item("t", 0)]), 5) == [BatchOutcome(0, 0)]
    # The next one waits for the interval since that seal: at most one PUT per interval.
    second = asyncio.create_task(writer.append([item("t", 0)]))
    await asyncio.sleep(0.05)
    assert not second.done() and len(meta.commits) == 1
    await writer.close()  # close seals what is open
    assert await second == [BatchOutcome(0, 1)]
    assert writer.stats["flushes_close"] == 1


async def test_commits_follow_seal_order_despite_slow_upload() -> None:
    store, meta, marks = GatedStore(), FakeMeta(), Marks()
    slow = asyncio.Event()
    store.gates = [slow, None, None]
    writer = make_writer(store, meta, marks, flush_bytes_max=1024)
    await writer.start()
    tasks = [asyncio.create_task(writer.append([item("t", 0)])) for _ in range(3)]
    # Files 2 and 3 reach the store while file 1 is still uploading...
    await until(lambda: len(store.uploaded) == 2)
    await asyncio.sleep(0.01)
    # ...but nothing is committed or answered before file 1 is.
    assert meta.commits == []
    assert not any(t.done() for t in tasks)
    slow.set()
    results = await asyncio.gather(*tasks)
    assert [r[0].base_offset for r in results] == [0, 1, 2]
    committed = [f.key for f, _ in meta.commits]
    assert len(committed) == 3
    assert store.uploaded[-1] == committed[0]
    # Seal order == commit order == file id order.
    assert committed == sorted(committed)
    ids = [f.file_id for f, _ in meta.commits]
    assert [file_id_ms(i) for i in ids] == sorted(file_id_ms(i) for i in ids)
    # Files 2 and 3 were uploaded by the time file 1 was: one group commit for all three.
    assert meta.groups == [ids]
    assert marks == [("t", 0, 3)]
    await writer.close()


async def test_group_commit_takes_only_uploaded_segments() -> None:
    store, meta, marks = GatedStore(), FakeMeta(), Marks()
    gate_first, gate_third = asyncio.Event(), asyncio.Event()
    store.gates = [gate_first, None, gate_third]
    writer = make_writer(store, meta, marks, flush_bytes_max=1024)
    await writer.start()
    tasks = [asyncio.create_task(writer.append([item("t", 0)])) for _ in range(3)]
    await until(lambda: len(store.uploaded) == 1)
    gate_first.set()
    # Files 1 and 2 commit together; file 3, still uploading, waits for its own commit.
    await until(lambda: tasks[0].done() and tasks[1].done())
    assert [len(g) for g in meta.groups] == [2]
    assert not tasks[2].done()
    gate_third.set()
    results = await asyncio.gather(*tasks)
    assert [r[0].base_offset for r in results] == [0, 1, 2]
    assert [len(g) for g in meta.groups] == [2, 1]
    assert writer.stats["commits"] == 2
    await writer.close()


async def test_failed_upload_answers_retriable_and_commits_nothing() -> None:
    store, meta, marks = GatedStore(), FakeMeta(), Marks()
    store.failures = {0}
    writer = make_writer(store, meta, marks, flush_bytes_max=1024)
    await writer.start()
    failed, ok = await asyncio.gather(
        writer.append([item("t", 0)]), writer.append([item("t", 0)])
    )
    assert failed == [BatchOutcome(56, -1)]  # KAFKA_STORAGE_ERROR, retriable
    assert ok == [BatchOutcome(0, 0)]  # later files proceed; offset 0 was never used
    assert len(meta.commits) == 1
    assert marks == [("t", 0, 1)]
    assert writer.stats["upload_failures"] == 1
    assert writer.buffered_bytes == 0
    await writer.close()


async def test_failed_commit_answers_retriable() -> None:
    store, meta, marks = GatedStore(), FakeMeta(), Marks()
    meta.fail_commits = 1
    writer = make_writer(store, meta, marks, flush_interval_ms=1)
    await writer.start()
    assert await writer.append([item("t", 0), item("u", 3)]) == [BatchOutcome(7, -1)] * 2
    assert meta.commits == [] and marks == []
    assert await writer.append([item("t", 0)]) == [BatchOutcome(0, 0)]
    assert writer.stats["commit_failures"] == 1
    await writer.close()


async def test_close_flushes_and_then_refuses() -> None:
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta)  # neither size nor time would seal
    await writer.start()
    pending = [asyncio.create_task(writer.append([item("t", p)])) for p in range(3)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in pending)
    await writer.close()
    assert all(t.done() and t.result()[0].error_code == 0 for t in pending)
    assert writer.stats["flushes_close"] == 1
    assert len(store.uploaded) == 1
    # NOT_LEADER_OR_FOLLOWER: retriable, and the client looks for another agent.
    assert await writer.append([item("t", 0)]) == [BatchOutcome(6, -1)]
    await writer.close()  # idempotent


async def test_backpressure_bounds_buffered_bytes() -> None:
    store, meta = GatedStore(), FakeMeta()
    gate = asyncio.Event()
    store.gates = [gate]
    writer = make_writer(store, meta, flush_bytes_max=2048, buffer_bytes_max=2048)
    await writer.start()
    first = [asyncio.create_task(writer.append([item("t", 0)])) for _ in range(2)]
    await until(lambda: store.puts == 1)
    third = asyncio.create_task(writer.append([item("t", 0)]))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert writer.stats["backpressure_waits"] == 1
    assert writer.buffered_bytes == 2048
    gate.set()
    await asyncio.gather(*first)
    await until(lambda: writer.stats["appends"] == 3)
    assert writer.buffered_bytes == 1024
    await writer.close()
    assert (await third) == [BatchOutcome(0, 2)]
    assert writer.buffered_bytes == 0


async def test_backpressure_wait_times_out_with_retriable_error() -> None:
    store, meta = GatedStore(), FakeMeta()
    gate = asyncio.Event()
    store.gates = [gate]
    writer = make_writer(
        store, meta, flush_bytes_max=1024, buffer_bytes_max=1024, backpressure_timeout_ms=20
    )
    await writer.start()
    held = asyncio.create_task(writer.append([item("t", 0)]))
    await until(lambda: store.puts == 1)
    assert await writer.append([item("t", 0)]) == [BatchOutcome(7, -1)]
    assert writer.stats["backpressure_timeouts"] == 1
    gate.set()
    assert (await held) == [BatchOutcome(0, 0)]
    await writer.close()
    assert writer.buffered_bytes == 0


async def test_uploaded_file_decodes_to_committed_batches() -> None:
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta, flush_interval_ms=5)
    await writer.start()
    items = [item(f"topic-{i % 2}", i % 3, size=300 + i * 10, records=1 + i % 4) for i in range(9)]
    out = await asyncio.gather(
        writer.append(items[:4]), writer.append(items[4:7]), writer.append(items[7:])
    )
    assert all(o.error_code == 0 for r in out for o in r)
    assert len(meta.commits) == 1
    file, pending = meta.commits[0]

    data = await store.get(file.key)
    assert len(data) == file.size
    entries = decode_segment(data)
    assert sorted((e.topic, e.partition, e.byte_pos) for e in entries) == sorted(
        (p.topic, p.partition, p.byte_pos) for p in pending
    )
    originals = {bytes(i.data) for i in items}
    for e in entries:
        batch = data[e.byte_pos : e.byte_pos + e.byte_len]
        assert batch in originals
        header = parse_header(batch)
        assert header.crc == crc32c(batch[21:])
        assert e.record_count == header.last_offset_delta + 1
        assert e.max_timestamp == header.max_timestamp
    # Each partition's batches sit in one contiguous chunk.
    spans: dict[tuple[str, int], list[int]] = {}
    for e in sorted(entries, key=lambda e: e.byte_pos):
        spans.setdefault((e.topic, e.partition), []).append(e.byte_pos)
    order = [k for e in sorted(entries, key=lambda e: e.byte_pos) for k in [(e.topic, e.partition)]]
    chunks = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert len(chunks) == len(spans)
    await writer.close()


async def test_each_batch_is_committed_with_the_topic_id_it_was_validated_against() -> None:
    """Issue 12 item 3: the store refuses a batch whose topic was re-created since; for that
    the id must reach it, batch by batch, through the segment (which groups by partition)."""
    store, meta = GatedStore(), FakeMeta()
    writer = make_writer(store, meta, flush_interval_ms=5)
    await writer.start()
    ids = [uuid.uuid4() for _ in range(3)]
    # Two ids for one name: appends validated before and after a re-create, in one segment.
    items = [
        replace(item("t", 0), topic_id=ids[0]),
        replace(item("u", 1), topic_id=ids[1]),
        replace(item("t", 0), topic_id=ids[2]),
        item("u", 0),
    ]
    await asyncio.gather(writer.append(items[:2]), writer.append(items[2:]))
    assert len(meta.commits) == 1
    pending = meta.commits[0][1]
    assert [(p.topic, p.partition, p.topic_id) for p in pending] == [
        ("t", 0, ids[0]),
        ("u", 1, ids[1]),
        ("t", 0, ids[2]),
        ("u", 0, None),
    ]
    await writer.close()


async def test_append_before_start_is_refused() -> None:
    writer = make_writer(GatedStore(), FakeMeta())
    assert await writer.append([item("t", 0)]) == [BatchOutcome(6, -1)]


@pytest.mark.parametrize("bad", [{"flush_bytes_max": 0}, {"buffer_bytes_max": 0}])
def test_limits_must_be_positive(bad: WriterLimits) -> None:
    with pytest.raises(ValueError):
        make_writer(GatedStore(), FakeMeta(), None, **bad)


async def test_cancelled_appends_keep_accounting_straight() -> None:
    store, meta = GatedStore(), FakeMeta()
    gate = asyncio.Event()
    store.gates = [gate]
    writer = make_writer(store, meta, flush_bytes_max=1024, buffer_bytes_max=1024)
    await writer.start()
    committed = asyncio.create_task(writer.append([item("t", 0)]))
    await until(lambda: store.puts == 1)
    queued = asyncio.create_task(writer.append([item("t", 0)]))
    await until(lambda: writer.stats["backpressure_waits"] == 1)
    # The clients go away: one while its file uploads, one while waiting for buffer space.
    committed.cancel()
    queued.cancel()
    await asyncio.gather(committed, queued, return_exceptions=True)
    gate.set()
    await until(lambda: len(meta.commits) == 1)
    await until(lambda: writer.buffered_bytes == 0)
    # The first batch was still committed (offset 0); the queued one never entered a file.
    assert await writer.append([item("t", 0)]) == [BatchOutcome(0, 1)]
    await writer.close()


async def test_failing_on_commit_callback_does_not_stop_the_pipeline() -> None:
    store, meta = GatedStore(), FakeMeta()

    def explode(_: list[tuple[str, int, int]]) -> None:
        raise RuntimeError("listener bug")

    writer = SegmentWriter(
        store,
        cast("MetadataStore", meta),
        flush_interval_ms=1,
        flush_bytes_max=1 << 20,
        uploads_in_flight_max=1,
        buffer_bytes_max=1 << 20,
        on_commit=explode,
    )
    await writer.start()
    assert await writer.append([item("t", 0)]) == [BatchOutcome(0, 0)]
    assert await writer.append([item("t", 0)]) == [BatchOutcome(0, 1)]
    await writer.close()


async def test_on_uploaded_sees_each_stored_file_once_and_no_failed_one() -> None:
    store, meta = GatedStore(), FakeMeta()
    store.failures = {0}
    seen: list[tuple[str, int]] = []
    writer = SegmentWriter(
        store,
        cast("MetadataStore", meta),
        flush_interval_ms=1,
        flush_bytes_max=1 << 20,
        uploads_in_flight_max=4,
        buffer_bytes_max=16 << 20,
        on_commit=lambda _: None,
        on_uploaded=lambda key, data: seen.append((key, len(data))),
    )
    await writer.start()
    failed = await writer.append([item("t", 0)])
    assert failed[0].error_code != 0  # the first PUT fails: nothing to warm
    ok = await writer.append([item("t", 0)])
    assert ok[0].error_code == 0
    await writer.close()
    assert [key for key, _ in seen] == store.uploaded
    assert len(seen) == 1 and seen[0][1] == len(await store.get(seen[0][0]))
