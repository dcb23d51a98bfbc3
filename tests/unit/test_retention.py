"""jobs/retention.py over both metadata stores: where each rule moves the log start, and what it
leaves alone."""

from __future__ import annotations

from shoal.jobs.retention import RetentionDefaults, RetentionJob
from shoal.meta.store import MetadataStore
from tests.unit.test_meta_contract import batch, new_file

NOW_MS = 1_000_000
FOREVER = RetentionDefaults(retention_ms=-1, retention_bytes=-1)


def job(store: MetadataStore, defaults: RetentionDefaults = FOREVER) -> RetentionJob:
    return RetentionJob(store, defaults, interval_ms=1000, clock_ms=lambda: NOW_MS)


async def log_start(store: MetadataStore, topic: str, partition: int = 0) -> int:
    state = await store.partition_state(topic, partition)
    assert state is not None
    return state.log_start_offset


async def test_time_retention_keeps_from_the_first_batch_young_enough(
    store: MetadataStore,
) -> None:
    await store.create_topic("t", 1, {"retention.ms": "5000"})
    # Offsets 0, 10, 20, 30; the batch at 20 is the first within 5 s of now, the one at 30 is
    # older again (timestamps are the producer's): everything from 20 on stays.
    stamps = [NOW_MS - 9000, NOW_MS - 6000, NOW_MS - 4000, NOW_MS - 7000]
    await store.commit_file(new_file(), [batch(count=10, ts=ts) for ts in stamps])
    result = await job(store).run_once()
    assert (result.moved, result.offsets_dropped) == (1, 20)
    assert await log_start(store, "t") == 20
    assert [r.base_offset for r in await store.read_batches("t", 0, 0, 1 << 20)] == [20, 30]
    # A second cycle finds nothing more to do.
    assert (await job(store).run_once()).moved == 0


async def test_everything_older_than_retention_goes_up_to_the_high_watermark(
    store: MetadataStore,
) -> None:
    await store.create_topic("t", 1, {"retention.ms": "5000"})
    await store.commit_file(new_file(), [batch(count=10, ts=NOW_MS - 6000) for _ in range(3)])
    await job(store).run_once()
    assert await log_start(store, "t") == 30
    state = await store.partition_state("t", 0)
    assert state is not None and state.high_watermark == 30


async def test_size_retention_keeps_at_least_retention_bytes(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {"retention.bytes": "450"})
    # 4 batches of 200 bytes: the newest two hold 400 < 450, the newest three 600.
    await store.commit_file(new_file(), [batch(count=5, length=200, ts=NOW_MS) for _ in range(4)])
    await job(store).run_once()
    assert await log_start(store, "t") == 5


async def test_broker_defaults_apply_to_topics_without_their_own(store: MetadataStore) -> None:
    await store.create_topic("own", 1, {"retention.ms": "-1"})
    await store.create_topic("default", 1, {})
    for topic in ("own", "default"):
        await store.commit_file(new_file(), [batch(topic, count=4, ts=NOW_MS - 60_000)])
    await job(store, RetentionDefaults(retention_ms=1000)).run_once()
    assert await log_start(store, "default") == 4
    assert await log_start(store, "own") == 0


async def test_compact_only_topics_and_keep_forever_are_left_alone(store: MetadataStore) -> None:
    await store.create_topic("c", 1, {"cleanup.policy": "compact", "retention.ms": "1"})
    await store.create_topic("cd", 1, {"cleanup.policy": "compact,delete", "retention.ms": "1"})
    await store.create_topic("f", 1, {})
    for topic in ("c", "cd", "f"):
        await store.commit_file(new_file(), [batch(topic, count=3, ts=NOW_MS - 60_000)])
    await job(store).run_once()
    assert [await log_start(store, t) for t in ("c", "cd", "f")] == [0, 3, 0]


async def test_partitions_are_visited_in_turns_within_the_bound(store: MetadataStore) -> None:
    """With more partitions than a cycle may visit, each cycle goes on where the last one
    stopped, so every partition is reached within ceil(n / bound) cycles."""
    await store.create_topic("a", 3, {"retention.ms": "5000"})
    await store.create_topic("b", 2, {"retention.ms": "5000"})
    for topic, partitions in (("a", 3), ("b", 2)):
        for p in range(partitions):
            await store.commit_file(new_file(), [batch(topic, p, count=10, ts=NOW_MS - 9000)])
    turns = RetentionJob(store, FOREVER, interval_ms=1000, partitions_per_cycle_max=2,
                         clock_ms=lambda: NOW_MS)  # fmt: skip
    moved = [(await turns.run_once()).moved for _ in range(3)]
    assert moved == [2, 2, 1]
    for topic, p in (("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)):
        assert await log_start(store, topic, p) == 10
    # The fourth cycle starts over from the first partition (nothing left to move).
    assert (await turns.run_once()).partitions == 2
