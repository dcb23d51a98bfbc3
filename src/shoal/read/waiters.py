"""Long-poll wake-ups: fetches that found too little data wait here for a high watermark to move.

The writer calls `notify` after each commit (this agent's commits wake fetches at once); the
fetch reader also feeds it the high watermarks it polls from the metadata store, which is how
commits by other agents are seen.
"""

from __future__ import annotations

import asyncio

PartitionKey = tuple[str, int]


class _Waiter:
    __slots__ = ("above", "event")

    def __init__(self, above: dict[PartitionKey, int]) -> None:
        self.above = above
        self.event = asyncio.Event()


class PartitionWaiters:
    """Registry of waiting fetches per partition, and the latest high watermark known of each."""

    def __init__(self, partitions_max: int = 1_000_000) -> None:
        # Bounded by the number of partitions that exist; the cap guards against a churn of
        # short-lived topics. Dropping an entry only costs a later wake-up its shortcut.
        self._partitions_max = partitions_max
        self.latest: dict[PartitionKey, int] = {}
        self._waiting: dict[PartitionKey, set[_Waiter]] = {}

    def notify(self, topic: str, partition: int, high_watermark: int) -> None:
        """Record a partition's high watermark and wake fetches waiting for it to pass a value.

        Synchronous and cheap: safe to call from the commit path. Out-of-order calls are fine,
        the largest value wins.
        """
        key = (topic, partition)
        known = self.latest.get(key)
        if known is None or high_watermark > known:
            if known is None and len(self.latest) >= self._partitions_max:
                self.latest.pop(next(iter(self.latest)))
            self.latest[key] = high_watermark
        waiting = self._waiting.get(key)
        if waiting:
            for w in waiting:
                if high_watermark > w.above.get(key, high_watermark):
                    w.event.set()

    def forget(self, topic: str, partition: int | None = None) -> None:
        """Drop known high watermarks (a deleted topic may come back with lower offsets)."""
        if partition is not None:
            self.latest.pop((topic, partition), None)
            return
        for key in [k for k in self.latest if k[0] == topic]:
            del self.latest[key]

    def reset(self, topic: str, partition: int, high_watermark: int) -> None:
        """Set the known high watermark to an authoritative value even if it is lower."""
        self.latest[(topic, partition)] = high_watermark

    async def wait(
        self, keys: list[PartitionKey], above: dict[PartitionKey, int], timeout_s: float
    ) -> bool:
        """True as soon as any key's high watermark is above `above[key]`; False on timeout."""
        for key in keys:
            known = self.latest.get(key)
            if known is not None and key in above and known > above[key]:
                return True
        if timeout_s <= 0:
            return False
        waiter = _Waiter({k: above[k] for k in keys if k in above})
        for key in waiter.above:
            self._waiting.setdefault(key, set()).add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter.event.wait()
            return True
        except TimeoutError:
            return waiter.event.is_set()
        finally:
            for key in waiter.above:
                waiting = self._waiting.get(key)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiting[key]

    def waiting_keys(self) -> list[PartitionKey]:
        """Partitions that at least one fetch waits on."""
        return list(self._waiting)

    def waiting_count(self) -> int:
        """Number of (waiting fetch, partition) registrations; for tests and the status page."""
        return sum(len(s) for s in self._waiting.values())
