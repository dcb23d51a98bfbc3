"""Expiry of metadata (agents with the `jobs` role), so that the producer and offset tables do
not grow forever:

- producer state: every `producer.id.expiration.check.interval.ms`, the idempotence state of a
  producer that wrote nothing to a partition for `producer.id.expiration.ms`, and the ids of
  non-transactional producers idle as long, go (`MetadataStore.expire_producers`). A later
  batch of such a producer is accepted as a first batch, as by Kafka.
- committed offsets: every `offsets.retention.check.interval.ms`, the offsets of a group that
  has been Empty for `offsets.retention.minutes` (of a group that never joined: each offset
  committed that long ago) go, then such groups left without offsets
  (`MetadataStore.expire_offsets`), as Kafka does since KIP-211.

Each cycle is one metadata transaction of two DELETE statements; no object-store request.
Several agents may run these at once: deleting what is already gone changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shoal.jobs.periodic import PeriodicTask

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore

log = logging.getLogger(__name__)

EXPIRED_ROWS = Counter(
    "shoal_expired_rows_total",
    "Metadata rows the expiry jobs removed",
    ["kind"],  # producer, offset, group
)
EXPIRY_ERRORS = Counter("shoal_expiry_errors_total", "Expiry cycles that failed", ["job"])


@dataclass(frozen=True, slots=True)
class ExpirySettings:
    """Kafka's broker defaults: a day for producer ids, seven days for offsets, both checked
    every ten minutes."""

    producer_id_expiration_ms: int = 86_400_000
    producer_id_expiration_check_interval_ms: int = 600_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000


class ExpiryJobs:
    def __init__(
        self,
        meta: MetadataStore,
        settings: ExpirySettings,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        for name in ("producer_id_expiration_check_interval_ms",
                     "offsets_retention_check_interval_ms"):  # fmt: skip
            if getattr(settings, name) <= 0:
                raise ValueError(f"{name} must be positive")
        self._meta = meta
        self._settings = settings
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._tasks = (
            PeriodicTask("producer-expiry", settings.producer_id_expiration_check_interval_ms,
                         self.expire_producers, lambda: EXPIRY_ERRORS.labels("producer").inc()),
            PeriodicTask("offset-expiry", settings.offsets_retention_check_interval_ms,
                         self.expire_offsets, lambda: EXPIRY_ERRORS.labels("offset").inc()),
        )  # fmt: skip

    def start(self) -> None:
        for task in self._tasks:
            task.start()

    async def stop(self) -> None:
        for task in self._tasks:
            await task.stop()

    async def expire_producers(self) -> None:
        cutoff = self._clock_ms() - self._settings.producer_id_expiration_ms
        removed = await self._meta.expire_producers(cutoff)
        EXPIRED_ROWS.labels("producer").inc(removed)
        if removed:
            log.info("producer expiry: removed %d rows idle since %d", removed, cutoff)

    async def expire_offsets(self) -> None:
        cutoff = self._clock_ms() - self._settings.offsets_retention_ms
        offsets, groups = await self._meta.expire_offsets(cutoff)
        EXPIRED_ROWS.labels("offset").inc(offsets)
        EXPIRED_ROWS.labels("group").inc(groups)
        if offsets or groups:
            log.info("offset expiry: removed %d offsets and %d empty groups", offsets, groups)
