"""PostgreSQL-only behaviour of the metadata store, against a real server: several agents' pools
committing to the same partitions, LISTEN/NOTIFY hints, outages and timeouts. The shared
contract lives in tests/unit/test_meta_contract.py and runs on PostgreSQL too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from shoal.meta.group_store import CommittedOffset, GroupListing, StoredGroup, StoredMember
from shoal.meta.open import open_metadata_store
from shoal.meta.pg_listen import PAYLOAD_MAX, decode_payload, encode_payloads
from shoal.meta.postgres import PostgresMetadataStore
from shoal.meta.store import DuplicateFileError, FileInfo, MetadataError, PendingBatch
from tests.pg_server import PgServer

pytestmark = pytest.mark.postgres

Opener = Callable[..., Awaitable[PostgresMetadataStore]]


@pytest.fixture
async def open_pg(pg_url: str) -> AsyncIterator[Opener]:
    opened: list[PostgresMetadataStore] = []

    async def opener(query: str = "") -> PostgresMetadataStore:
        store = open_metadata_store(pg_url + query)
        assert isinstance(store, PostgresMetadataStore)
        await store.start()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


def new_file() -> FileInfo:
    fid = uuid.uuid4().hex
    return FileInfo(fid, f"segments/{fid}.seg", 1000)


def pb(topic: str, partition: int, count: int = 1, pid: int = -1, epoch: int = -1,
       seq: int = -1) -> PendingBatch:
    return PendingBatch(topic, partition, 0, 100, count, 0, 0, pid, epoch, seq)


async def offsets(store: PostgresMetadataStore, topic: str, partition: int) -> list[int]:
    rows = await store.read_batches(topic, partition, 0, 1 << 40, 1 << 30)
    expected = 0
    for r in rows:
        assert r.base_offset == expected, (topic, partition, [x.base_offset for x in rows])
        expected = r.last_offset + 1
    return [r.base_offset for r in rows]


async def test_agents_commit_to_shared_partitions_without_reusing_offsets(open_pg: Opener) -> None:
    """Four stores (four agents' pools) commit files touching random, overlapping partition
    sets in random order, idempotent and not: offsets stay dense and unique, no deadlock."""
    stores = [await open_pg("?pool_max=4") for _ in range(4)]
    await stores[0].create_topic("t", 16, {})
    records = [0] * 16
    rng = random.Random(7)

    async def agent(store: PostgresMetadataStore, agent_no: int) -> None:
        pid, epoch = await store.init_producer(None, -1, -1)
        seqs = [0] * 16
        for _ in range(40):
            parts = rng.sample(range(16), rng.randint(1, 16))
            batches = []
            for p in parts:
                n = rng.randint(1, 4)
                if agent_no % 2:
                    batches.append(pb("t", p, n, pid, epoch, seqs[p]))
                    seqs[p] += n
                else:
                    batches.append(pb("t", p, n))
                records[p] += n
            out = await store.commit_file(new_file(), batches)
            assert all(o.error_code == 0 and not o.duplicate for o in out), out

    await asyncio.gather(*[agent(s, i) for i, s in enumerate(stores) for _ in range(2)])
    states = await stores[1].partition_states([("t", p) for p in range(16)])
    for p in range(16):
        await offsets(stores[2], "t", p)
        assert states[("t", p)].high_watermark == records[p]
    # Sorted lock order: no commit ever had to be retried after a deadlock.
    assert sum(s.retries["40P01"] for s in stores) == 0


async def test_concurrent_transactional_inits_map_the_id_once(open_pg: Opener) -> None:
    stores = [await open_pg() for _ in range(3)]
    results = await asyncio.gather(*[s.init_producer("tx", -1, -1) for s in stores * 3])
    assert len({pid for pid, _ in results}) == 1
    assert sorted(epoch for _, epoch in results) == list(range(9))


async def test_commit_notifies_high_watermarks_to_other_stores(open_pg: Opener) -> None:
    writer, reader = await open_pg(), await open_pg()
    got: list[tuple[str, int, int]] = []
    arrived = asyncio.Event()

    def on_hwm(entries: list[tuple[str, int, int]]) -> None:
        got.extend(entries)
        arrived.set()

    await reader.subscribe_high_watermarks(on_hwm)
    await writer.create_topic("t", 2, {})
    await writer.commit_file(new_file(), [pb("t", 0, 3), pb("t", 1, 2), pb("t", 0, 1)])
    async with asyncio.timeout(10):
        await arrived.wait()
    assert sorted(got) == [("t", 0, 4), ("t", 1, 2)]


async def test_large_commit_splits_notifications(open_pg: Opener) -> None:
    writer, reader = await open_pg(), await open_pg()
    topic = "x" * 200  # long names: 600 partitions need several payloads
    got: dict[int, int] = {}
    done = asyncio.Event()

    def on_hwm(entries: list[tuple[str, int, int]]) -> None:
        for t, p, hwm in entries:
            assert t == topic
            got[p] = hwm
        if len(got) == 600:
            done.set()

    await reader.subscribe_high_watermarks(on_hwm)
    await writer.create_topic(topic, 600, {})
    await writer.commit_file(new_file(), [pb(topic, p, p + 1) for p in range(600)])
    async with asyncio.timeout(10):
        await done.wait()
    assert got == {p: p + 1 for p in range(600)}


async def test_notify_off_sends_nothing(open_pg: Opener) -> None:
    writer, reader = await open_pg("?notify=off"), await open_pg()
    got: list[tuple[str, int, int]] = []
    await reader.subscribe_high_watermarks(got.extend)
    await writer.create_topic("t", 1, {})
    await writer.commit_file(new_file(), [pb("t", 0)])
    # A notifying commit afterwards proves the listener was up; the first one sent nothing.
    marker = asyncio.Event()
    await reader.subscribe_high_watermarks(lambda _e: marker.set())
    await reader.commit_file(new_file(), [pb("t", 0)])
    async with asyncio.timeout(10):
        await marker.wait()
    assert got == [("t", 0, 2)]


def test_payloads_are_bounded_and_round_trip() -> None:
    entries = [(f"topic-{i % 7}-" + "y" * (i % 300), i, 10**12 + i) for i in range(2000)]
    payloads = encode_payloads(entries)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= PAYLOAD_MAX for p in payloads)
    assert [e for p in payloads for e in decode_payload(p)] == entries
    assert encode_payloads([("z" * 9000, 0, 1)]) == []
    assert decode_payload("not json") == [] and decode_payload(json.dumps([[1]])) == []


async def test_duplicate_file_is_duplicate_file_error(open_pg: Opener) -> None:
    store = await open_pg()
    await store.create_topic("t", 1, {})
    f = new_file()
    await store.commit_file(f, [pb("t", 0)])
    with pytest.raises(DuplicateFileError):
        await store.commit_file(f, [pb("t", 0)])
    # The failed transaction left nothing behind and the store keeps working.
    assert (await store.commit_file(new_file(), [pb("t", 0)]))[0].base_offset == 1


async def test_lock_wait_past_the_timeout_is_a_metadata_error(
    open_pg: Opener, pg_url: str
) -> None:
    store = await open_pg("?command_timeout_ms=300&call_timeout_ms=1000")
    await store.create_topic("t", 1, {})
    blocker = await asyncpg.connect(pg_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM partitions WHERE topic = 't' FOR UPDATE")
        with pytest.raises(MetadataError):
            await store.commit_file(new_file(), [pb("t", 0)])
        await tx.rollback()
    finally:
        await blocker.close()
    out = await store.commit_file(new_file(), [pb("t", 0)])
    assert out[0].base_offset == 0


async def test_newer_schema_is_refused(open_pg: Opener, pg_url: str) -> None:
    await open_pg()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO schema_version VALUES (999, 0)")
    finally:
        await conn.close()
    newer = open_metadata_store(pg_url)
    with pytest.raises(MetadataError, match="newer"):
        await newer.start()


async def test_unreachable_server_fails_start_with_metadata_error() -> None:
    store = open_metadata_store("postgresql://postgres@127.0.0.1:1/x?connect_timeout_ms=500")
    with pytest.raises(MetadataError):
        await store.start()


async def test_store_and_listener_recover_after_server_restart() -> None:
    server = PgServer().start()
    try:
        store = open_metadata_store(server.url + "?call_timeout_ms=2000&connect_timeout_ms=500")
        listener_store = open_metadata_store(server.url + "?connect_timeout_ms=500")
        assert isinstance(store, PostgresMetadataStore)
        assert isinstance(listener_store, PostgresMetadataStore)
        await store.start()
        await listener_store.start()
        got: list[tuple[str, int, int]] = []
        await listener_store.subscribe_high_watermarks(got.extend)
        await store.create_topic("t", 1, {})
        await store.commit_file(new_file(), [pb("t", 0, 5)])

        server.stop()
        with pytest.raises(MetadataError):
            await store.commit_file(new_file(), [pb("t", 0)])
        with pytest.raises(MetadataError):
            await store.partition_state("t", 0)
        server.start()

        # The pool replaces its dead connections by itself; allow a few retriable failures.
        out = None
        for _ in range(50):
            try:
                out = await store.commit_file(new_file(), [pb("t", 0, 2)])
                break
            except MetadataError:
                await asyncio.sleep(0.1)
        assert out is not None and out[0].base_offset == 5
        state = await store.partition_state("t", 0)
        assert state is not None and state.high_watermark == 7

        # The listener reconnects with backoff: hints flow again once it is back.
        async with asyncio.timeout(15):
            while not any(h > 7 for _, _, h in got):
                with contextlib.suppress(MetadataError):
                    await store.commit_file(new_file(), [pb("t", 0, 2)])
                await asyncio.sleep(0.2)
        assert any(h > 7 for _, _, h in got)
        await store.close()
        await listener_store.close()
    finally:
        server.destroy()


@pytest.mark.parametrize(
    "query",
    ["?pool_max=0", "?pool_min=3&pool_max=2", "?notify=maybe", "?command_timeout_ms=abc",
     "?call_timeout_ms=0"],
)
def test_bad_url_options_are_refused(query: str) -> None:
    with pytest.raises(ValueError):
        open_metadata_store("postgresql://u@h/db" + query)


def test_url_options_are_taken_and_the_rest_passed_on() -> None:
    store = open_metadata_store(
        "postgres://u:p@h:5/db?pool_max=3&sslmode=disable&notify=off&call_timeout_ms=2500"
    )
    assert isinstance(store, PostgresMetadataStore)
    assert store.dsn == "postgresql://u:p@h:5/db?sslmode=disable"
    assert (store.pool_max, store.notify, store.call_timeout_s) == (3, False, 2.5)


async def _group_scenario(store: Any) -> list[object]:
    """Every GroupStore method, with the answers collected for comparison across backends."""
    seen: list[object] = []
    member = StoredMember("m-1", "static-1", "client", "/10.0.0.1", 10_000, 30_000, b"\x00sub",
                          b"\x01assign")
    await store.create_topic("t", 3, {})
    await store.create_topic("u", 1, {})
    seen.append(await store.load_group("g"))
    await store.save_group(StoredGroup("g", "consumer", 1, "range", "m-1", "Stable", (member,),
                                       123))
    await store.save_group(StoredGroup("g", "consumer", 2, "range", "m-1", "Stable", (member,),
                                       456))
    seen.append(await store.load_group("g"))
    await store.commit_offsets("g", [CommittedOffset("t", 2, 50, 3, "meta", 1000),
                                     CommittedOffset("t", 0, 10, -1, None, 1000),
                                     CommittedOffset("u", 0, 7, 1, "", 1000)])
    await store.commit_offsets("g", [CommittedOffset("t", 0, 11, -1, None, 2000)])
    await store.commit_offsets("offsets-only", [CommittedOffset("t", 1, 5, -1, None, 3000)])
    seen.append(await store.fetch_offsets("g"))
    seen.append(await store.fetch_offsets("g", [("u", 0), ("t", 1), ("t", 0), ("t", 0)]))
    seen.append(await store.fetch_offsets("g", []))
    seen.append(await store.list_groups())
    seen.append(await store.committed_offsets_page(3))
    seen.append(await store.delete_offsets("g", [("t", 2), ("t", 9)]))
    await store.delete_topic("u")  # drops every group's commits of the topic
    seen.append(await store.fetch_offsets("g"))
    seen.append(await store.delete_group("g"))
    seen.append(await store.delete_group("g"))
    seen.append(await store.list_groups())
    return seen


async def test_group_store_answers_like_sqlite(open_pg: Opener, tmp_path: Path) -> None:
    sqlite = open_metadata_store(f"sqlite:///{tmp_path}/groups.db")
    await sqlite.start()
    try:
        expected = await _group_scenario(sqlite)
    finally:
        await sqlite.close()
    got = await _group_scenario(await open_pg())
    assert got == expected
    assert got[1] is not None and got[-1] == [GroupListing("offsets-only", "", "Empty", 0, 0, 1)]
