"""The log cleaner of compacted topics: its decisions (pure), then the job against the real
metadata stores (SQLite, PostgreSQL) and a local-folder object store, behind a real writer."""

from __future__ import annotations

import time
import uuid

import pytest

from shoal.jobs.cleaning import CleanerConfig, KeyMap
from shoal.jobs.log_cleaner import LogCleaner
from shoal.meta.store import FileInfo, MetadataStore, RowMove, TopicInfo
from shoal.objstore.store import ObjectStore
from shoal.protocol.batch import parse_header
from shoal.protocol.record_filter import RecordKeyInfo, record_keys
from shoal.write.segment_format import new_file_id, segment_key
from shoal.write.writer import AppendItem, SegmentWriter
from tests.unit import job_stores
from tests.unit.batchgen import make_batch

MiB = 1024 * 1024
env = job_stores.env  # the fixture: an object store and the test's metadata store


def _topic(configs: dict[str, str]) -> TopicInfo:
    return TopicInfo("t", uuid.uuid4(), 1, configs)


def test_only_compacted_topics_have_a_cleaner_config() -> None:
    assert CleanerConfig.of(_topic({})) is None
    assert CleanerConfig.of(_topic({"cleanup.policy": "delete"})) is None
    configs = {"cleanup.policy": "compact, delete", "delete.retention.ms": "5",
               "min.cleanable.dirty.ratio": "0.1"}  # fmt: skip
    both = CleanerConfig.of(_topic(configs))
    assert both == CleanerConfig(delete_retention_ms=5, min_cleanable_dirty_ratio=0.1)


def test_a_partition_is_due_by_dirty_ratio_or_by_max_lag() -> None:
    config = CleanerConfig(min_cleanable_dirty_ratio=0.5, max_compaction_lag_ms=1000)
    # 40 of 100 offsets dirty: not due, unless the oldest dirty batch waited max lag.
    assert not config.is_due(0, 60, 100, first_dirty_timestamp_ms=500, now_ms=1000)
    assert config.is_due(0, 60, 100, first_dirty_timestamp_ms=0, now_ms=1000)
    assert config.is_due(0, 50, 100, first_dirty_timestamp_ms=None, now_ms=1000)
    assert not config.is_due(0, 100, 100, first_dirty_timestamp_ms=0, now_ms=5000)  # clean
    # A log start past the last cleaning: everything left is dirty.
    assert config.is_due(80, 10, 100, first_dirty_timestamp_ms=None, now_ms=0)


def test_the_latest_record_of_a_key_is_kept_and_old_tombstones_go() -> None:
    keys = KeyMap()
    first = [RecordKeyInfo(0, b"a", False, 100), RecordKeyInfo(1, b"b", False, 100),
             RecordKeyInfo(2, None, False, 100)]  # fmt: skip
    later = [RecordKeyInfo(0, b"a", True, 100), RecordKeyInfo(1, b"c", True, 900)]
    keys.put_batch(0, first)
    keys.put_batch(10, later)
    # a@0 is superseded by the tombstone a@10; b@1 is the latest b; keyless records stay.
    assert keys.kept_deltas(0, first, expire_tombstones_before_ms=500) == {1, 2}
    # The tombstone a@10 is older than the cutoff and goes; c's is younger and stays.
    assert keys.kept_deltas(10, later, expire_tombstones_before_ms=500) == {1}


def test_the_key_map_is_bounded() -> None:
    keys = KeyMap(entries_max=3)
    batch = [RecordKeyInfo(i, f"k{i}".encode(), False, 0) for i in range(2)]
    assert keys.fits(batch)
    keys.put_batch(0, batch)
    assert keys.fits(batch)  # the same keys again need no room
    more = [RecordKeyInfo(i, f"n{i}".encode(), False, 0) for i in range(2)]
    assert not keys.fits(more)


# -- the job ----------------------------------------------------------------------------------


async def _write(
    store: ObjectStore, meta: MetadataStore, batches: list[list[tuple[bytes | None, bytes | None]]],
    compression: int,
) -> None:
    writer = SegmentWriter(
        store, meta, flush_interval_ms=1, flush_bytes_max=1 << 20, uploads_in_flight_max=1,
        buffer_bytes_max=1 << 20, on_commit=lambda _: None, commit_within_ms=60_000,
    )  # fmt: skip
    await writer.start()
    try:
        now = int(time.time() * 1000)
        for records in batches:
            data = make_batch(records, timestamp_ms=now, compression=compression)
            outcome = (await writer.append([AppendItem("t", 0, data, parse_header(data))]))[0]
            assert outcome.error_code == 0
    finally:
        await writer.close()


async def _log(store: ObjectStore, meta: MetadataStore) -> list[tuple[int, bytes | None, bool]]:
    """(offset, key, tombstone) of every record the index points at, in offset order."""
    out: list[tuple[int, bytes | None, bool]] = []
    for row in await meta.read_batches("t", 0, 0, 1 << 30, 1 << 20):
        data = await store.get_range(row.file_key, row.byte_pos, row.byte_pos + row.byte_len)
        assert parse_header(data).last_offset_delta == row.last_offset - row.base_offset
        out.extend((row.base_offset + r.offset_delta, r.key, r.is_tombstone)
                   for r in record_keys(data))  # fmt: skip
    return out


@pytest.mark.parametrize("compression", [0, 4])
async def test_cleaning_keeps_the_latest_record_of_every_key_at_its_offset(
    env: tuple[ObjectStore, MetadataStore], compression: int
) -> None:
    store, meta = env
    await meta.create_topic("t", 1, {"cleanup.policy": "compact", "delete.retention.ms": "0"})
    # 10 batches of 5 records over keys k0..k6; key k3 ends in a tombstone, k6 gets one and
    # then a value again.
    batches: list[list[tuple[bytes | None, bytes | None]]] = []
    latest: dict[bytes | None, tuple[int, bytes | None]] = {}
    for b in range(10):
        records: list[tuple[bytes | None, bytes | None]] = []
        for i in range(5):
            offset = b * 5 + i
            key = f"k{offset % 7}".encode()
            tombstone = (key == b"k3" and b >= 8) or (key == b"k6" and b == 4)
            value = None if tombstone else b"v%d" % offset
            records.append((key, value))
            latest[key] = (offset, value)
        batches.append(records)
    await _write(store, meta, batches, compression)
    now = [int(time.time() * 1000) + 1000]  # tombstones with delete.retention.ms=0 expire
    cleaner = LogCleaner(store, meta, file_bytes_target=MiB,
                         commit_within_ms=60_000, clock_ms=lambda: now[0])  # fmt: skip
    result = await cleaner.run_once()
    assert result.partitions == 1 and result.dropped > 0 and result.rewritten > 0
    want = sorted((o, k, False) for k, (o, v) in latest.items() if v is not None)
    assert await _log(store, meta) == want
    state = await meta.partition_state("t", 0)
    assert state is not None and (state.log_start_offset, state.high_watermark) == (0, 50)
    # Clean now: a second cycle has nothing to do.
    again = await cleaner.run_once()
    assert (again.partitions, again.rewritten, again.dropped) == (0, 0, 0)
    # 40 new records of k0 are not dirty enough (40 of 90 offsets, the ratio is 0.5); 60 are.
    await _write(store, meta, [[(b"k0", b"new")] * 40], compression)
    assert (await cleaner.run_once()).partitions == 0
    await _write(store, meta, [[(b"k0", b"new")] * 20], compression)
    assert (await cleaner.run_once()).partitions == 1
    log = await _log(store, meta)
    assert [o for o, k, _ in log if k == b"k0"] == [109]
    assert len(log) == len(want)


async def test_topics_without_compact_are_left_alone(
    env: tuple[ObjectStore, MetadataStore],
) -> None:
    store, meta = env
    await meta.create_topic("t", 1, {})
    await _write(store, meta, [[(b"k", b"v")] * 3] * 3, 0)
    before = await _log(store, meta)
    cleaner = LogCleaner(store, meta, file_bytes_target=MiB,
                         commit_within_ms=60_000)  # fmt: skip
    assert (await cleaner.run_once()).partitions == 0
    assert await _log(store, meta) == before


async def test_a_cleaning_that_lost_rows_to_a_concurrent_move_is_done_again(
    env: tuple[ObjectStore, MetadataStore],
) -> None:
    """A merge (another job, another agent) moved a row the cleaning meant to drop: the swap
    leaves it, so the partition must stay dirty and the next cycle drop it."""
    store, meta = env
    await meta.create_topic("t", 1, {"cleanup.policy": "compact"})
    await _write(store, meta, [[(b"k", b"old")], [(b"k", b"new")]], 0)
    real_swap = meta.swap_files
    raced: list[bool] = []

    async def swap_after_a_move(file, level, moves, drops):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            # Meanwhile, the row of k@0 moves to another (merged) file, bytes and all.
            row = drops[0]
            key = segment_key(row.file_id)
            data = await store.get_range(key, row.byte_pos, row.byte_pos + row.byte_len)
            other_id = new_file_id()
            other = FileInfo(other_id, segment_key(other_id), len(data) + 8)
            await store.put_create(other.key, b"SHSG\x00\x01\x00\x00" + data)
            await real_swap(other, 1, [RowMove(row, 8, row.byte_len)], [])
        return await real_swap(file, level, moves, drops)

    meta.swap_files = swap_after_a_move  # type: ignore[method-assign]
    cleaner = LogCleaner(store, meta, file_bytes_target=MiB, commit_within_ms=60_000)
    first = await cleaner.run_once()
    assert first.partitions == 1 and first.dropped == 0  # the drop found the row gone
    assert [(o, k) for o, k, _ in await _log(store, meta)] == [(0, b"k"), (1, b"k")]
    second = await cleaner.run_once()
    assert second.partitions == 1 and second.dropped == 1
    assert [(o, k) for o, k, _ in await _log(store, meta)] == [(1, b"k")]
