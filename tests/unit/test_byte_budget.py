from __future__ import annotations

import asyncio

import pytest

from shoal.common.byte_budget import ByteBudget


async def test_waits_until_released_fifo() -> None:
    budget = ByteBudget(100)
    await budget.acquire(60)
    order: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        order.append(name)

    a = asyncio.create_task(take("a", 50))
    b = asyncio.create_task(take("b", 10))  # would fit, but queues behind a (no starvation)
    await asyncio.sleep(0)
    assert order == [] and budget.in_use == 60
    budget.release(60)
    await asyncio.gather(a, b)
    assert order == ["a", "b"] and budget.in_use == 60


async def test_oversized_admitted_alone() -> None:
    budget = ByteBudget(10)
    await budget.acquire(50)
    assert budget.in_use == 50
    waiter = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0)
    assert not waiter.done()
    budget.release(50)
    await waiter
    assert budget.in_use == 1


async def test_cancelled_waiter_gives_nothing_away() -> None:
    budget = ByteBudget(10)
    await budget.acquire(10)
    waiter = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(10)
    assert budget.in_use == 0
