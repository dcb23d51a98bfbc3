"""What handlers may use: the agent's stores, write and read paths, groups, and identity.

Built once, complete, by the agent (`agent.py`) and never changed after: whatever moves while
the agent runs (the live agents, this agent's node id) is read from the component that owns
it. Handler tests build one with `tests/unit/handler_services.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.cluster.model import ClusterView
from shoal.settings import Settings

if TYPE_CHECKING:
    from shoal.groups.coordinator import GroupCoordinator
    from shoal.meta.store import MetadataStore
    from shoal.meta.topic_cache import TopicCache
    from shoal.read.fetcher import FetchReader
    from shoal.write.writer import SegmentWriter


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    meta: MetadataStore
    topics: TopicCache
    writer: SegmentWriter
    reader: FetchReader
    cluster_id: str
    groups: GroupCoordinator
    # The live agents and this agent among them (cluster.membership.Membership in an agent).
    cluster: ClusterView

    @property
    def node_id(self) -> int:
        """This agent's node id: the cluster view's (the metadata store assigns it, and may
        assign another when the agent registers again after an outage)."""
        return self.cluster.me.node_id
