"""`Services` for handler tests, built as complete as an agent builds them.

Without a `cluster`, the agent sees only itself: a `StaticView` of one agent described by the
settings (the view a lone agent's membership gives). Without `groups`, a group coordinator
over `meta` on that view, not started (group requests answer COORDINATOR_LOAD_IN_PROGRESS).
"""

from __future__ import annotations

from typing import Any

from shoal.cluster.model import ClusterView
from shoal.cluster.ownership import RingOwnership
from shoal.cluster.static_view import StaticView
from shoal.groups.coordinator import GroupCoordinator
from shoal.handlers.services import Services
from shoal.meta.agent_store import AgentInfo
from shoal.meta.store import MetadataStore
from shoal.meta.topic_cache import TopicCache
from shoal.settings import Settings


def static_view(settings: Settings) -> StaticView:
    me = AgentInfo(
        agent_id="local",
        node_id=settings.node_id,
        host=settings.advertised,
        kafka_port=settings.kafka_port,
        http_port=settings.http_port,
        az=settings.az,
        agent_group=settings.agent_group,
        roles=settings.roles,
        started_at_ms=0,
        heartbeat_at_ms=0,
    )
    return StaticView([me])


def handler_services(
    settings: Settings,
    meta: MetadataStore,
    *,
    writer: Any = None,
    reader: Any = None,
    cluster: ClusterView | None = None,
    groups: GroupCoordinator | None = None,
    cluster_id: str = "shoal-test",
) -> Services:
    view = cluster if cluster is not None else static_view(settings)
    if groups is None:
        groups = GroupCoordinator(meta, RingOwnership(view))
    return Services(
        settings=settings,
        meta=meta,
        topics=TopicCache(meta),
        writer=writer,
        reader=reader,
        cluster_id=cluster_id,
        groups=groups,
        cluster=view,
    )
