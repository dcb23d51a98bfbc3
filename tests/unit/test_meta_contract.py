"""Contract suite for `MetadataStore` implementations.

Every test runs against each backend of the `db_url` fixture (tests/conftest.py, shared by all
contract suites); PostgreSQL runs on a throwaway server (tests/pg_server.py, started once per
session); `-m "not postgres"` leaves it out.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from shoal.meta.store import (
    BatchOutcome,
    CommitDeadlineError,
    DuplicateFileError,
    FileInfo,
    FileRow,
    InvalidPartitionsError,
    MetadataError,
    MetadataStore,
    OffsetAtTime,
    PartitionState,
    PendingBatch,
    RowMove,
    SwapResult,
    TopicExistsError,
    UnknownTopicError,
)

_file_ids = itertools.count()

Opener = Callable[[], Awaitable[MetadataStore]]


def new_file(size: int = 10_000) -> FileInfo:
    file_id = f"f{next(_file_ids):08d}-{uuid.uuid4().hex[:8]}"
    return FileInfo(file_id, f"segments/{file_id}.seg", size)


def batch(
    topic: str = "t",
    partition: int = 0,
    count: int = 1,
    *,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    ts: int = 1_000,
    pos: int = 0,
    length: int = 100,
) -> PendingBatch:
    return PendingBatch(
        topic=topic,
        partition=partition,
        byte_pos=pos,
        byte_len=length,
        record_count=count,
        base_timestamp=ts,
        max_timestamp=ts,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


async def all_offsets(store: MetadataStore, topic: str, partition: int) -> list[tuple[int, int]]:
    rows = await store.read_batches(topic, partition, 0, max_bytes=1 << 40, max_batches=1 << 30)
    return [(r.base_offset, r.last_offset) for r in rows]


# -- topics ---------------------------------------------------------------------------------


async def test_topic_crud_and_configs(store: MetadataStore) -> None:
    created = await store.create_topic("orders", 3, {"retention.ms": "1000"})
    assert created.name == "orders" and created.partitions == 3
    assert created.configs == {"retention.ms": "1000"}
    assert await store.get_topic("orders") == created
    assert await store.get_topic("missing") is None
    with pytest.raises(TopicExistsError):
        await store.create_topic("orders", 1, {})
    other = await store.create_topic("billing", 1, {})
    assert other.topic_id != created.topic_id
    assert [t.name for t in await store.list_topics()] == ["billing", "orders"]

    updated = await store.set_topic_configs(
        "orders", {"cleanup.policy": "compact", "retention.ms": None}
    )
    assert updated.configs == {"cleanup.policy": "compact"}
    replaced = await store.replace_topic_configs("orders", {"segment.ms": "5"})
    assert replaced.configs == {"segment.ms": "5"}
    fetched = await store.get_topic("orders")
    assert fetched is not None and fetched.configs == {"segment.ms": "5"}
    assert fetched.topic_id == created.topic_id

    grown = await store.create_partitions("orders", 5)
    assert grown.partitions == 5
    assert (await store.partition_state("orders", 4)) == PartitionState(0, 0)
    with pytest.raises(InvalidPartitionsError):
        await store.create_partitions("orders", 5)
    with pytest.raises(UnknownTopicError):
        await store.create_partitions("missing", 2)
    with pytest.raises(UnknownTopicError):
        await store.set_topic_configs("missing", {"a": "b"})
    with pytest.raises(UnknownTopicError):
        await store.replace_topic_configs("missing", {})
    with pytest.raises(UnknownTopicError):
        await store.delete_topic("missing")


async def test_get_topic_by_id(store: MetadataStore) -> None:
    created = await store.create_topic("t", 1, {})
    extended = store
    assert await extended.get_topic_by_id(created.topic_id) == created
    assert await extended.get_topic_by_id(uuid.uuid4()) is None


async def test_partition_states_skip_unknown(store: MetadataStore) -> None:
    await store.create_topic("t", 2, {})
    await store.commit_file(new_file(), [batch("t", 1, 4)])
    states = await store.partition_states([("t", 0), ("t", 1), ("t", 2), ("nope", 0)])
    assert states == {("t", 0): PartitionState(0, 0), ("t", 1): PartitionState(0, 4)}
    assert await store.partition_state("t", 9) is None
    assert await store.partition_states([]) == {}


# -- commits --------------------------------------------------------------------------------


async def test_commit_assigns_dense_offsets_across_files_and_partitions(
    store: MetadataStore,
) -> None:
    await store.create_topic("a", 2, {})
    await store.create_topic("b", 1, {})
    first = await store.commit_file(
        new_file(), [batch("a", 0, 3), batch("b", 0, 2), batch("a", 0, 1), batch("a", 1, 5)]
    )
    assert [o.base_offset for o in first] == [0, 0, 3, 0]
    assert all(o.error_code == 0 and not o.duplicate for o in first)
    assert all(o.log_start_offset == 0 for o in first)
    second = await store.commit_file(new_file(), [batch("a", 1, 2), batch("a", 0, 10)])
    assert [o.base_offset for o in second] == [5, 4]
    assert await all_offsets(store, "a", 0) == [(0, 2), (3, 3), (4, 13)]
    assert await all_offsets(store, "a", 1) == [(0, 4), (5, 6)]
    assert await all_offsets(store, "b", 0) == [(0, 1)]
    assert await store.partition_state("a", 0) == PartitionState(0, 14)


async def test_unknown_partition_gets_error_3_and_others_commit(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    out = await store.commit_file(
        new_file(), [batch("t", 0, 2), batch("t", 7), batch("ghost", 0), batch("t", 0, 1)]
    )
    assert [o.error_code for o in out] == [0, 3, 3, 0]
    assert out[1].base_offset == -1 and out[2].base_offset == -1
    assert [out[0].base_offset, out[3].base_offset] == [0, 2]
    assert await all_offsets(store, "t", 0) == [(0, 1), (2, 2)]


async def test_commit_with_no_valid_batch_records_nothing(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    out = await store.commit_file(new_file(), [batch("ghost", 0)])
    assert out == [BatchOutcome(3, -1)]
    assert await store.partition_state("t", 0) == PartitionState(0, 0)


async def test_same_file_committed_twice_is_refused(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    f = new_file()
    await store.commit_file(f, [batch("t", 0)])
    with pytest.raises(MetadataError):
        await store.commit_file(f, [batch("t", 0)])
    assert await all_offsets(store, "t", 0) == [(0, 0)]


async def test_group_commit_applies_files_in_order(store: MetadataStore) -> None:
    """commit_files: one transaction, files in list order; a later file sees the offsets and
    producer sequences the earlier ones wrote (a resend across files is a duplicate)."""
    await store.create_topic("t", 2, {})
    first = batch("t", 0, 3, pid=4, epoch=0, seq=0)
    files = [
        (new_file(), [first, batch("t", 1, 2)]),
        (new_file(), [batch("t", 0, 2, pid=4, epoch=0, seq=3)]),
        (new_file(), [batch("t", 1, 1), first, batch("t", 0, 1, pid=4, epoch=0, seq=9)]),
    ]
    out = await store.commit_files(files)
    assert [[(o.error_code, o.base_offset, o.duplicate) for o in f] for f in out] == [
        [(0, 0, False), (0, 0, False)],
        [(0, 3, False)],
        [(0, 2, False), (0, 0, True), (45, -1, False)],
    ]
    assert await all_offsets(store, "t", 0) == [(0, 2), (3, 4)]
    assert await all_offsets(store, "t", 1) == [(0, 1), (2, 2)]


async def test_group_commit_is_all_or_nothing(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    taken = new_file()
    await store.commit_file(taken, [batch("t", 0)])
    with pytest.raises(MetadataError):
        await store.commit_files([(new_file(), [batch("t", 0, 4)]), (taken, [batch("t", 0)])])
    assert await all_offsets(store, "t", 0) == [(0, 0)]
    assert await store.partition_state("t", 0) == PartitionState(0, 1)


async def test_a_commit_after_its_deadline_is_refused_and_writes_nothing(
    store: MetadataStore,
) -> None:
    """Issue 12 item 4: a file the GC may already have deleted must never be indexed."""
    await store.create_topic("t", 1, {})
    now = int(time.time() * 1000)
    late = replace(new_file(), commit_by_ms=now - 1)
    with pytest.raises(CommitDeadlineError):
        await store.commit_file(late, [batch("t", 0)])
    # In a group, one late file refuses the whole transaction.
    with pytest.raises(CommitDeadlineError):
        await store.commit_files([(new_file(), [batch("t", 0)]), (late, [batch("t", 0)])])
    assert await store.partition_state("t", 0) == PartitionState(0, 0)
    # Nothing recorded either: the GC can still claim the file as an orphan.
    assert await store.commit_file(replace(late, commit_by_ms=None), []) == []
    on_time = replace(new_file(), commit_by_ms=now + 60_000)
    assert (await store.commit_file(on_time, [batch("t", 0)]))[0] == BatchOutcome(0, 0, 0)


# -- idempotent producers -------------------------------------------------------------------


async def test_duplicate_returns_original_offsets(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    pid = 7
    sent = [batch(count=2, pid=pid, epoch=0, seq=s) for s in (0, 2, 4, 6, 8, 10)]
    offsets = [(await store.commit_file(new_file(), [b]))[0].base_offset for b in sent]
    assert offsets == [0, 2, 4, 6, 8, 10]
    # The last 5 are remembered: a resend answers with the original offset and adds no row.
    resent = await store.commit_file(new_file(), [sent[3], sent[5]])
    assert resent == [BatchOutcome(0, 6, 0, True), BatchOutcome(0, 10, 0, True)]
    assert (await store.partition_state("t", 0)) == PartitionState(0, 12)
    # The oldest one fell out of the window: it is now a sequence error, not a duplicate.
    too_old = await store.commit_file(new_file(), [sent[0]])
    assert too_old[0].error_code == 45
    assert len(await all_offsets(store, "t", 0)) == 6


async def test_duplicate_within_one_file(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    b0 = batch(count=3, pid=1, epoch=0, seq=0)
    b1 = batch(count=1, pid=1, epoch=0, seq=3)
    out = await store.commit_file(new_file(), [b0, b1, b0])
    assert [(o.base_offset, o.duplicate) for o in out] == [(0, False), (3, False), (0, True)]


async def test_sequence_gap_is_45(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    await store.commit_file(new_file(), [batch(count=5, pid=3, epoch=0, seq=0)])
    out = await store.commit_file(
        new_file(),
        [batch(pid=3, epoch=0, seq=6), batch(pid=3, epoch=0, seq=5), batch(pid=3, epoch=0, seq=7)],
    )
    assert [o.error_code for o in out] == [45, 0, 45]
    assert out[1].base_offset == 5
    assert out[0].base_offset == -1


async def test_first_batch_of_unknown_producer_accepts_any_sequence(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    out = await store.commit_file(new_file(), [batch(count=2, pid=4, epoch=2, seq=40)])
    assert out[0].error_code == 0
    nxt = await store.commit_file(new_file(), [batch(pid=4, epoch=2, seq=42)])
    assert nxt[0] == BatchOutcome(0, 2, 0, False)


async def test_sequence_wraps_at_int32(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    top = 2**31 - 1
    await store.commit_file(new_file(), [batch(count=2, pid=5, epoch=0, seq=top - 1)])
    out = await store.commit_file(new_file(), [batch(pid=5, epoch=0, seq=0)])
    assert out[0].error_code == 0
    # A batch crossing the wrap: its last sequence is (base + count - 1) mod 2^31.
    await store.create_topic("w", 1, {})
    await store.commit_file(new_file(), [batch("w", count=3, pid=6, epoch=0, seq=top)])
    after = await store.commit_file(new_file(), [batch("w", pid=6, epoch=0, seq=2)])
    assert after[0].error_code == 0


async def test_stale_epoch_is_47_and_new_epoch_restarts_at_zero(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    await store.commit_file(new_file(), [batch(pid=9, epoch=1, seq=0)])
    stale = await store.commit_file(new_file(), [batch(pid=9, epoch=0, seq=1)])
    assert stale[0].error_code == 47
    bad_bump = await store.commit_file(new_file(), [batch(pid=9, epoch=2, seq=1)])
    assert bad_bump[0].error_code == 45
    bump = await store.commit_file(new_file(), [batch(pid=9, epoch=2, seq=0)])
    assert bump[0] == BatchOutcome(0, 1, 0, False)
    # The old epoch is fenced now.
    again = await store.commit_file(new_file(), [batch(pid=9, epoch=1, seq=1)])
    assert again[0].error_code == 47
    assert await all_offsets(store, "t", 0) == [(0, 0), (1, 1)]


async def test_producer_state_is_per_partition(store: MetadataStore) -> None:
    await store.create_topic("t", 2, {})
    out = await store.commit_file(
        new_file(), [batch("t", 0, pid=2, epoch=0, seq=0), batch("t", 1, pid=2, epoch=0, seq=0)]
    )
    assert [(o.error_code, o.duplicate) for o in out] == [(0, False), (0, False)]


async def test_non_idempotent_batches_are_never_deduplicated(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    b = batch(count=2)
    out = await store.commit_file(new_file(), [b, b])
    assert [(o.base_offset, o.duplicate) for o in out] == [(0, False), (2, False)]


# -- reading the index ----------------------------------------------------------------------


async def test_read_batches_limits(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    f = new_file(size=4321)
    await store.commit_file(
        f, [batch(count=10, pos=100 * i, length=100, ts=1000 + i) for i in range(10)]
    )
    rows = await store.read_batches("t", 0, 0, max_bytes=250)
    assert [r.base_offset for r in rows] == [0, 10, 20]
    assert rows[0].file_key == f.key and rows[0].file_size == 4321
    assert (rows[1].byte_pos, rows[1].byte_len, rows[1].record_count) == (100, 100, 10)
    assert rows[1].last_offset == 19 and rows[1].max_timestamp == 1001
    # The first row always comes back, however small max_bytes is.
    assert [r.base_offset for r in await store.read_batches("t", 0, 0, max_bytes=0)] == [0]
    # An offset inside a batch returns that whole batch first.
    inside = await store.read_batches("t", 0, 57, max_bytes=10_000, max_batches=2)
    assert [r.base_offset for r in inside] == [50, 60]
    assert await store.read_batches("t", 0, 100, max_bytes=10_000) == []
    assert await store.read_batches("t", 0, 1_000, max_bytes=10_000) == []
    assert await store.read_batches("t", 5, 0, max_bytes=10_000) == []
    everything = await store.read_batches("t", 0, 0, max_bytes=1 << 30)
    assert len(everything) == 10


async def test_timestamp_lookups(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    assert await store.offset_for_timestamp("t", 0, 0) is None
    assert await store.max_timestamp_offset("t", 0) is None
    stamps = [100, 300, 200, 300, 250]
    await store.commit_file(new_file(), [batch(count=2, ts=ts) for ts in stamps])
    assert await store.offset_for_timestamp("t", 0, 0) == OffsetAtTime(0, 100)
    assert await store.offset_for_timestamp("t", 0, 150) == OffsetAtTime(2, 300)
    assert await store.offset_for_timestamp("t", 0, 300) == OffsetAtTime(2, 300)
    assert await store.offset_for_timestamp("t", 0, 301) is None
    assert await store.max_timestamp_offset("t", 0) == OffsetAtTime(2, 300)



async def test_offset_keeping_bytes(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    assert await store.offset_keeping_bytes("t", 0, 0) is None
    # Batches at offsets 0, 10, 20, 30 of 100, 200, 300, 400 bytes.
    await store.commit_file(
        new_file(), [batch(count=10, pos=0, length=100 * (i + 1)) for i in range(4)]
    )
    assert await store.offset_keeping_bytes("t", 0, 400) == 30  # the last batch holds 400
    assert await store.offset_keeping_bytes("t", 0, 401) == 20  # 700 from offset 20
    assert await store.offset_keeping_bytes("t", 0, 1000) == 0
    assert await store.offset_keeping_bytes("t", 0, 1001) is None  # all of it is less
    assert await store.offset_keeping_bytes("t", 0, 0) == 30
    assert await store.offset_keeping_bytes("t", 1, 0) is None

# -- lifecycle ------------------------------------------------------------------------------


async def test_delete_topic_removes_partitions_rows_and_producer_state(
    store: MetadataStore,
) -> None:
    old = await store.create_topic("t", 2, {})
    await store.commit_file(new_file(), [batch("t", 0, 3, pid=1, epoch=0, seq=0), batch("t", 1)])
    await store.delete_topic("t")
    assert await store.get_topic("t") is None
    assert await store.list_topics() == []
    assert await store.partition_state("t", 0) is None
    assert await store.read_batches("t", 0, 0, 1 << 20) == []
    out = await store.commit_file(new_file(), [batch("t", 0)])
    assert out[0].error_code == 3
    new = await store.create_topic("t", 1, {})
    assert new.topic_id != old.topic_id
    # Fresh partition and fresh producer state: offsets restart, the old sequence is no dup.
    again = await store.commit_file(new_file(), [batch("t", 0, 3, pid=1, epoch=0, seq=0)])
    assert again[0] == BatchOutcome(0, 0, 0, False)


async def test_a_re_created_topic_is_another_topic(store: MetadataStore) -> None:
    """Issue 12 item 3: state, commits and deletes name the topic by id, so nothing meant for
    (or read from) a deleted topic reaches the topic re-created under its name."""
    old = await store.create_topic("t", 1, {})
    state = await store.partition_state("t", 0)
    assert state is not None and state.topic_id == old.topic_id
    assert (await store.partition_states([("t", 0)]))[("t", 0)].topic_id == old.topic_id
    await store.delete_topic("t", old.topic_id)
    new = await store.create_topic("t", 1, {})
    state = await store.partition_state("t", 0)
    assert state is not None and state.topic_id == new.topic_id
    # A batch validated against the deleted topic is refused, one of the new topic is not.
    stale = replace(batch("t", 0), topic_id=old.topic_id)
    assert (await store.commit_file(new_file(), [stale]))[0].error_code == 3
    assert await store.partition_state("t", 0) == PartitionState(0, 0)
    fresh = replace(batch("t", 0), topic_id=new.topic_id)
    assert (await store.commit_file(new_file(), [stale, fresh])) == [
        BatchOutcome(3, -1),
        BatchOutcome(0, 0, 0),
    ]
    # A delete of the old id leaves the new topic alone.
    with pytest.raises(UnknownTopicError):
        await store.delete_topic("t", old.topic_id)
    assert await store.get_topic("t") == new


async def test_restart_keeps_everything(open_store: Opener) -> None:
    first = await open_store()
    topic = await first.create_topic("t", 2, {"k": "v"})
    await first.commit_file(new_file(), [batch("t", 1, 4, pid=11, epoch=0, seq=0)])
    pid, epoch = await first.init_producer("tx", -1, -1)
    await first.close()
    second = await open_store()
    assert await second.get_topic("t") == topic
    assert await second.partition_state("t", 1) == PartitionState(0, 4)
    dup = await second.commit_file(new_file(), [batch("t", 1, 4, pid=11, epoch=0, seq=0)])
    assert dup[0] == BatchOutcome(0, 0, 0, True)
    assert await second.init_producer("tx", -1, -1) == (pid, epoch + 1)


async def test_migrations_are_idempotent(open_store: Opener) -> None:
    a = await open_store()
    await a.create_topic("t", 1, {})
    b = await open_store()  # migrates the same, already current database
    c = await open_store()
    assert [t.name for t in await c.list_topics()] == ["t"]
    versions = [await s.schema_version() for s in (a, b, c)]
    assert versions[0] >= 1 and versions == [versions[0]] * 3
    await b.close()
    await c.close()


async def test_concurrent_first_start_migrates_once(open_store: Opener) -> None:
    stores = await asyncio.gather(*[open_store() for _ in range(4)])
    await stores[0].create_topic("t", 1, {})
    assert await stores[3].get_topic("t") is not None
    versions = {await s.schema_version() for s in stores}
    assert len(versions) == 1


async def test_unreferenced_files_for_garbage_collection(store: MetadataStore) -> None:
    gc = store
    await store.create_topic("keep", 1, {})
    await store.create_topic("drop", 1, {})
    kept, dropped, garbage = new_file(), new_file(), new_file()
    await store.commit_file(kept, [batch("keep")])
    await store.commit_file(dropped, [batch("drop")])
    await store.commit_file(garbage, [batch("ghost")])
    future = int(time.time() * 1000) + 60_000
    assert await gc.unreferenced_files(created_before_ms=0) == []
    assert await gc.unreferenced_files(created_before_ms=future) == [garbage]
    await store.delete_topic("drop")
    assert await gc.unreferenced_files(created_before_ms=future) == [dropped, garbage]
    assert await gc.unreferenced_files(created_before_ms=future, limit=1) == [dropped]
    assert await gc.forget_files([kept.file_id, garbage.file_id]) == [garbage.file_id]
    assert await gc.unreferenced_files(created_before_ms=future) == [dropped]
    assert (await store.read_batches("keep", 0, 0, 1 << 20))[0].file_key == kept.key


async def test_advance_log_start_drops_rows_below_it(store: MetadataStore) -> None:
    ext = store
    await store.create_topic("t", 1, {})
    out = await store.commit_file(new_file(), [batch(count=5) for _ in range(4)])
    assert [o.base_offset for o in out] == [0, 5, 10, 15]
    assert await ext.advance_log_start("t", 0, 7) == PartitionState(7, 20)
    # The straddling batch stays: a fetch at the log start returns all of it.
    assert await all_offsets(store, "t", 0) == [(5, 9), (10, 14), (15, 19)]
    assert await ext.advance_log_start("t", 0, 3) == PartitionState(7, 20)  # never backwards
    assert await ext.advance_log_start("t", 0, 99) == PartitionState(20, 20)  # clamped
    assert await all_offsets(store, "t", 0) == []
    later = await store.commit_file(new_file(), [batch(count=2)])
    assert later[0] == BatchOutcome(0, 20, 20, False)
    assert await ext.advance_log_start("t", 5, 1) is None



async def test_the_grace_of_a_released_file_counts_from_its_release(store: MetadataStore) -> None:
    """DESIGN.md invariant 3: a file whose last rows retention (or DeleteRecords, or a topic
    deletion) dropped is not garbage until a grace after that, however old the file is: a
    reader that looked its rows up just before may still read it."""
    await store.create_topic("t", 1, {})
    await store.create_topic("d", 1, {})
    old_t, old_d = new_file(), new_file()
    await store.commit_file(old_t, [batch("t", count=5)])
    await store.commit_file(old_d, [batch("d", count=5)])
    await asyncio.sleep(0.02)  # both files are older than any cutoff taken from here on
    before_release = int(time.time() * 1000)
    await store.advance_log_start("t", 0, 5)
    await store.delete_topic("d")
    # Created before the cutoff, released after it: not listed yet.
    assert await store.unreferenced_files(created_before_ms=before_release) == []
    later = int(time.time() * 1000) + 1
    assert await store.unreferenced_files(created_before_ms=later) == [old_t, old_d]



# -- file compaction ------------------------------------------------------------------------


def _moves_into(rows: list[FileRow], start: int = 8) -> list[RowMove]:
    """Each row at its place in a merged file, one after another from `start`."""
    out, pos = [], start
    for row in rows:
        out.append(RowMove(row, pos, row.byte_len))
        pos += row.byte_len
    return out


async def test_compaction_swaps_rows_into_the_merged_file(store: MetadataStore) -> None:
    await store.create_topic("t", 2, {})
    a, b, big = new_file(1000), new_file(2000), new_file(50_000)
    await store.commit_file(a, [batch(count=2, pos=8), batch(partition=1, pos=108)])
    await store.commit_file(b, [batch(count=3, pos=8), batch(partition=1, count=1, pos=108)])
    await store.commit_file(big, [batch(count=1, pos=8)])
    future = int(time.time() * 1000) + 60_000
    candidates = await store.compaction_candidates(10_000, future)
    assert [(c.file_id, c.size, c.level) for c in candidates] == [
        (a.file_id, 1000, 0), (b.file_id, 2000, 0)
    ]
    assert await store.compaction_candidates(10_000, 0) == []
    rows = await store.file_rows([a.file_id, b.file_id])
    assert [(r.file_id, r.partition, r.base_offset, r.last_offset) for r in rows] == [
        (a.file_id, 0, 0, 1), (b.file_id, 0, 2, 4), (a.file_id, 1, 0, 0), (b.file_id, 1, 1, 1)
    ]
    merged = new_file(4000)
    result = await store.swap_files(merged, 1, _moves_into(rows), [])
    assert result == SwapResult(moved=4, dropped=0, released=2)
    for partition, offsets in ((0, [(0, 1), (2, 4), (5, 5)]), (1, [(0, 0), (1, 1)])):
        assert await all_offsets(store, "t", partition) == offsets
    read = await store.read_batches("t", 0, 0, 1 << 20)
    assert [(r.file_key, r.byte_pos) for r in read] == [
        (merged.key, 8), (merged.key, 108), (big.key, 8)
    ]
    # The old files are released (garbage one grace later), the merged one is a candidate of
    # level 1.
    assert {f.file_id for f in await store.unreferenced_files(future)} == {a.file_id, b.file_id}
    assert [(c.file_id, c.level) for c in await store.compaction_candidates(10_000, future)] == [
        (merged.file_id, 1)
    ]


async def test_a_swap_leaves_rows_that_moved_or_went_meanwhile(store: MetadataStore) -> None:
    """The check of the swap: retention dropped one row, another compactor moved another; only
    the rows still where the compactor read them move, and a merge that moved nothing leaves a
    file nothing points into (garbage)."""
    await store.create_topic("t", 1, {})
    a = new_file()
    await store.commit_file(a, [batch(count=5, pos=8 + 100 * i) for i in range(3)])
    rows = await store.file_rows([a.file_id])
    assert [r.base_offset for r in rows] == [0, 5, 10]
    await store.advance_log_start("t", 0, 5)  # retention: the first row goes
    other = new_file()
    assert (await store.swap_files(other, 1, _moves_into(rows[2:]), [])).moved == 1
    ours = new_file()
    result = await store.swap_files(ours, 1, _moves_into(rows), [])
    assert result == SwapResult(moved=1, dropped=0, released=1)
    read = await store.read_batches("t", 0, 0, 1 << 20)
    assert [(r.base_offset, r.file_key) for r in read] == [(5, ours.key), (10, other.key)]
    late = new_file()
    assert await store.swap_files(late, 2, _moves_into(rows), []) == SwapResult(0, 0, 0)
    future = int(time.time() * 1000) + 60_000
    assert late.file_id in {f.file_id for f in await store.unreferenced_files(future)}


async def test_a_swap_drops_superseded_rows(store: MetadataStore) -> None:
    await store.create_topic("t", 1, {})
    a = new_file()
    await store.commit_file(a, [batch(count=2, pos=8 + 100 * i) for i in range(3)])
    rows = await store.file_rows([a.file_id])
    merged = new_file()
    result = await store.swap_files(merged, 1, [RowMove(rows[2], 8, 50)], rows[:2])
    assert result == SwapResult(moved=1, dropped=2, released=1)
    read = await store.read_batches("t", 0, 0, 1 << 20)
    assert [(r.base_offset, r.last_offset, r.byte_pos, r.byte_len) for r in read] == [
        (4, 5, 8, 50)
    ]
    # Offsets stay: the high watermark, and a fetch inside the gap finds the next batch.
    assert await store.partition_state("t", 0) == PartitionState(0, 6)
    assert [r.base_offset for r in await store.read_batches("t", 0, 1, 1 << 20)] == [4]
    # A cleaning that only drops rows records no file.
    last = await store.file_rows([merged.file_id])
    assert await store.swap_files(None, 0, [], last) == SwapResult(0, 1, 1)
    assert await all_offsets(store, "t", 0) == []
    with pytest.raises(ValueError):
        await store.swap_files(None, 0, _moves_into(rows), [])


async def test_a_swap_is_refused_for_a_claimed_file_or_past_its_deadline(
    store: MetadataStore,
) -> None:
    await store.create_topic("t", 1, {})
    a = new_file()
    await store.commit_file(a, [batch(pos=8)])
    rows = await store.file_rows([a.file_id])
    claimed = new_file()
    await store.commit_file(claimed, [])  # the GC claimed it as an orphan
    with pytest.raises(DuplicateFileError):
        await store.swap_files(claimed, 1, _moves_into(rows), [])
    late = replace(new_file(), commit_by_ms=int(time.time() * 1000) - 1)
    with pytest.raises(CommitDeadlineError):
        await store.swap_files(late, 1, _moves_into(rows), [])
    assert (await store.read_batches("t", 0, 0, 1 << 20))[0].file_key == a.key


async def test_expire_producers_forgets_idle_state(store: MetadataStore) -> None:
    ext = store
    await store.create_topic("t", 1, {})
    pid, epoch = await store.init_producer(None, -1, -1)
    await store.commit_file(new_file(), [batch(count=3, pid=pid, epoch=epoch, seq=0)])
    assert await ext.expire_producers(idle_before_ms=0) == 0
    gap = await store.commit_file(new_file(), [batch(pid=pid, epoch=epoch, seq=9)])
    assert gap[0].error_code == 45
    assert await ext.expire_producers(idle_before_ms=int(time.time() * 1000) + 60_000) == 2
    # No state left: the next batch is accepted as a first batch, and the id cannot be bumped.
    accepted = await store.commit_file(new_file(), [batch(pid=pid, epoch=epoch, seq=9)])
    assert accepted[0] == BatchOutcome(0, 3, 0, False)
    fresh = await store.init_producer(None, pid, epoch)
    assert fresh[0] != pid and fresh[1] == 0


async def test_closed_store_raises_metadata_error(open_store: Opener) -> None:
    s = await open_store()
    await s.close()
    with pytest.raises(MetadataError):
        await s.get_topic("t")


# -- producer ids ---------------------------------------------------------------------------


async def test_init_producer(store: MetadataStore) -> None:
    a = await store.init_producer(None, -1, -1)
    b = await store.init_producer(None, -1, -1)
    assert a[1] == 0 and b[1] == 0 and a[0] != b[0]
    # Naming its current pair, an idempotent producer still gets a fresh id at epoch 0, as from
    # Kafka (it bumps epochs itself; Kafka never fences non-transactional producers).
    fresh = await store.init_producer(None, a[0], 0)
    assert fresh[0] not in (a[0], b[0]) and fresh[1] == 0

    t1 = await store.init_producer("txn-1", -1, -1)
    t2 = await store.init_producer("txn-1", -1, -1)
    assert t2 == (t1[0], t1[1] + 1)
    assert await store.init_producer("txn-1", t2[0], t2[1]) == (t1[0], t1[1] + 2)
    with pytest.raises(MetadataError):
        await store.init_producer("txn-1", t2[0], t2[1])  # fenced: not the current epoch
    other = await store.init_producer("txn-2", -1, -1)
    assert other[0] not in (t1[0], a[0], b[0], fresh[0])


async def test_every_store_takes_high_watermark_subscriptions(store: MetadataStore) -> None:
    """Part of the protocol on every backend: PostgreSQL notifies other stores
    (tests/integration/test_meta_postgres.py), SQLite documents a no-op. Commits go on as
    before either way."""
    seen: list[list[tuple[str, int, int]]] = []
    await store.subscribe_high_watermarks(seen.append)
    await store.create_topic("t", 1, {})
    await store.commit_file(new_file(), [batch()])
    assert await store.partition_state("t", 0) == PartitionState(0, 1)
    assert all(len(entry) == 3 for entries in seen for entry in entries)
