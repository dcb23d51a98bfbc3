"""What handlers may use: the agent's stores, write and read paths, and identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.settings import Settings

if TYPE_CHECKING:
    from shoal.groups.coordinator import GroupCoordinator
    from shoal.meta.store import MetadataStore
    from shoal.meta.topic_cache import TopicCache
    from shoal.read.fetcher import FetchReader
    from shoal.write.writer import SegmentWriter


@dataclass(slots=True)
class Services:
    settings: Settings
    meta: MetadataStore
    topics: TopicCache
    writer: SegmentWriter
    reader: FetchReader
    cluster_id: str
    node_id: int
    groups: GroupCoordinator | None = None
