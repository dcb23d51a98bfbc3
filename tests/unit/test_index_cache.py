from __future__ import annotations

import uuid

from shoal.meta.store import BatchRow
from shoal.read.index_cache import IndexCache


class FakeIndex:
    """Index rows of partitions, answered like `MetadataStore.read_batches`; logs calls."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], list[BatchRow]] = {}
        self.calls: list[tuple[str, int, int]] = []

    def commit(self, topic: str, partition: int, counts: list[int], size: int = 100) -> int:
        rows = self.rows.setdefault((topic, partition), [])
        nxt = rows[-1].last_offset + 1 if rows else 0
        for c in counts:
            rows.append(BatchRow(nxt, nxt + c - 1, "f", 1 << 30, 8 + nxt * 10, size, c, 0))
            nxt += c
        return nxt  # the high watermark

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        self.calls.append((topic, partition, offset))
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_repeat_read_is_served_from_cache() -> None:
    meta = FakeIndex()
    hwm = meta.commit("t", 0, [1] * 10)
    cache = IndexCache(meta)
    first = await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    again = await cache.read_batches("t", 0, 3, 10_000, 100, hwm)
    assert [r.base_offset for r in first] == list(range(10))
    assert again == first[3:]
    assert meta.calls == [("t", 0, 0)]
    assert cache.stats()["hits"] == 1


async def test_offset_inside_batch_and_limits() -> None:
    meta = FakeIndex()
    hwm = meta.commit("t", 0, [5, 5, 5, 5])  # 0-4, 5-9, 10-14, 15-19
    cache = IndexCache(meta)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    rows = await cache.read_batches("t", 0, 7, 150, 100, hwm)  # bytes: stop once 150 reached
    assert [r.base_offset for r in rows] == [5, 10]
    rows = await cache.read_batches("t", 0, 7, 10_000, 1, hwm)
    assert [r.base_offset for r in rows] == [5]
    assert len(meta.calls) == 1


async def test_tailing_reads_extend_the_cover() -> None:
    meta = FakeIndex()
    hwm = meta.commit("t", 0, [2, 2])
    cache = IndexCache(meta)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    hwm = meta.commit("t", 0, [3])  # 4-6
    rows = await cache.read_batches("t", 0, 4, 10_000, 100, hwm)
    assert [r.base_offset for r in rows] == [4]
    assert meta.calls[-1] == ("t", 0, 4)
    rows = await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    assert [r.base_offset for r in rows] == [0, 2, 4]
    assert len(meta.calls) == 2  # the whole range came from the cache


async def test_cover_ending_early_reads_the_rest() -> None:
    meta = FakeIndex()
    hwm = meta.commit("t", 0, [1] * 4)
    cache = IndexCache(meta)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    hwm = meta.commit("t", 0, [1] * 4)
    rows = await cache.read_batches("t", 0, 2, 10_000, 100, hwm)
    assert [r.base_offset for r in rows] == [2, 3, 4, 5, 6, 7]
    assert meta.calls[-1] == ("t", 0, 4)
    assert await cache.read_batches("t", 0, 0, 10_000, 100, hwm) == meta.rows[("t", 0)]
    assert len(meta.calls) == 2


async def test_recreated_topic_is_detected() -> None:
    meta = FakeIndex()
    clock = Clock()
    cache = IndexCache(meta, clock=clock)
    hwm = meta.commit("t", 0, [1] * 10)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    # Deleted and recreated: new rows, lower watermark.
    meta.rows.clear()
    hwm = meta.commit("t", 0, [3], size=77)
    clock.now += 5
    rows = await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    assert [(r.base_offset, r.byte_len) for r in rows] == [(0, 77)]
    assert len(meta.calls) == 2


async def test_rows_of_a_deleted_topic_are_never_served_for_its_successor() -> None:
    """Issue 12 item 3: an agent that did not handle the delete had 100 rows cached; the topic
    came back under the same name with 200 new records (a higher watermark, so the cover still
    looked valid) and the old rows were served at offsets 0-99. Covers are per topic id."""
    meta = FakeIndex()
    cache = IndexCache(meta)
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    hwm = meta.commit("t", 0, [1] * 100)
    await cache.read_batches("t", 0, 0, 1 << 20, 1000, hwm, old_id)
    meta.rows.clear()
    hwm = meta.commit("t", 0, [2] * 100, size=77)
    rows = await cache.read_batches("t", 0, 0, 1 << 20, 1000, hwm, new_id)
    assert [(r.base_offset, r.byte_len) for r in rows] == [(2 * i, 77) for i in range(100)]
    assert len(meta.calls) == 2
    # The new topic's rows are cached under its own id from then on.
    again = await cache.read_batches("t", 0, 10, 1 << 20, 1000, hwm, new_id)
    assert again == rows[5:] and len(meta.calls) == 2


async def test_cover_newer_than_callers_state_is_kept() -> None:
    meta = FakeIndex()
    cache = IndexCache(meta)
    hwm = meta.commit("t", 0, [1] * 10)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    # A fetch whose partition state was read before the last commits.
    rows = await cache.read_batches("t", 0, 2, 10_000, 100, 5)
    assert rows[0].base_offset == 2
    assert len(meta.calls) == 1


async def test_ttl_expires_covers() -> None:
    meta = FakeIndex()
    clock = Clock()
    cache = IndexCache(meta, ttl_s=30, clock=clock)
    hwm = meta.commit("t", 0, [1] * 3)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    clock.now += 31
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    assert len(meta.calls) == 2


async def test_bounded_rows_lru_and_per_partition() -> None:
    meta = FakeIndex()
    cache = IndexCache(meta, rows_max=25, partition_rows_max=8)
    hwms = [meta.commit("t", p, [1] * 10) for p in range(4)]
    for p in range(4):
        await cache.read_batches("t", p, 0, 10_000, 100, hwms[p])
        assert cache.stats()["rows"] <= 25
    stats = cache.stats()
    assert stats["partitions"] == 4  # each partition trimmed to 6 rows: 24 in all
    assert stats["rows"] == 24
    # The trimmed front of partition 3 is gone, its tail is still cached.
    await cache.read_batches("t", 3, 9, 10_000, 100, hwms[3])
    assert len(meta.calls) == 4
    await cache.read_batches("t", 3, 0, 10_000, 100, hwms[3])
    assert len(meta.calls) == 5
    # One more partition pushes out the least recently used ones.
    hwm = meta.commit("t", 9, [1] * 8)
    await cache.read_batches("t", 9, 0, 10_000, 100, hwm)
    assert cache.stats()["rows"] <= 25
    await cache.read_batches("t", 0, 5, 10_000, 100, hwms[0])
    assert meta.calls[-1] == ("t", 0, 5)


async def test_forget() -> None:
    meta = FakeIndex()
    cache = IndexCache(meta)
    hwm = meta.commit("t", 0, [1] * 3)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    cache.forget("t")
    assert cache.stats()["rows"] == 0
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    assert len(meta.calls) == 2


async def test_gap_in_offsets() -> None:
    meta = FakeIndex()
    hwm = meta.commit("t", 0, [5, 5, 5])
    del meta.rows[("t", 0)][1]  # compaction removed offsets 5-9
    cache = IndexCache(meta)
    await cache.read_batches("t", 0, 0, 10_000, 100, hwm)
    rows = await cache.read_batches("t", 0, 7, 10_000, 100, hwm)
    assert [r.base_offset for r in rows] == [10]
    assert len(meta.calls) == 1
