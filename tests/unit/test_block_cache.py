from __future__ import annotations

import asyncio
import os
import tracemalloc

import pytest

from shoal.read.block_cache import BlockCache, ShortReadError


class FakeStore:
    """In-memory objects; counts ranged GETs, can hold them at a gate or fail them."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.counts: dict[str, int] = {"get_range": 0}
        self.calls: list[tuple[str, int, int]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = 0
        self.truncate = False

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        self.counts["get_range"] += 1
        self.calls.append((key, start, end))
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("boom")
        data = self.objects[key][start:end]
        return data[:-1] if self.truncate else data


BB = 1000


@pytest.fixture
def data() -> bytes:
    return os.urandom(3500)  # blocks: 0..999, 1000..1999, 2000..2999, 3000..3499 (partial)


@pytest.fixture
def store(data: bytes) -> FakeStore:
    return FakeStore({"f": data})


async def test_100_concurrent_readers_share_one_get(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    store.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.read("f", len(data), i, 10)) for i in range(100)]
    await asyncio.sleep(0.01)
    store.gate.set()
    results = await asyncio.gather(*tasks)
    assert store.counts["get_range"] == 1
    assert store.calls == [("f", 0, BB)]
    assert results == [data[i : i + 10] for i in range(100)]
    assert cache.stats()["joined_loads"] == 99


async def test_read_spanning_blocks(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    assert await cache.read("f", len(data), 900, 200) == data[900:1100]
    assert await cache.read("f", len(data), 500, 2600) == data[500:3100]
    assert sorted(store.calls) == [
        ("f", 0, 1000),
        ("f", 1000, 2000),
        ("f", 2000, 3000),
        ("f", 3000, 3500),
    ]
    # Everything now cached: no more GETs.
    assert await cache.read("f", len(data), 0, 3500) == data
    assert store.counts["get_range"] == 4


async def test_last_partial_block(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    assert await cache.read("f", len(data), 3400, 100) == data[3400:]
    assert store.calls == [("f", 3000, 3500)]
    assert await cache.read("f", len(data), 3000, 500) == data[3000:]
    assert store.counts["get_range"] == 1


async def test_whole_block_and_empty_ranges(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    assert await cache.read("f", len(data), 1000, 1000) == data[1000:2000]
    assert await cache.read("f", len(data), 5, 0) == b""
    with pytest.raises(ValueError):
        await cache.read("f", len(data), 3000, 501)
    with pytest.raises(ValueError):
        await cache.read("f", len(data), -1, 5)


async def test_read_ranges_loads_each_block_once(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    ranges = [(0, 10), (990, 20), (1500, 100), (2999, 2), (100, 5), (3490, 10), (7, 0)]
    out = await cache.read_ranges("f", len(data), ranges)
    assert out == [data[p : p + n] for p, n in ranges]
    assert store.counts["get_range"] == 4
    assert len(set(store.calls)) == 4


async def test_lru_eviction_respects_budget(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 2 * BB)
    await cache.read("f", len(data), 0, 1)  # block 0
    await cache.read("f", len(data), 1000, 1)  # block 1
    await cache.read("f", len(data), 0, 1)  # touch block 0: block 1 is now least recent
    await cache.read("f", len(data), 2000, 1)  # block 2 evicts block 1
    stats = cache.stats()
    assert stats["bytes"] <= 2 * BB
    assert stats["evictions"] == 1
    assert ("f", 0) in cache and ("f", 2) in cache and ("f", 1) not in cache
    gets = store.counts["get_range"]
    await cache.read("f", len(data), 0, 1)
    assert store.counts["get_range"] == gets  # block 0 stayed
    await cache.read("f", len(data), 1000, 1)
    assert store.counts["get_range"] == gets + 1  # block 1 had gone
    assert cache.stats()["bytes"] <= 2 * BB


async def test_block_larger_than_budget_served_not_cached(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, BB - 1)
    assert await cache.read("f", len(data), 0, 50) == data[:50]
    assert await cache.read("f", len(data), 0, 50) == data[:50]
    assert store.counts["get_range"] == 2
    assert cache.stats()["bytes"] == 0
    # The partial last block fits and is cached.
    await cache.read("f", len(data), 3000, 10)
    await cache.read("f", len(data), 3000, 10)
    assert store.counts["get_range"] == 3


async def test_failed_get_propagates_to_all_and_is_not_cached(
    store: FakeStore, data: bytes
) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    store.gate = asyncio.Event()
    store.fail_next = 1
    tasks = [asyncio.create_task(cache.read("f", len(data), i, 1)) for i in range(5)]
    await asyncio.sleep(0.01)
    store.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert store.counts["get_range"] == 1
    # A later read retries and succeeds.
    assert await cache.read("f", len(data), 0, 5) == data[:5]
    assert store.counts["get_range"] == 2
    assert cache.stats()["load_errors"] == 1


async def test_short_read_is_an_error(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    store.truncate = True
    with pytest.raises(ShortReadError):
        await cache.read("f", len(data), 0, 5)
    assert cache.stats()["blocks"] == 0


async def test_cancelled_reader_does_not_break_others(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    store.gate = asyncio.Event()
    first = asyncio.create_task(cache.read("f", len(data), 0, 10))
    others = [asyncio.create_task(cache.read("f", len(data), 10 * i, 10)) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*others) == [data[10 * i : 10 * i + 10] for i in range(1, 4)]
    assert first.cancelled()
    assert store.counts["get_range"] == 1
    assert ("f", 0) in cache


async def test_load_survives_when_all_readers_cancelled(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    store.gate = asyncio.Event()
    t = asyncio.create_task(cache.read("f", len(data), 0, 10))
    await asyncio.sleep(0.01)
    t.cancel()
    store.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert ("f", 0) in cache  # the shared load finished and filled the cache
    assert await cache.read("f", len(data), 0, 10) == data[:10]
    assert store.counts["get_range"] == 1


async def test_get_timeout_is_not_cached(store: FakeStore, data: bytes) -> None:
    cache = BlockCache(store, BB, 10 * BB, get_timeout_s=0.01)
    store.gate = asyncio.Event()  # never set: the GET hangs
    with pytest.raises(TimeoutError):
        await cache.read("f", len(data), 0, 5)
    store.gate = None
    assert await cache.read("f", len(data), 0, 5) == data[:5]
    assert store.counts["get_range"] == 2


async def test_warm_caches_only_owned_blocks_of_a_written_object(
    store: FakeStore, data: bytes
) -> None:
    cache = BlockCache(store, BB, 10 * BB)
    assert cache.warm("f", data, lambda index: index != 1) == 3  # blocks 0, 2, 3 (partial)
    assert await cache.read("f", len(data), 0, 3500) == data
    assert store.calls == [("f", 1000, 2000)]  # only the block it did not own
    assert cache.stats()["warmed_on_write"] == 3
    assert cache.warm("f", data, lambda index: True) == 0  # all cached now


async def test_a_caller_naming_a_short_file_size_cannot_truncate_others_reads(
    store: FakeStore, data: bytes
) -> None:
    # A peer request names the file size; a wrong (short) one must not put a short last block
    # under the key that callers with the real size read.
    cache = BlockCache(store, BB, 10 * BB)
    lying = await cache.read_ranges("f", 3200, [(3000, 200)])
    assert bytes(lying[0]) == data[3000:3200]
    honest = await cache.read_ranges("f", len(data), [(3000, 500)])
    assert bytes(honest[0]) == data[3000:3500]
    assert await cache.read("f", len(data), 3400, 100) == data[3400:3500]
    # Blocks whose length does not depend on the size named are shared as before.
    await cache.read_ranges("f", 3200, [(0, 10)])
    await cache.read_ranges("f", len(data), [(0, 10)])
    assert store.calls.count(("f", 0, BB)) == 1


async def test_small_ranges_do_not_pin_evicted_blocks() -> None:
    # 200 blocks, a cache of 2: a reader keeping a 10-byte range of each must hold about
    # 2 KB, not the 200 blocks its views would keep alive after eviction.
    block = 64 * 1024
    # Two blocks per object, so each load is a new bytes object (allocated while traced).
    objects = {f"f{i}": os.urandom(2 * block) for i in range(200)}
    cache = BlockCache(FakeStore(objects), block, 2 * block)
    tracemalloc.start()
    try:
        kept = [await cache.read_ranges(f"f{i}", 2 * block, [(100, 10)]) for i in range(200)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [bytes(k[0]) for k in kept] == [objects[f"f{i}"][100:110] for i in range(200)]
    assert held < 20 * block, f"{held} bytes held"
    # A large range is still a view: no copy on the hot path.
    big = await cache.read_ranges("f0", 2 * block, [(0, block // 2)])
    assert isinstance(big[0], memoryview)
