"""File compaction: the merge plan and the merged file (pure), then the job against the real
metadata stores (SQLite, PostgreSQL) and a local-folder object store, behind a real writer."""

from __future__ import annotations

import time

from shoal.jobs.compaction import FileCompactor
from shoal.jobs.merge import merge_rows, plan_merges
from shoal.meta.store import CompactionFile, FileRow, MetadataStore
from shoal.objstore.store import ObjectStore
from shoal.protocol.batch import parse_header
from shoal.write.segment_format import decode_segment
from shoal.write.writer import AppendItem, SegmentWriter
from tests.unit import job_stores
from tests.unit.batchgen import make_batch

MiB = 1024 * 1024
env = job_stores.env  # the fixture: an object store and the test's metadata store


def _file(n: int, size: int, level: int = 0, created_at_ms: int = 0) -> CompactionFile:
    return CompactionFile(f"f{n:03d}", f"segments/f{n:03d}.seg", size, level, created_at_ms)


def _ids(plans: list[list[CompactionFile]]) -> list[list[str]]:
    return [[f.file_id for f in plan] for plan in plans]


# -- the plan ---------------------------------------------------------------------------------


def test_full_runs_merge_and_a_young_short_tail_waits() -> None:
    files = [_file(i, 1000, created_at_ms=100) for i in range(10)]
    plans = plan_merges(files, target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=200)
    # Runs of four, the last two wait: two files, far from half the target, written 100 ms ago.
    assert _ids(plans) == [["f000", "f001", "f002", "f003"], ["f004", "f005", "f006", "f007"]]


def test_an_idle_tail_merges_and_a_lone_file_never_does() -> None:
    files = [_file(i, 1000, created_at_ms=100) for i in range(5)]
    plans = plan_merges(files, target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=1100)
    assert _ids(plans) == [["f000", "f001", "f002", "f003"]]  # f004 alone: nothing to merge it with
    plans = plan_merges(files[:3], target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=1100)
    assert _ids(plans) == [["f000", "f001", "f002"]]


def test_runs_stop_before_the_target() -> None:
    # 400 KiB files, 1 MiB target: two per run (a third would pass the target); the tail holds
    # 400 KiB, less than half the target, and waits.
    files = [_file(i, 400 * 1024, created_at_ms=100) for i in range(5)]
    plans = plan_merges(files, target_bytes=MiB, fan_in=32, idle_ms=1000, now_ms=200)
    assert _ids(plans) == [["f000", "f001"], ["f002", "f003"]]
    # A tail holding half the target merges at once.
    plans = plan_merges(files[:2], target_bytes=MiB, fan_in=32, idle_ms=1000, now_ms=200)
    assert _ids(plans) == [["f000", "f001"]]


def test_levels_merge_apart_until_all_is_quiet() -> None:
    files = [_file(i, 1000, level=i % 2, created_at_ms=100) for i in range(8)]
    plans = plan_merges(files, target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=200)
    assert _ids(plans) == [["f000", "f002", "f004", "f006"], ["f001", "f003", "f005", "f007"]]
    files = [_file(0, 1000, level=2, created_at_ms=100), _file(1, 1000, level=0, created_at_ms=100)]
    assert plan_merges(files, target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=200) == []
    plans = plan_merges(files, target_bytes=MiB, fan_in=4, idle_ms=1000, now_ms=1100)
    assert _ids(plans) == [["f000", "f001"]]


# -- the merged file --------------------------------------------------------------------------


def _segment(batches: list[tuple[str, int, bytes]]) -> tuple[bytes, list[int]]:
    """A file of raw batches after an 8-byte header, and the position of each."""
    out, positions = bytearray(b"SHSG\x00\x01\x00\x00"), []
    for _, _, data in batches:
        positions.append(len(out))
        out += data
    return bytes(out), positions


def test_merged_file_holds_each_partition_contiguous_and_in_order() -> None:
    b = [make_batch([(b"k", f"v{i}".encode())] * (i + 1)) for i in range(4)]
    old_a, pos_a = _segment([("t", 0, b[0]), ("t", 1, b[1])])
    old_b, pos_b = _segment([("t", 1, b[2]), ("t", 0, b[3])])
    rows = [  # as `file_rows` orders them: topic, partition, offset
        FileRow("a", "t", 0, 0, 0, pos_a[0], len(b[0])),
        FileRow("b", "t", 0, 1, 4, pos_b[1], len(b[3])),
        FileRow("a", "t", 1, 0, 1, pos_a[1], len(b[1])),
        FileRow("b", "t", 1, 2, 4, pos_b[0], len(b[2])),
    ]
    merged = merge_rows({"a": old_a, "b": old_b}, rows)
    assert merged.skipped == []
    entries = decode_segment(merged.data)
    assert [(e.partition, e.record_count) for e in entries] == [(0, 1), (0, 4), (1, 2), (1, 3)]
    for move, want in zip(merged.moves, [b[0], b[3], b[1], b[2]], strict=True):
        assert merged.data[move.byte_pos : move.byte_pos + move.byte_len] == want
    assert [m.row for m in merged.moves] == rows


def test_a_corrupt_or_missing_batch_stays_where_it_is() -> None:
    good, bad = make_batch([(b"k", b"good")]), bytearray(make_batch([(b"k", b"bad!")]))
    bad[-1] ^= 0xFF  # the CRC no longer matches
    old, pos = _segment([("t", 0, good), ("t", 0, bytes(bad))])
    rows = [
        FileRow("a", "t", 0, 0, 0, pos[0], len(good)),
        FileRow("a", "t", 0, 1, 1, pos[1], len(bad)),
        FileRow("gone", "t", 0, 2, 2, 8, len(good)),
        FileRow("a", "t", 0, 3, 5, pos[0], len(good)),  # the row says 3 offsets, the batch 1
    ]
    merged = merge_rows({"a": old}, rows)
    assert [m.row.base_offset for m in merged.moves] == [0]
    assert [r.base_offset for r in merged.skipped] == [1, 2, 3]


# -- the job ----------------------------------------------------------------------------------


async def _write_files(
    store: ObjectStore, meta: MetadataStore, rounds: int, partitions: int
) -> dict[tuple[int, int], bytes]:
    """`rounds` segment files, each with one batch per partition; the batch bytes by
    (partition, base offset)."""
    writer = SegmentWriter(
        store,
        meta,
        flush_interval_ms=1,  # each round's append waits for its commit: one file per round
        flush_bytes_max=1 << 20,
        uploads_in_flight_max=1,
        buffer_bytes_max=1 << 20,
        on_commit=lambda _: None,
        commit_within_ms=60_000,
    )
    await writer.start()
    written: dict[tuple[int, int], bytes] = {}
    try:
        for r in range(rounds):
            items = []
            for p in range(partitions):
                data = make_batch([(f"k{p}".encode(), f"r{r}p{p}".encode())] * (r % 3 + 1))
                items.append(AppendItem("t", p, data, parse_header(data)))
            for item, outcome in zip(items, await writer.append(items), strict=True):
                assert outcome.error_code == 0
                written[(item.partition, outcome.base_offset)] = bytes(item.data)
    finally:
        await writer.close()
    return written


async def _layout(
    store: ObjectStore, meta: MetadataStore, partitions: int
) -> tuple[set[str], dict[tuple[int, int], bytes]]:
    """(files the rows point into, each row's bytes read back at its place)."""
    keys: set[str] = set()
    read: dict[tuple[int, int], bytes] = {}
    for p in range(partitions):
        for row in await meta.read_batches("t", p, 0, 1 << 30, 1 << 20):
            keys.add(row.file_key)
            read[(p, row.base_offset)] = await store.get_range(
                row.file_key, row.byte_pos, row.byte_pos + row.byte_len
            )
    return keys, read


async def test_compaction_merges_files_and_every_batch_reads_back_the_same(
    env: tuple[ObjectStore, MetadataStore],
) -> None:
    store, meta = env
    await meta.create_topic("t", 3, {})
    written = await _write_files(store, meta, rounds=10, partitions=3)
    files_before, read_before = await _layout(store, meta, 3)
    assert len(files_before) == 10 and read_before == written
    # Every file older than an interval, none idle yet (3 intervals).
    now = [int(time.time() * 1000) + 1500]
    compactor = FileCompactor(
        store, meta, interval_ms=1000, target_bytes=MiB, commit_within_ms=60_000, fan_in=4,
        clock_ms=lambda: now[0],
    )
    first = await compactor.run_once()
    # Runs of four: 10 files become 2 merged ones and 2 that wait (a young, short tail).
    assert (first.merges, first.files_in, first.rows_moved) == (2, 8, 24)
    files_after, read_after = await _layout(store, meta, 3)
    assert len(files_after) == 4 and read_after == written
    # The two merged files are level 1, the waiting two level 0; once nothing new came for
    # three intervals, the levels merge as one.
    now[0] += compactor.idle_ms
    assert (await compactor.run_once()).files_in == 4
    files_final, read_final = await _layout(store, meta, 3)
    assert len(files_final) == 1 and read_final == written
    # Every old file is released: the GC deletes them one grace later.
    released = await meta.unreferenced_files(int(time.time() * 1000) + 1)
    assert {f.key for f in released} >= files_before


async def test_a_cycle_lists_again_while_listings_come_back_full(
    env: tuple[ObjectStore, MetadataStore],
) -> None:
    """A backlog larger than one listing is merged in one cycle, not one listing per cycle."""
    store, meta = env
    await meta.create_topic("t", 1, {})
    written = await _write_files(store, meta, rounds=20, partitions=1)
    now = int(time.time() * 1000) + 1500  # older than an interval, not idle
    compactor = FileCompactor(
        store, meta, interval_ms=1000, target_bytes=MiB, commit_within_ms=60_000, fan_in=4,
        candidates_max=8, clock_ms=lambda: now,
    )  # fmt: skip
    result = await compactor.run_once()
    # Listings of 8, 8 and 8 files, two runs of four each: the third holds the last 4 written
    # files and 4 merged ones (the test's clock, 1.5 s ahead, makes them old enough at once),
    # then a listing of 2 merged files of different levels, young on the clock: no run.
    assert (result.merges, result.files_in) == (6, 24)
    files, read = await _layout(store, meta, 1)
    assert len(files) == 2 and read == written
