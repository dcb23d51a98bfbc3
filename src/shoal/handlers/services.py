"""What handlers may use: the agent's stores, write and read paths, and identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.cluster.model import AgentInfo, ClusterView
from shoal.cluster.static_view import StaticView
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
    # The live agents (cluster.membership.Membership in an agent); None: this agent alone.
    cluster: ClusterView | None = None


def cluster_view(svc: Services) -> ClusterView:
    if svc.cluster is not None:
        return svc.cluster
    s = svc.settings
    me = AgentInfo(
        agent_id="local",
        node_id=svc.node_id,
        host=s.advertised,
        kafka_port=s.kafka_port,
        http_port=s.http_port,
        az=s.az,
        agent_group=s.agent_group,
        roles=s.roles,
        started_at_ms=0,
        heartbeat_at_ms=0,
    )
    return StaticView([me])
