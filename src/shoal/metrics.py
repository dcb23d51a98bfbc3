"""Prometheus metrics of one agent process. Names start with `shoal_`.

One agent runs per process, so the default registry is used; `/metrics` renders it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("shoal_requests_total", "Kafka requests handled", ["api"])
REQUEST_ERRORS = Counter(
    "shoal_request_errors_total", "Kafka requests that failed inside the agent", ["api"]
)
REQUEST_LATENCY = Histogram(
    "shoal_request_latency_seconds",
    "Time from a request's arrival to its response being queued",
    ["api"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CONNECTIONS = Gauge("shoal_connections", "Open Kafka client connections")
CONNECTIONS_CLOSED = Counter(
    "shoal_connections_closed_total", "Connections closed by the agent", ["reason"]
)

# cause: what the request was for (`ObjectStore.for_cause`): produce (a flush's PUT), fetch
# (a block a fetch missed, here or for a peer), compaction, gc (listing and deletes), other.
OBJECT_STORE_CAUSES = ("produce", "fetch", "compaction", "gc", "other")
OBJECT_STORE_REQUESTS = Counter(
    "shoal_object_store_requests_total", "Object-store requests", ["op", "cause"]
)
OBJECT_STORE_BYTES = Counter(
    "shoal_object_store_bytes_total", "Object-store bytes moved", ["op", "cause"]
)
OBJECT_STORE_ERRORS = Counter(
    "shoal_object_store_errors_total", "Object-store requests that failed", ["op"]
)
OBJECT_STORE_LATENCY = Histogram(
    "shoal_object_store_latency_seconds",
    "Object-store request latency",
    ["op"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0),
)

SEGMENT_FLUSHES = Counter("shoal_segment_flushes_total", "Segment files sealed", ["reason"])
SEGMENT_BYTES = Histogram(
    "shoal_segment_bytes",
    "Size of sealed segment files",
    buckets=(4096, 65536, 262144, 1048576, 4194304, 8388608, 16777216, 67108864),
)
SEGMENT_BATCHES = Counter("shoal_segment_batches_total", "Record batches written to segments")
COMMIT_LATENCY = Histogram(
    "shoal_commit_latency_seconds",
    "Metadata commit latency of one segment file",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
WRITE_BUFFER_BYTES = Gauge(
    "shoal_write_buffer_bytes", "Produce bytes buffered and not yet committed"
)

BLOCK_CACHE_HITS = Counter("shoal_block_cache_hits_total", "Block cache hits")
BLOCK_CACHE_MISSES = Counter("shoal_block_cache_misses_total", "Block cache misses (GETs)")
BLOCK_CACHE_EVICTIONS = Counter("shoal_block_cache_evictions_total", "Blocks evicted")
BLOCK_CACHE_BYTES = Gauge("shoal_block_cache_bytes", "Bytes held in the block cache")

FETCH_BYTES = Counter(
    "shoal_fetch_bytes_total", "Record bytes sent to clients and peers", ["cross_zone"]
)
PRODUCE_BYTES = Counter("shoal_produce_bytes_total", "Record bytes accepted by produce")
PRODUCE_RECORDS = Counter("shoal_produce_records_total", "Records accepted by produce")

GROUP_REBALANCES = Counter(
    "shoal_group_rebalances_total", "Consumer-group rebalances started by this agent"
)

# Agent-to-agent block reads (the ring of each zone; docs/read-path.md).
PEER_REQUESTS = Counter(
    "shoal_peer_requests_total", "Block-read requests between agents", ["direction"]
)
PEER_BYTES = Counter(
    "shoal_peer_bytes_total", "Range bytes moved between agents", ["direction"]
)
PEER_FALLBACKS = Counter(
    "shoal_peer_fallbacks_total",
    "Ranges read from the object store because their owner could not serve them",
    ["reason"],
)
PEER_LATENCY = Histogram(
    "shoal_peer_latency_seconds",
    "Time of one block-read request to a peer, as the requester sees it",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def _initialise_label_sets() -> None:
    """Export every known label set from the start, at 0: a scrape (or a dashboard's rate())
    then sees `op="get"` even before the first GET, rather than a series that appears later."""
    for op in ("get", "put", "delete", "list"):
        for cause in OBJECT_STORE_CAUSES:
            OBJECT_STORE_REQUESTS.labels(op=op, cause=cause)
            OBJECT_STORE_BYTES.labels(op=op, cause=cause)
        OBJECT_STORE_ERRORS.labels(op=op)
        OBJECT_STORE_LATENCY.labels(op=op)
    for crossed in ("true", "false"):
        FETCH_BYTES.labels(cross_zone=crossed)
    for reason in ("size", "time", "close"):
        SEGMENT_FLUSHES.labels(reason=reason)


_initialise_label_sets()
