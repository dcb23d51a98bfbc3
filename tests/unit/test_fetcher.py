from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Sequence
from dataclasses import replace

import crc32c
import pytest

from shoal.meta.store import BatchRow, PartitionState
from shoal.protocol import errors
from shoal.read.block_cache import BlockCache, Chunk, spanned_bytes
from shoal.read.fetcher import FetchReader, PartitionFetch, PartitionRead, patch_base_offset
from shoal.read.waiters import PartitionWaiters


def make_batch(record_count: int, payload: bytes) -> bytes:
    """A v2 RecordBatch as a client sends it (baseOffset 0); records are opaque here."""
    after_crc = (
        struct.pack(
            ">hiqqqhii", 0, record_count - 1, 1000, 1000 + record_count, -1, -1, -1, record_count
        )
        + payload
    )
    crc = crc32c.crc32c(after_crc)
    body = struct.pack(">ibI", 0, 2, crc) + after_crc  # leaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def split(chunks: Sequence[Chunk]) -> list[bytes]:
    """The batches in a partition's record set (chunks are pieces to concatenate)."""
    data = b"".join(chunks)
    out = []
    pos = 0
    while pos < len(data):
        size = 12 + struct.unpack_from(">i", data, pos + 8)[0]
        out.append(data[pos : pos + size])
        pos += size
    assert pos == len(data)
    return out


def offsets(chunks: Sequence[Chunk]) -> list[int]:
    return [base_offset(b) for b in split(chunks)]


def base_offset(batch: bytes) -> int:
    return int(struct.unpack_from(">q", batch)[0])


def crc_ok(batch: bytes) -> bool:
    return bool(struct.unpack_from(">I", batch, 17)[0] == crc32c.crc32c(batch[21:]))


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.counts = {"get_range": 0}
        self.fail = False

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        self.counts["get_range"] += 1
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("store down")
        return self.objects[key][start:end]


class FakeMeta:
    """Partitions and index rows as the metadata store would hold them after commits."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.states: dict[tuple[str, int], PartitionState] = {}
        self.rows: dict[tuple[str, int], list[BatchRow]] = {}
        self.files = 0
        self.state_reads = 0
        self.fail = False

    def create(self, topic: str, partitions: int) -> None:
        for p in range(partitions):
            self.states[(topic, p)] = PartitionState(0, 0)
            self.rows[(topic, p)] = []

    def commit(self, batches: list[tuple[str, int, bytes]]) -> str:
        """Write one segment file holding `batches` and index them, like the write path."""
        key = f"seg/{self.files}.seg"
        self.files += 1
        data = bytearray(b"SHOALSEG")  # a header so batch positions are not 0
        placed = []
        for topic, partition, batch in batches:
            placed.append((topic, partition, len(data), batch))
            data += batch
        self.store.objects[key] = bytes(data)
        for topic, partition, pos, batch in placed:
            count = struct.unpack_from(">i", batch, 57)[0]
            st = self.states[(topic, partition)]
            self.rows[(topic, partition)].append(
                BatchRow(
                    st.high_watermark,
                    st.high_watermark + count - 1,
                    key,
                    len(data),
                    pos,
                    len(batch),
                    count,
                    0,
                )
            )
            self.states[(topic, partition)] = PartitionState(
                st.log_start_offset, st.high_watermark + count
            )
        return key

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        self.state_reads += 1
        await asyncio.sleep(0)
        return self.states.get((topic, partition))

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]:
        self.state_reads += 1
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("metadata store down")
        return {k: self.states[k] for k in keys if k in self.states}

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        await asyncio.sleep(0)
        out: list[BatchRow] = []
        total = 0
        for row in self.rows.get((topic, partition), []):
            if row.last_offset < offset:
                continue
            if out and (total >= max_bytes or len(out) >= max_batches):
                break
            out.append(row)
            total += row.byte_len
        return out


class CountingSource:
    def __init__(self, inner: BlockCache) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []

    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> Sequence[Chunk]:
        self.calls.append((key, len(ranges)))
        return await self.inner.read_ranges(key, file_size, ranges)


@pytest.fixture
def parts() -> tuple[FakeStore, FakeMeta, CountingSource, PartitionWaiters, FetchReader]:
    store = FakeStore()
    meta = FakeMeta(store)
    meta.create("t", 3)
    source = CountingSource(BlockCache(store, 64, 1 << 20))
    waiters = PartitionWaiters()
    reader = FetchReader(meta, source, waiters, poll_interval_s=None)
    return store, meta, source, waiters, reader


Parts = tuple[FakeStore, FakeMeta, CountingSource, PartitionWaiters, FetchReader]


def payload(i: int, size: int = 30) -> bytes:
    return bytes([i % 256]) * size


async def test_offset_inside_batch_returns_whole_patched_batch(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    b0, b1 = make_batch(5, payload(1)), make_batch(3, payload(2))
    meta.commit([("t", 0, b0), ("t", 0, b1)])
    r = await reader.read_partition("t", 0, 6, 1 << 20)  # inside b1 (offsets 5..7)
    assert (r.error_code, r.high_watermark, r.log_start_offset) == (0, 8, 0)
    assert len(split(r.batches)) == 1
    got = split(r.batches)[0]
    assert base_offset(got) == 5
    assert got[8:] == b1[8:]
    assert crc_ok(got)
    assert r.byte_count == len(b1)


async def test_batches_in_offset_order_with_correct_offsets(parts: Parts) -> None:
    _, meta, source, _, reader = parts
    batches = [make_batch(2, payload(i, 40)) for i in range(6)]
    # Three files; each holds batches of two partitions interleaved.
    for i in range(0, 6, 2):
        meta.commit([("t", 0, batches[i]), ("t", 1, batches[i]), ("t", 0, batches[i + 1])])
    r = await reader.read_partition("t", 0, 0, 1 << 20)
    assert offsets(r.batches) == [0, 2, 4, 6, 8, 10]
    assert [b[8:] for b in split(r.batches)] == [b[8:] for b in batches]
    assert all(crc_ok(b) for b in split(r.batches))
    assert len(source.calls) == 3  # one call per file
    assert all(n == 2 for _, n in source.calls)


async def test_max_bytes_limits_but_returns_first_batch(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    batches = [make_batch(1, payload(i, 100)) for i in range(5)]
    meta.commit([("t", 0, b) for b in batches])
    size = len(batches[0])
    r = await reader.read_partition("t", 0, 0, 2 * size + 10)
    assert offsets(r.batches) == [0, 1]
    r = await reader.read_partition("t", 0, 0, 10)  # smaller than one batch
    assert offsets(r.batches) == [0]
    assert r.byte_count == size


async def test_out_of_range_unknown_and_empty(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    meta.commit([("t", 0, make_batch(4, payload(1)))])
    meta.states[("t", 0)] = PartitionState(2, 4)  # retention moved the log start
    r = await reader.read_partition("t", 0, 1, 1000)
    assert (r.error_code, r.high_watermark, r.log_start_offset) == (1, 4, 2)
    r = await reader.read_partition("t", 0, 5, 1000)
    assert r.error_code == 1
    r = await reader.read_partition("t", 0, 4, 1000)
    assert (r.error_code, r.batches, r.high_watermark) == (0, [], 4)
    r = await reader.read_partition("nope", 0, 0, 1000)
    assert r.error_code == 3
    r = await reader.read_partition("t", 9, 0, 1000)
    assert r.error_code == 3


async def test_a_fetch_by_an_old_topic_id_is_unknown_topic_id(parts: Parts) -> None:
    """Issue 12 item 3: a v13+ fetch names the topic by id; once the topic of that name has
    another id (deleted, re-created), its data must not answer for the old id."""
    _, meta, _, _, reader = parts
    meta.commit([("t", 0, make_batch(2, payload(1)))])
    current, old = uuid.uuid4(), uuid.uuid4()
    meta.states[("t", 0)] = PartitionState(0, 2, current)
    stale, fresh = (PartitionFetch("t", 0, 0, 1 << 20, topic_id=i) for i in (old, current))
    by_old, by_new, by_name = await reader.fetch(
        [stale, fresh, PartitionFetch("t", 0, 0, 1 << 20)], 1 << 20, 0, 0
    )
    assert (by_old.error_code, by_old.batches) == (errors.UNKNOWN_TOPIC_ID, [])
    assert by_new.error_code == 0 and offsets(by_new.batches) == [0]
    assert by_name.error_code == 0 and offsets(by_name.batches) == [0]


async def test_rows_beyond_reported_watermark_are_left_out(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    meta.commit([("t", 0, make_batch(2, payload(1)))])
    meta.commit([("t", 0, make_batch(2, payload(2)))])
    meta.states[("t", 0)] = PartitionState(0, 2)  # state read before the second commit
    r = await reader.read_partition("t", 0, 0, 1 << 20)
    assert offsets(r.batches) == [0]
    assert r.high_watermark == 2


async def test_fetch_response_limit_across_partitions(parts: Parts) -> None:
    _, meta, source, _, reader = parts
    big = make_batch(1, payload(9, 300))
    small = make_batch(1, payload(8, 20))
    meta.commit([("t", 0, big), ("t", 1, small), ("t", 1, small), ("t", 2, big)])
    reqs = [PartitionFetch("t", p, 0, 1 << 20) for p in range(3)]
    # The first non-empty partition may exceed the response limit; later ones get nothing.
    reads = await reader.fetch(reqs, max_bytes=100, min_bytes=1, max_wait_ms=0)
    assert [len(split(r.batches)) for r in reads] == [1, 0, 0]
    assert sum(r.byte_count for r in reads) == len(big)
    # Room for the small batches of partition 1 but not for partition 2's big one.
    reads = await reader.fetch(
        reqs, max_bytes=len(big) + 2 * len(small), min_bytes=1, max_wait_ms=0
    )
    assert [len(split(r.batches)) for r in reads] == [1, 2, 0]
    assert offsets(reads[1].batches) == [0, 1]
    # An empty first partition passes the exception on to the next non-empty one.
    reqs[0] = PartitionFetch("t", 0, 1, 1 << 20)
    reads = await reader.fetch(reqs[::2], max_bytes=10, min_bytes=1, max_wait_ms=0)
    assert [len(split(r.batches)) for r in reads] == [0, 1]
    # All partitions' batches of one file come through one read_ranges call.
    source.calls.clear()
    reqs = [PartitionFetch("t", p, 0, 1 << 20) for p in range(3)]
    reads = await reader.fetch(reqs, max_bytes=1 << 20, min_bytes=1, max_wait_ms=0)
    assert [len(split(r.batches)) for r in reads] == [1, 2, 1]
    assert source.calls == [("seg/0.seg", 3)]  # partition 1's adjacent batches: one range


async def test_adjacent_batches_read_as_one_range_and_each_patched(parts: Parts) -> None:
    _, meta, source, _, reader = parts
    batches = [make_batch(i + 1, payload(i, 10 + i)) for i in range(5)]
    meta.commit([("t", 0, b) for b in batches])  # offsets 0, 1, 3, 6, 10
    r = await reader.read_partition("t", 0, 2, 1 << 20)
    assert source.calls == [("seg/0.seg", 1)]
    got = split(r.batches)
    assert [base_offset(b) for b in got] == [1, 3, 6, 10]
    assert [b[8:] for b in got] == [b[8:] for b in batches[1:]]
    assert all(crc_ok(b) for b in got)
    assert r.byte_count == sum(map(len, batches[1:]))


async def test_partition_limit(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    b = make_batch(1, payload(3, 50))
    meta.commit([("t", 0, b)] * 4 + [("t", 1, b)] * 4)
    reqs = [PartitionFetch("t", 0, 0, 2 * len(b)), PartitionFetch("t", 1, 1, 1)]
    reads = await reader.fetch(reqs, max_bytes=1 << 20, min_bytes=1, max_wait_ms=0)
    assert offsets(reads[0].batches) == [0, 1]
    assert offsets(reads[1].batches) == [1]  # at least one per partition


async def test_long_poll_wakes_on_notify(parts: Parts) -> None:
    _, meta, _, waiters, reader = parts
    meta.commit([("t", 0, make_batch(2, payload(1)))])
    req = [PartitionFetch("t", 0, 2, 1 << 20), PartitionFetch("t", 1, 0, 1 << 20)]
    task = asyncio.create_task(reader.fetch(req, 1 << 20, min_bytes=1, max_wait_ms=60_000))
    await asyncio.sleep(0.02)
    assert not task.done()
    assert waiters.waiting_count() == 2
    meta.commit([("t", 0, make_batch(3, payload(2)))])
    waiters.notify("t", 0, 5)
    reads = await asyncio.wait_for(task, 10)
    assert offsets(reads[0].batches) == [2]
    assert reads[0].high_watermark == 5
    assert reads[1].batches == []
    assert waiters.waiting_count() == 0


async def test_long_poll_timeout_returns_empty(parts: Parts) -> None:
    _, meta, _, waiters, reader = parts
    meta.commit([("t", 0, make_batch(2, payload(1)))])
    reads = await reader.fetch([PartitionFetch("t", 0, 2, 1000)], 1000, 1, max_wait_ms=30)
    assert reads == [PartitionRead(0, 2, 0, [], 0)]
    assert waiters.waiting_count() == 0


async def test_min_bytes_not_reached_waits_for_more(parts: Parts) -> None:
    _, meta, _, waiters, reader = parts
    b = make_batch(1, payload(1, 50))
    meta.commit([("t", 0, b)])
    task = asyncio.create_task(
        reader.fetch([PartitionFetch("t", 0, 0, 1 << 20)], 1 << 20, 2 * len(b), 60_000)
    )
    await asyncio.sleep(0.02)
    assert not task.done()  # has one batch, wants two
    meta.commit([("t", 0, b)])
    waiters.notify("t", 0, 2)
    reads = await asyncio.wait_for(task, 10)
    assert offsets(reads[0].batches) == [0, 1]


async def test_long_poll_sees_other_agents_commits_by_polling(parts: Parts) -> None:
    _, meta, source, _, _ = parts
    waiters = PartitionWaiters()
    reader = FetchReader(meta, source, waiters, poll_interval_s=0.01)
    task = asyncio.create_task(reader.fetch([PartitionFetch("t", 0, 0, 1000)], 1000, 1, 60_000))
    await asyncio.sleep(0.02)
    meta.commit([("t", 0, make_batch(1, payload(1)))])  # no notify: another agent committed
    reads = await asyncio.wait_for(task, 10)
    assert offsets(reads[0].batches) == [0]
    assert waiters.latest[("t", 0)] == 1
    await reader.close()


async def test_waiting_fetches_share_one_poll(parts: Parts) -> None:
    _, meta, source, _, _ = parts
    waiters = PartitionWaiters()
    reader = FetchReader(meta, source, waiters, poll_interval_s=0.05)
    req = [PartitionFetch("t", 0, 0, 1000)]
    tasks = [asyncio.create_task(reader.fetch(req, 1000, 1, 60_000)) for _ in range(20)]
    while waiters.waiting_count() < 20:
        await asyncio.sleep(0.005)
    before = meta.state_reads
    meta.commit([("t", 0, make_batch(1, payload(1)))])  # another agent: no notify
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(offsets(r[0].batches) == [0] for r in results)
    # 20 re-reads after the wake-up, and the polls: one per interval for all 20, not one each.
    assert meta.state_reads - before <= 20 + 2
    await reader.close()


async def test_stale_known_watermark_does_not_spin(parts: Parts) -> None:
    _, meta, _, waiters, reader = parts
    waiters.notify("t", 0, 100)  # from before the topic was deleted and recreated
    reads = await reader.fetch([PartitionFetch("t", 0, 0, 1000)], 1000, 1, max_wait_ms=30)
    assert reads[0].batches == []
    assert meta.state_reads <= 3  # one early wake-up, then a real wait: no busy loop
    assert waiters.latest[("t", 0)] == 0


async def test_store_failure_gives_retriable_error(parts: Parts) -> None:
    store, meta, _, _, reader = parts
    meta.commit([("t", 0, make_batch(1, payload(1))), ("t", 1, make_batch(1, payload(1)))])
    store.fail = True
    reads = await reader.fetch(
        [PartitionFetch("t", 0, 0, 1000), PartitionFetch("t", 2, 0, 1000)], 1000, 1, 1000
    )
    assert reads[0].error_code == 56
    assert reads[0].batches == []
    assert reads[1].error_code == 0
    store.fail = False
    r = await reader.read_partition("t", 0, 0, 1000)
    assert (r.error_code, len(split(r.batches))) == (0, 1)


async def test_metadata_failure_gives_retriable_error_at_once(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    meta.fail = True
    reqs = [PartitionFetch("t", 0, 0, 1000), PartitionFetch("t", 1, 0, 1000)]
    reads = await reader.fetch(reqs, 1000, 1, max_wait_ms=60_000)
    assert [r.error_code for r in reads] == [56, 56]


async def test_one_state_query_per_fetch(parts: Parts) -> None:
    _, meta, _, _, reader = parts
    meta.commit([("t", p, make_batch(1, payload(p))) for p in range(3)])
    reqs = [PartitionFetch("t", p, 0, 1000) for p in range(3)]
    reads = await reader.fetch(reqs, 1 << 20, 1, max_wait_ms=0)
    assert [offsets(r.batches) for r in reads] == [[0], [0], [0]]
    assert meta.state_reads == 1


def test_patch_base_offset_keeps_crc() -> None:
    b = make_batch(3, payload(7))
    p = patch_base_offset(b, 1234567890123)
    assert base_offset(p) == 1234567890123
    assert p[8:] == b[8:]
    assert crc_ok(p)
    assert patch_base_offset(b, 0) is b  # already right: no copy


async def test_a_fetch_reserves_the_blocks_it_will_load_first(parts: Parts) -> None:
    """Issue 12 items 5 and 7: what a fetch loads (and may pin until its response is written)
    is held in a budget counted in whole blocks, taken before any block is read; with no room
    the fetch answers without data instead of loading."""
    store, meta, source, waiters, _ = parts
    reader = FetchReader(meta, source, waiters, poll_interval_s=None, block_bytes=64)
    meta.commit([("t", 0, make_batch(1, payload(i, 100))) for i in range(3)])
    meta.commit([("t", 1, make_batch(1, payload(9, 10)))])
    wanted = [PartitionFetch("t", 0, 0, 1 << 20), PartitionFetch("t", 1, 0, 1 << 20)]
    rows = meta.rows[("t", 0)] + meta.rows[("t", 1)]
    blocks = {(r.file_key, i): min(64, r.file_size - i * 64) for r in rows for i in range(
        r.byte_pos // 64, (r.byte_pos + r.byte_len - 1) // 64 + 1)}  # fmt: skip
    asked: list[int] = []
    gets_before = store.counts["get_range"]

    async def no_room(size: int) -> bool:
        asked.append(size)
        return False

    refused = await reader.fetch(wanted, 1 << 20, 0, 0, no_room)
    assert asked == [sum(blocks.values())]
    answered = [(r.error_code, r.batches, r.high_watermark) for r in refused]
    assert answered == [(0, [], 3), (0, [], 1)]
    assert store.counts["get_range"] == gets_before  # nothing was loaded

    async def room(size: int) -> bool:
        asked.append(size)
        return True

    served = await reader.fetch(wanted, 1 << 20, 0, 0, room)
    assert asked[-1] == sum(blocks.values())
    assert [offsets(r.batches) for r in served] == [[0, 1, 2], [0]]


def test_read_budgets_count_whole_blocks_touched() -> None:
    # One byte from each of 3 blocks of one file, two ranges in one block of another, one
    # range across a block boundary into a last block of 36 bytes, and an empty range.
    ranges = [("a", 1000, 0, 1), ("a", 1000, 64, 1), ("a", 1000, 640, 1), ("b", 64, 0, 10),
              ("b", 64, 20, 10), ("c", 100, 60, 10), ("c", 100, 0, 0)]  # fmt: skip
    assert spanned_bytes(64, ranges) == 3 * 64 + 64 + (64 + 36)


async def test_rows_that_compaction_moved_are_looked_up_again_after_a_failed_read() -> None:
    """A cached cover still points at a file that compaction replaced and the GC deleted: that
    read fails (retriable), and the next one looks the rows up afresh and finds the new file."""
    store = FakeStore()
    meta = FakeMeta(store)
    meta.create("t", 1)
    # Blocks of 64 bytes and room for two: nothing of the old file stays cached.
    reader = FetchReader(meta, BlockCache(store, 64, 128), PartitionWaiters(), poll_interval_s=None)
    batch = make_batch(2, payload(1, 300))
    old = meta.commit([("t", 0, batch)])
    assert (await reader.read_partition("t", 0, 0, 1 << 20)).error_code == 0
    merged = "seg/merged.seg"
    store.objects[merged] = b"SHOALSEG" + batch
    meta.rows[("t", 0)] = [
        replace(row, file_key=merged, file_size=8 + len(batch), byte_pos=8)
        for row in meta.rows[("t", 0)]
    ]
    del store.objects[old]
    failed = await reader.read_partition("t", 0, 0, 1 << 20)
    assert failed.error_code == errors.KAFKA_STORAGE_ERROR
    again = await reader.read_partition("t", 0, 0, 1 << 20)
    assert again.error_code == 0
    assert split(again.batches) == [patch_base_offset(batch, 0)]
