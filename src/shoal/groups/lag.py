"""Consumer lag (high watermark minus committed offset) for `/metrics` and `/v1/status`.

Computed on demand, never on a timer: a scrape or status call that finds the snapshot older
than `refresh_interval_s` starts one refresh in the background and answers with the last
snapshot. A refresh costs two store reads (a bounded page of commits, then the partitions'
high watermarks) and at most `series_max` rows, so an agent with many groups never emits an
unbounded number of series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shoal.meta.store import MetadataError, MetadataStore

if TYPE_CHECKING:
    from shoal.groups.coordinator import GroupCoordinator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int
    high_watermark: int

    @property
    def lag(self) -> int:
        return max(self.high_watermark - self.committed, 0)


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    rows: tuple[LagRow, ...] = ()
    truncated: bool = False
    taken_at: float = 0.0  # wall clock, 0 = never
    by_group: dict[str, int] = field(default_factory=dict)


class LagTracker:
    def __init__(
        self,
        meta: MetadataStore,
        refresh_interval_s: float = 5.0,
        series_max: int = 10_000,
    ) -> None:
        self._meta = meta
        self._interval_s = refresh_interval_s
        self._series_max = series_max
        self._snapshot = LagSnapshot()
        self._refreshing: asyncio.Task[LagSnapshot] | None = None

    def snapshot(self) -> LagSnapshot:
        """The last snapshot; starts a refresh when it is stale (needs a running loop)."""
        if time.time() - self._snapshot.taken_at >= self._interval_s and self._refreshing is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self._snapshot
            self._refreshing = loop.create_task(self.refresh())
            self._refreshing.add_done_callback(self._refreshed)
        return self._snapshot

    def _refreshed(self, task: asyncio.Task[LagSnapshot]) -> None:
        self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("lag refresh failed: %r", task.exception())

    async def refresh(self) -> LagSnapshot:
        try:
            page = await self._meta.committed_offsets_page(self._series_max + 1)
            truncated = len(page) > self._series_max
            page = page[: self._series_max]
            keys = sorted({(o.topic, o.partition) for _, o in page})
            states = await self._meta.partition_states(keys)
        except MetadataError:
            return self._snapshot
        rows = tuple(
            LagRow(
                group, o.topic, o.partition, o.offset, states[(o.topic, o.partition)].high_watermark
            )
            for group, o in page
            if (o.topic, o.partition) in states
        )
        by_group: dict[str, int] = {}
        for row in rows:
            by_group[row.group] = by_group.get(row.group, 0) + row.lag
        self._snapshot = LagSnapshot(rows, truncated, time.time(), by_group)
        return self._snapshot

    async def close(self) -> None:
        task = self._refreshing
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class GroupCollector(Collector):
    """Prometheus collector (groups by state, members, and lag per group and partition) and
    the `groups` section of `/v1/status`."""

    def __init__(self, coordinator: GroupCoordinator, lag: LagTracker) -> None:
        self._coordinator = coordinator
        self._lag = lag

    def status(self, rows_max: int = 200) -> dict[str, Any]:
        """The `groups` section of `/v1/status`: loaded groups by state, members, rebalances
        and lag (the largest `rows_max` partition lags, and the total per group)."""
        snap = self._lag.snapshot()
        top = sorted(snap.rows, key=lambda r: r.lag, reverse=True)[:rows_max]
        return {
            **self._coordinator.summary(),
            "lag_taken_at": snap.taken_at or None,
            "lag_truncated": snap.truncated,
            "lag_by_group": dict(sorted(snap.by_group.items())),
            "lag": [
                {
                    "group": r.group,
                    "topic": r.topic,
                    "partition": r.partition,
                    "committed": r.committed,
                    "high_watermark": r.high_watermark,
                    "lag": r.lag,
                }
                for r in top
            ],
        }

    def collect(self) -> Iterator[Any]:
        summary = self._coordinator.summary()
        states = GaugeMetricFamily(
            "shoal_groups", "Consumer groups loaded on this coordinator, by state", labels=["state"]
        )
        by_state = summary["loaded_by_state"]
        assert isinstance(by_state, dict)
        for state, count in sorted(by_state.items()):
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily(
            "shoal_group_members",
            "Members of the groups this agent coordinates",
            value=float(summary["members"]),  # type: ignore[arg-type]
        )
        snap = self._lag.snapshot()
        lag = GaugeMetricFamily(
            "shoal_group_lag",
            "High watermark minus committed offset, per group and partition",
            labels=["group", "topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "shoal_group_committed_offset",
            "Committed offset, per group and partition",
            labels=["group", "topic", "partition"],
        )
        for row in snap.rows:
            labels = [row.group, row.topic, str(row.partition)]
            lag.add_metric(labels, row.lag)
            committed.add_metric(labels, row.committed)
        yield lag
        yield committed


def register(collector: GroupCollector) -> None:
    """Add the collector to the default registry (one agent per process; tests may start
    several, and only the first one's groups are exported then)."""
    from prometheus_client import REGISTRY

    try:
        REGISTRY.register(collector)
    except ValueError:
        log.warning("group metrics are already registered in this process")


def unregister(collector: GroupCollector) -> None:
    from prometheus_client import REGISTRY

    with contextlib.suppress(KeyError):
        REGISTRY.unregister(collector)
