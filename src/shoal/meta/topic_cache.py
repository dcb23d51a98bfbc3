"""A small per-agent cache of topic descriptions over the metadata store.

Produce and Fetch look topics up on every request; the store is asked at most once per topic per
`ttl_s`. Changes made through this agent invalidate the entry at once; changes made by other
agents become visible within `ttl_s`.
"""

from __future__ import annotations

import asyncio
import uuid

from shoal.common.clock import monotonic_s
from shoal.meta.store import MetadataStore, TopicExistsError, TopicInfo


class TopicCache:
    def __init__(self, meta: MetadataStore, ttl_s: float = 2.0, entries_max: int = 100_000) -> None:
        self._meta = meta
        self._ttl_s = ttl_s
        self._entries_max = entries_max
        self._by_name: dict[str, tuple[float, TopicInfo | None]] = {}
        self._by_id: dict[uuid.UUID, str] = {}
        self._create_locks: dict[str, asyncio.Lock] = {}

    async def get(self, name: str) -> TopicInfo | None:
        hit = self._by_name.get(name)
        now = monotonic_s()
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        info = await self._meta.get_topic(name)
        self._put(name, info)
        return info

    async def get_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        name = self._by_id.get(topic_id)
        if name is not None:
            info = await self.get(name)
            if info is not None and info.topic_id == topic_id:
                return info
        found = await self._meta.get_topic_by_id(topic_id)
        if found is not None:
            self._put(found.name, found)
        return found

    async def get_or_create(self, name: str, partitions: int) -> TopicInfo:
        """Auto-create: concurrent first produces to a new topic create it once."""
        info = await self.get(name)
        if info is not None:
            return info
        lock = self._create_locks.setdefault(name, asyncio.Lock())
        async with lock:
            info = await self.get(name)
            if info is None:
                try:
                    info = await self._meta.create_topic(name, partitions, {})
                except TopicExistsError:
                    info = await self._meta.get_topic(name)
                    assert info is not None
                self._put(name, info)
        self._create_locks.pop(name, None)
        return info

    def invalidate(self, name: str) -> None:
        self._by_name.pop(name, None)

    def _put(self, name: str, info: TopicInfo | None) -> None:
        if len(self._by_name) >= self._entries_max:
            self._by_name.clear()
            self._by_id.clear()
        self._by_name[name] = (monotonic_s(), info)
        if info is not None:
            self._by_id[info.topic_id] = name
