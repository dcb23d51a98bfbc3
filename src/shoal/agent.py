"""One agent process: wires stores, write path, read path, groups, handlers and servers together.

Only wiring: `Agent` builds each component once, complete, from the ones it depends on (in that
order), and starts and stops them in the order written down in `start` and `stop`; what the
components decide lives in their own modules (group handover: `groups/handover.py`; the
status document's sections: each component's `status`/`stats`). `cli._serve` runs it.
"""

from __future__ import annotations

import logging
import time

# Importing the handler modules registers them.
import shoal.handlers.api_versions
import shoal.handlers.cluster
import shoal.handlers.configs
import shoal.handlers.delete_records
import shoal.handlers.fetch
import shoal.handlers.group_coordination
import shoal.handlers.groups_admin
import shoal.handlers.init_producer_id
import shoal.handlers.list_offsets
import shoal.handlers.metadata
import shoal.handlers.offsets
import shoal.handlers.produce
import shoal.handlers.topics_admin  # noqa: F401
from shoal import __version__
from shoal.cluster.cluster_id import cluster_id_for
from shoal.cluster.membership import JOBS_ROLE, PROXY_ROLE, Membership, new_agent_id
from shoal.cluster.membership_notify import MembershipNotifier
from shoal.cluster.ownership import RingOwnership
from shoal.groups.coordinator import GroupCoordinator
from shoal.groups.handover import GroupHandover
from shoal.groups.lag import GroupCollector, LagTracker, register, unregister
from shoal.groups.model import GroupConfig
from shoal.handlers.services import Services
from shoal.http.app import HttpServer
from shoal.http.status import AgentSection, fixed, merged, redact
from shoal.jobs.compaction import FileCompactor
from shoal.jobs.expiry import ExpiryJobs, ExpirySettings
from shoal.jobs.gc import GarbageCollector
from shoal.jobs.log_cleaner import LogCleaner
from shoal.jobs.retention import RetentionDefaults, RetentionJob
from shoal.meta.agent_store import AgentInfo
from shoal.meta.open import open_metadata_store
from shoal.meta.topic_cache import TopicCache
from shoal.objstore.store import ObjectStore
from shoal.read.block_cache import BlockCache
from shoal.read.fetcher import FetchReader
from shoal.read.peer_client import PeerClient
from shoal.read.peer_server import PeerServer
from shoal.read.ring_source import RingBlockSource
from shoal.read.waiters import PartitionWaiters
from shoal.server.kafka_server import KafkaServer
from shoal.settings import Settings
from shoal.write import crash_points
from shoal.write.writer import SegmentWriter

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.store = ObjectStore.from_url(settings.bucket_url, settings.object_store_timeout_ms)
        self.meta = open_metadata_store(settings.metadata_url)
        self.waiters = PartitionWaiters()
        self.writer = SegmentWriter(
            self.store.for_cause("produce"),
            self.meta,
            flush_interval_ms=settings.flush_interval_effective_ms,
            flush_bytes_max=settings.flush_bytes_max,
            uploads_in_flight_max=settings.uploads_in_flight_max,
            buffer_bytes_max=settings.write_buffer_bytes_max,
            commit_within_ms=settings.commit_within_ms,
            on_commit=self._on_commit,
            on_uploaded=self._on_uploaded,
        )
        self.blocks = BlockCache(
            self.store.for_cause("fetch"), settings.block_bytes, settings.cache_bytes_max
        )
        self.membership = Membership(
            self.meta,
            AgentInfo(
                agent_id=new_agent_id(),
                node_id=settings.node_id,
                host=settings.advertised,
                kafka_port=settings.kafka_port,
                http_port=settings.http_port,
                az=settings.az,
                agent_group=settings.agent_group,
                roles=settings.roles,
                started_at_ms=int(self.started_at * 1000),
                heartbeat_at_ms=0,
            ),
            requested_node_id=settings.node_id,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            heartbeat_timeout_ms=settings.heartbeat_timeout_ms,
        )
        # Peer reads: this agent's blocks are served to the zone over the HTTP port, and its
        # fetches read each block from the zone agent that owns it (docs/read-path.md).
        self.peer_client = PeerClient(
            self.membership.me.agent_id, settings.az, timeout_ms=settings.peer_timeout_ms
        )
        self.peer_server = PeerServer(
            self.blocks,
            settings.az,
            read_timeout_s=settings.peer_timeout_ms / 1000,
            block_bytes=settings.block_bytes,
        )
        self.ring_source = RingBlockSource(
            self.membership, self.blocks, self.peer_client, self.store, settings.block_bytes
        )
        self.reader = FetchReader(
            self.meta,
            self.ring_source,
            self.waiters,
            poll_interval_s=settings.hwm_poll_interval_ms / 1000,
            # Cached rows must not outlive the files they point at (compaction replaces them;
            # the GC deletes the old ones one grace later).
            index_ttl_s=min(30.0, settings.gc_grace_ms / 4000),
            block_bytes=settings.block_bytes,
        )
        self.groups = GroupCoordinator(
            self.meta,
            RingOwnership(self.membership, self.membership.lease_valid),
            GroupConfig(
                initial_rebalance_delay_ms=settings.group_initial_rebalance_delay_ms,
                min_session_timeout_ms=settings.group_min_session_timeout_ms,
                max_session_timeout_ms=settings.group_max_session_timeout_ms,
                max_size=settings.group_max_size,
            ),
            handover_ms=2 * settings.heartbeat_interval_ms,
        )
        self.handover = GroupHandover(self.groups)
        self.group_lag = LagTracker(self.meta)
        self._group_collector = GroupCollector(self.groups, self.group_lag)
        self.services = Services(
            settings=settings,
            meta=self.meta,
            topics=TopicCache(self.meta),
            writer=self.writer,
            reader=self.reader,
            cluster_id=cluster_id_for(settings.metadata_url),
            groups=self.groups,
            cluster=self.membership,
        )
        self.kafka = KafkaServer(self.services)
        self.membership_notify = MembershipNotifier(self.membership)
        # Each component supplies its own section of /v1/status; the order is the document's.
        self.http = HttpServer(
            settings.http_host,
            settings.http_port,
            [
                ("agent", AgentSection(settings, self.membership, self.started_at).status),
                ("cluster_id", fixed(self.services.cluster_id)),
                ("cluster", self.membership.status),
                ("object_store", self.store.status),
                ("metadata_store", fixed({"url": redact(settings.metadata_url)})),
                ("block_cache", self.blocks.stats),
                ("peers", merged(
                    self.ring_source.stats,
                    server=self.peer_server.stats,
                    membership_notices=self.membership_notify.stats,
                )),
                ("groups", self._group_collector.status),
                ("apis", self.kafka.status),
            ],
            extra_routes=[*self.peer_server.routes(), *self.membership_notify.routes()],
        )
        self.gc: GarbageCollector | None = None
        self.retention: RetentionJob | None = None
        self.expiry: ExpiryJobs | None = None
        self.compactor: FileCompactor | None = None
        self.cleaner: LogCleaner | None = None
        if JOBS_ROLE in settings.roles:
            if settings.compaction_interval_ms > 0:
                self.cleaner = LogCleaner(
                    self.store.for_cause("compaction"),
                    self.meta,
                    file_bytes_target=settings.compaction_file_bytes_target,
                    commit_within_ms=settings.commit_within_ms,
                )
                self.compactor = FileCompactor(
                    self.store.for_cause("compaction"),
                    self.meta,
                    interval_ms=settings.compaction_interval_ms,
                    target_bytes=settings.compaction_file_bytes_target,
                    commit_within_ms=settings.commit_within_ms,
                    should_run=self.membership.leads_jobs,
                    cleaner=self.cleaner,
                )
            self.expiry = ExpiryJobs(
                self.meta,
                ExpirySettings(
                    producer_id_expiration_ms=settings.producer_id_expiration_ms,
                    producer_id_expiration_check_interval_ms=(
                        settings.producer_id_expiration_check_interval_ms
                    ),
                    offsets_retention_ms=settings.offsets_retention_minutes * 60_000,
                    offsets_retention_check_interval_ms=(
                        settings.offsets_retention_check_interval_ms
                    ),
                ),
            )
            self.retention = RetentionJob(
                self.meta,
                RetentionDefaults(settings.log_retention_ms, settings.log_retention_bytes),
                interval_ms=settings.retention_check_interval_ms,
            )
            self.gc = GarbageCollector(
                self.store.for_cause("gc"),
                self.meta,
                interval_ms=settings.gc_interval_ms,
                grace_ms=settings.gc_grace_ms,
                files_per_cycle_max=settings.gc_files_per_cycle_max,
            )

    def _on_commit(self, changes: list[tuple[str, int, int]]) -> None:
        for topic, partition, high_watermark in changes:
            self.waiters.notify(topic, partition, high_watermark)

    def _on_uploaded(self, key: str, data: bytes) -> None:
        # Most consumers read the tail: keep the blocks of what we just wrote that this agent
        # owns on its zone's ring, so reading them back needs no GET (the others' owners will
        # GET them once, as for any block).
        me = self.membership.me.agent_id
        self.blocks.warm(key, data, lambda index: self.ring_source.owner(key, index).agent_id == me)

    async def start(self) -> None:
        crash_points.arm(self.settings.crash_point)
        await self.meta.start()
        # Stores with a notification channel (PostgreSQL LISTEN/NOTIFY) wake long polls for
        # other agents' commits at once (SQLite's is a no-op); the read path's poller stays.
        await self.meta.subscribe_high_watermarks(self._on_commit)
        # Before registering: peers route block reads here as soon as they see this agent.
        await self.http.start()
        # Before the Kafka listener: Metadata and FindCoordinator answer from the live list.
        await self.membership.start()
        self.handover.on_view_change(self.membership)
        self.membership.add_listener(self.handover.on_view_change)
        # Peers list this agent to clients only once they see it; tell them now, so no client
        # gets broker lists that differ by agent (docs/cluster.md).
        peers = [a for a in self.membership.live() if a.agent_id != self.membership.me.agent_id]
        self.handover.announced(len(peers), await self.membership_notify.announce(peers))
        await self.writer.start()
        await self.groups.start()
        register(self._group_collector)
        # Without the proxy role an agent serves no Kafka client: it opens no listener, and
        # peers leave it out of Metadata, coordinators and the block ring (serves_clients).
        if PROXY_ROLE in self.settings.roles:
            await self.kafka.start()
        if self.gc is not None:
            self.gc.start()
        if self.retention is not None:
            self.retention.start()
        if self.expiry is not None:
            self.expiry.start()
        if self.compactor is not None:
            self.compactor.start()
        kafka = (
            f"kafka {self.settings.kafka_host}:{self.kafka.port}"
            if PROXY_ROLE in self.settings.roles
            else "no kafka listener (no proxy role)"
        )
        log.info(
            "shoal %s agent listening: %s, http %s:%d, roles %s",
            __version__,
            kafka,
            self.settings.http_host,
            self.settings.http_port,
            ",".join(self.settings.roles),
        )

    async def stop(self) -> None:
        """Graceful: leave the cluster at once (peers stop sending clients here), stop
        accepting, flush and commit what is buffered, answer, close."""
        peers = self.membership.live()
        await self.membership.stop()
        await self.membership_notify.announce(peers)
        if self.gc is not None:
            await self.gc.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.expiry is not None:
            await self.expiry.stop()
        if self.compactor is not None:
            await self.compactor.stop()
        await self.kafka.stop_accepting()
        await self.writer.close()
        await self.groups.stop()
        await self.kafka.close_connections()
        await self.group_lag.close()
        unregister(self._group_collector)
        await self.reader.close()
        await self.http.stop()
        await self.peer_client.close()
        await self.meta.close()
