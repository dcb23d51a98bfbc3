from __future__ import annotations

import asyncio

from shoal.read.waiters import PartitionWaiters

K = ("t", 0)
K2 = ("t", 1)


async def test_notify_wakes_waiter_before_timeout() -> None:
    w = PartitionWaiters()
    task = asyncio.create_task(w.wait([K], {K: 5}, timeout_s=30))
    await asyncio.sleep(0.01)
    assert w.waiting_count() == 1
    w.notify("t", 0, 5)  # not above 5: still waiting
    await asyncio.sleep(0.01)
    assert not task.done()
    w.notify("t", 0, 6)
    assert await asyncio.wait_for(task, 5) is True
    assert w.waiting_count() == 0
    assert w.latest[K] == 6


async def test_timeout_returns_false_and_unregisters() -> None:
    w = PartitionWaiters()
    assert await w.wait([K, K2], {K: 0, K2: 0}, timeout_s=0.02) is False
    assert w.waiting_count() == 0


async def test_any_key_wakes() -> None:
    w = PartitionWaiters()
    task = asyncio.create_task(w.wait([K, K2], {K: 3, K2: 7}, timeout_s=30))
    await asyncio.sleep(0.01)
    assert w.waiting_count() == 2
    assert sorted(w.waiting_keys()) == [K, K2]
    w.notify("t", 1, 8)
    assert await asyncio.wait_for(task, 5) is True
    assert w.waiting_count() == 0
    assert w.waiting_keys() == []


async def test_known_watermark_returns_at_once() -> None:
    w = PartitionWaiters()
    w.notify("t", 0, 10)
    assert await w.wait([K], {K: 9}, timeout_s=30) is True
    assert await w.wait([K], {K: 10}, timeout_s=0.01) is False


async def test_latest_keeps_largest_and_reset_and_forget() -> None:
    w = PartitionWaiters()
    w.notify("t", 0, 10)
    w.notify("t", 0, 4)  # out-of-order commit notification
    assert w.latest[K] == 10
    w.reset("t", 0, 4)
    assert w.latest[K] == 4
    w.notify("t", 1, 1)
    w.forget("t")
    assert w.latest == {}


async def test_cancelled_waiter_is_removed() -> None:
    w = PartitionWaiters()
    task = asyncio.create_task(w.wait([K, K2], {K: 0, K2: 0}, timeout_s=30))
    await asyncio.sleep(0.01)
    assert w.waiting_count() == 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert w.waiting_count() == 0


async def test_latest_is_bounded() -> None:
    w = PartitionWaiters(partitions_max=3)
    for p in range(10):
        w.notify("t", p, 1)
    assert len(w.latest) == 3
    assert ("t", 9) in w.latest
