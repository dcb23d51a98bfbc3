"""Retention by time and size (agents with the `jobs` role).

Every `interval_ms`, for each partition of each topic whose cleanup.policy has `delete`, the log
start moves past what `retention.ms` and `retention.bytes` (the topic's, or the broker defaults
`--log-retention-ms` / `--log-retention-bytes`) no longer keep; -1 keeps forever:
- by time: everything before the first batch whose largest timestamp is within retention.ms of
  now (as Kafka deletes a segment only once its largest timestamp is that old, and only from
  the start of the log);
- by size: everything before the newest batch from which the partition still holds at least
  retention.bytes (Kafka keeps at least retention.bytes too).
The move is `advance_log_start`, as for DeleteRecords: index rows wholly below the new start go
in the same transaction, and the garbage collector deletes files no row references any more.
The partition's state is read before the lookups, and a start is never set past the high
watermark read then, so a batch committed meanwhile is never dropped.

Several agents may run this job at once: the log start only moves up, so two moves agree.
Cost per cycle: one topic listing, then per partition one state read and one or two indexed
queries (the size lookup walks the partition's rows); no object-store request. At most
`partitions_per_cycle_max` partitions per cycle (10,000), taken in turns.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shoal.jobs.periodic import PeriodicTask

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore, TopicInfo

log = logging.getLogger(__name__)

KEEP_FOREVER = -1

RETENTION_MOVES = Counter(
    "shoal_retention_log_start_moves_total",
    "Partitions whose log start a retention cycle moved",
    ["reason"],  # time or size
)
RETENTION_RECORDS = Counter(
    "shoal_retention_offsets_dropped_total", "Offsets below a log start that retention moved"
)
RETENTION_CYCLES = Counter("shoal_retention_cycles_total", "Retention cycles run")
RETENTION_ERRORS = Counter("shoal_retention_errors_total", "Retention cycles that failed")


@dataclass(frozen=True, slots=True)
class RetentionDefaults:
    """The broker-wide values a topic without its own config gets."""

    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = KEEP_FOREVER


@dataclass(slots=True)
class CycleResult:
    partitions: int = 0
    moved: int = 0
    offsets_dropped: int = 0


class RetentionJob:
    def __init__(
        self,
        meta: MetadataStore,
        defaults: RetentionDefaults,
        *,
        interval_ms: int,
        partitions_per_cycle_max: int = 10_000,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if interval_ms <= 0 or partitions_per_cycle_max <= 0:
            raise ValueError("retention interval and partitions per cycle must be positive")
        self.partitions_per_cycle_max = partitions_per_cycle_max
        self._cursor: tuple[str, int] | None = None
        self._meta = meta
        self._defaults = defaults
        self.interval_ms = interval_ms
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._periodic = PeriodicTask("retention", interval_ms, self._cycle, self._cycle_failed)
        self.stats: dict[str, int] = {"cycles": 0, "moved": 0, "offsets_dropped": 0, "errors": 0}

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _cycle(self) -> None:
        result = await self.run_once()
        if result.moved:
            log.info(
                "retention: moved the log start of %d partitions (%d offsets)",
                result.moved,
                result.offsets_dropped,
            )

    def _cycle_failed(self) -> None:
        self.stats["errors"] += 1
        RETENTION_ERRORS.inc()

    async def run_once(self) -> CycleResult:
        now_ms = self._clock_ms()
        result = CycleResult()
        due: list[tuple[str, int, int, int]] = []
        for topic in await self._meta.list_topics():
            limits = self._limits(topic)
            if limits is not None:
                due.extend((topic.name, p, *limits) for p in range(topic.partitions))
        for name, partition, ms, size in self._next_page(due):
            result.partitions += 1
            await self._partition(name, partition, now_ms, ms, size, result)
        self.stats["cycles"] += 1
        self.stats["moved"] += result.moved
        self.stats["offsets_dropped"] += result.offsets_dropped
        RETENTION_CYCLES.inc()
        return result

    def _next_page(
        self, due: list[tuple[str, int, int, int]]
    ) -> list[tuple[str, int, int, int]]:
        """At most `partitions_per_cycle_max` partitions, going on after the last one the
        previous cycle visited (in topic and partition order, wrapping around): a cluster
        with more partitions than that is covered in turns, each cycle's queries bounded."""
        due.sort()
        if len(due) <= self.partitions_per_cycle_max:
            return due
        start = 0
        if self._cursor is not None:
            start = bisect.bisect_right([(n, p) for n, p, _, _ in due], self._cursor)
        page = (due[start:] + due[:start])[: self.partitions_per_cycle_max]
        self._cursor = (page[-1][0], page[-1][1])
        return page

    def _limits(self, topic: TopicInfo) -> tuple[int, int] | None:
        """(retention ms, retention bytes) of a topic retention applies to, else None."""
        if "delete" not in topic.cleanup_policies:
            return None
        ms = _int(topic.configs.get("retention.ms"), self._defaults.retention_ms)
        size = _int(topic.configs.get("retention.bytes"), self._defaults.retention_bytes)
        if ms < 0 and size < 0:
            return None
        return ms, size

    async def _partition(
        self, topic: str, partition: int, now_ms: int, ms: int, size: int, result: CycleResult
    ) -> None:
        state = await self._meta.partition_state(topic, partition)
        if state is None or state.log_start_offset >= state.high_watermark:
            return
        target, reason = state.log_start_offset, ""
        if ms >= 0:
            kept = await self._meta.offset_for_timestamp(topic, partition, now_ms - ms)
            start = state.high_watermark if kept is None else kept.offset
            if start > target:
                target, reason = start, "time"
        if size >= 0:
            start_by_size = await self._meta.offset_keeping_bytes(topic, partition, size)
            if start_by_size is not None and start_by_size > target:
                target, reason = start_by_size, "size"
        target = min(target, state.high_watermark)
        if target <= state.log_start_offset:
            return
        moved = await self._meta.advance_log_start(topic, partition, target)
        if moved is None:
            return  # the topic went meanwhile
        result.moved += 1
        result.offsets_dropped += moved.log_start_offset - state.log_start_offset
        RETENTION_MOVES.labels(reason=reason).inc()
        RETENTION_RECORDS.inc(moved.log_start_offset - state.log_start_offset)


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default  # configs are validated when set; a stored oddity keeps the default
