"""jobs/expiry.py over both metadata stores: each job removes what Kafka's
producer.id.expiration.ms and offsets.retention.minutes would, measured from the job's clock,
and nothing younger."""

from __future__ import annotations

import time

from shoal.jobs.expiry import ExpiryJobs, ExpirySettings
from shoal.meta.group_store import CommittedOffset
from shoal.meta.store import MetadataStore
from tests.unit.test_meta_contract import batch, new_file

SETTINGS = ExpirySettings(producer_id_expiration_ms=60_000, offsets_retention_ms=3_600_000)


def jobs(store: MetadataStore, ahead_ms: int) -> ExpiryJobs:
    """The jobs, with a clock `ahead_ms` past the wall clock (the store stamps rows with it)."""
    return ExpiryJobs(store, SETTINGS, clock_ms=lambda: int(time.time() * 1000) + ahead_ms)


async def test_producer_state_goes_after_the_expiration(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    pid, epoch = await store.init_producer(None, -1, -1)
    await store.commit_file(new_file(), [batch(count=2, pid=pid, epoch=epoch, seq=0)])
    await jobs(store, ahead_ms=30_000).expire_producers()  # half the expiration: kept
    gap = await store.commit_file(new_file(), [batch(pid=pid, epoch=epoch, seq=7)])
    assert gap[0].error_code == 45  # the state is still there: a sequence gap
    await jobs(store, ahead_ms=120_000).expire_producers()
    first = await store.commit_file(new_file(), [batch(pid=pid, epoch=epoch, seq=7)])
    assert first[0].error_code == 0  # forgotten: accepted as a first batch


async def test_offsets_go_after_the_retention(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    await store.commit_offsets("solo", [CommittedOffset("t", 0, 3, -1, None)])
    await jobs(store, ahead_ms=1_800_000).expire_offsets()
    assert [o.offset for o in await store.fetch_offsets("solo")] == [3]
    await jobs(store, ahead_ms=7_200_000).expire_offsets()
    assert await store.fetch_offsets("solo") == []
