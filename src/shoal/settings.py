"""The frozen settings object that `cli.py` builds from flags and `SHOAL_*` variables.

Every other module receives its configuration from here; nothing else reads argv or the
environment.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_FLUSH_INTERVAL_MS = 2
REMOTE_FLUSH_INTERVAL_MS = 100
# Below this a segment would have to be uploaded and committed within half a second.
GC_GRACE_MS_MIN = 1_000
# A merged file smaller than two blocks of the read path would buy little.
COMPACTION_FILE_BYTES_TARGET_MIN = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    advertised_host: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: str = "./shoal-data"
    # None means "derive from data_dir": file://<data_dir>/objects and sqlite:///<data_dir>/metadata.db
    bucket: str | None = None
    metadata: str | None = None
    az: str = "default"
    agent_group: str = "default"
    roles: tuple[str, ...] = ("proxy", "jobs")
    node_id: int = 0
    # Write path: a segment is sealed at flush_bytes_max, or at most flush_interval_ms after its
    # first byte (and at most one seal per interval). None picks a default by object store:
    # local stores have free PUTs, so latency wins; remote stores bill every PUT.
    flush_interval_ms: int | None = None
    flush_bytes_max: int = 8 * 1024 * 1024
    uploads_in_flight_max: int = 4
    # Produce data waiting in open + sealed-but-uncommitted segments; producers wait beyond it.
    write_buffer_bytes_max: int = 64 * 1024 * 1024
    # Read path.
    block_bytes: int = 4 * 1024 * 1024
    cache_bytes_max: int = 256 * 1024 * 1024
    # Connections.
    frame_bytes_max: int = 100 * 1024 * 1024
    # Request bytes held by all connections together (read, not yet answered).
    requests_bytes_max: int = 256 * 1024 * 1024
    # Broker-side cap on one Fetch response (Kafka's fetch.max.bytes default, 55 MiB).
    fetch_bytes_max: int = 55 * 1024 * 1024
    # Frames up to this size (Heartbeat, OffsetCommit, Metadata, ApiVersions, small produces)
    # draw on a reserve of their own, so they never wait behind large ones.
    small_frame_bytes_max: int = 64 * 1024
    small_requests_bytes_max: int = 16 * 1024 * 1024
    # What Fetch responses of all connections load and may pin, counted in whole blocks, from
    # just before the load until the response is written.
    responses_bytes_max: int = 256 * 1024 * 1024
    connection_inflight_max: int = 16
    connection_idle_ms: int = 10 * 60 * 1000
    # A frame body (each 4 MiB piece of a larger one) must arrive within this; a client must
    # take each response within this.
    frame_body_timeout_ms: int = 30_000
    response_write_timeout_ms: int = 30_000
    # Kafka's max.connections and max.connections.per.ip (unbounded there by default).
    connections_max: int = 10_000
    connections_per_ip_max: int = 1_000
    message_bytes_max: int = 1024 * 1024 + 12
    # Topics.
    auto_create_topics: bool = True
    default_partitions: int = 1
    # Consumer groups (Kafka's group.* broker settings; see docs/groups.md).
    group_initial_rebalance_delay_ms: int = 300
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    group_max_size: int = 1_000
    # Long-polling fetches read the high watermarks they wait on from the metadata store this
    # often (one batched query per agent), to see other agents' commits; stores with a
    # notification channel (PostgreSQL) wake them at once as well.
    hwm_poll_interval_ms: int = 25
    # Object store request timeout.
    object_store_timeout_ms: int = 30_000
    # Peer block reads: a peer that has not answered within this falls back to the object store.
    peer_timeout_ms: int = 2_000
    # Garbage collection (agents with the `jobs` role): every gc_interval_ms, delete at most
    # gc_files_per_cycle_max segment files that are orphans (PUT but never committed) or
    # unreferenced, once older than gc_grace_ms. Every agent (jobs role or not) must have the
    # same grace: writers refuse to commit a segment older than half of it (commit_within_ms).
    gc_interval_ms: int = 60_000
    gc_grace_ms: int = 10 * 60 * 1000
    gc_files_per_cycle_max: int = 1000
    # Retention (agents with the `jobs` role; Kafka's broker names and defaults): topics without
    # retention.ms / retention.bytes of their own get these; -1 keeps forever.
    log_retention_ms: int = 7 * 24 * 3600 * 1000
    log_retention_bytes: int = -1
    retention_check_interval_ms: int = 300_000
    # File compaction (jobs role, the live jobs agent with the smallest node id): every
    # compaction_interval_ms, small segment files are merged into files of up to
    # compaction_file_bytes_target (jobs/compaction.py); 0 turns it off.
    compaction_interval_ms: int = 30_000
    compaction_file_bytes_target: int = 64 * 1024 * 1024
    # Expiry of metadata (jobs role; Kafka's broker names and defaults): producer state idle for
    # producer.id.expiration.ms, offsets of groups Empty for offsets.retention.minutes.
    producer_id_expiration_ms: int = 86_400_000
    producer_id_expiration_check_interval_ms: int = 600_000
    offsets_retention_minutes: int = 7 * 24 * 60
    offsets_retention_check_interval_ms: int = 600_000
    # Tests only: exit the process at a write-path step (see write/crash_points.py).
    crash_point: str | None = None
    # Cluster membership: heartbeat period, and the age after which an agent counts as gone.
    heartbeat_interval_ms: int = 1_000
    heartbeat_timeout_ms: int = 5_000

    def __post_init__(self) -> None:
        if self.compaction_interval_ms < 0:
            raise ValueError(
                f"compaction_interval_ms must be 0 (off) or more, not {self.compaction_interval_ms}"
            )
        if self.compaction_file_bytes_target < COMPACTION_FILE_BYTES_TARGET_MIN:
            raise ValueError(
                "compaction_file_bytes_target must be at least"
                f" {COMPACTION_FILE_BYTES_TARGET_MIN}, not {self.compaction_file_bytes_target}"
            )
        if self.gc_grace_ms < GC_GRACE_MS_MIN:
            raise ValueError(
                f"gc_grace_ms must be at least {GC_GRACE_MS_MIN}, not {self.gc_grace_ms}"
            )

    @property
    def commit_within_ms(self) -> int:
        """How long after its seal a segment's commit may land: half the GC grace, so the GC
        (which deletes an uncommitted file once it is a grace old) never deletes a file whose
        commit can still succeed, with half a grace left for clocks that disagree."""
        return self.gc_grace_ms // 2

    @property
    def bucket_url(self) -> str:
        if self.bucket:
            return self.bucket
        return f"file://{_abspath(self.data_dir)}/objects"

    @property
    def flush_interval_effective_ms(self) -> int:
        if self.flush_interval_ms is not None:
            return self.flush_interval_ms
        local = self.bucket_url.startswith(("file://", "memory://"))
        return LOCAL_FLUSH_INTERVAL_MS if local else REMOTE_FLUSH_INTERVAL_MS

    @property
    def metadata_url(self) -> str:
        if self.metadata:
            return self.metadata
        return f"sqlite:///{_abspath(self.data_dir)}/metadata.db"

    @property
    def advertised(self) -> str:
        return self.advertised_host or self.kafka_host


def _abspath(path: str) -> str:
    import os

    return os.path.abspath(path)
