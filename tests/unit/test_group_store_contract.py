"""Contract suite for the group part of `MetadataStore` (committed offsets and group metadata).

Runs on every metadata backend, like the other contract suites (the `db_url` fixture of
tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from shoal.meta.group_store import CommittedOffset, StoredGroup, StoredMember
from shoal.meta.store import MetadataStore, StaleCoordinatorError

Opener = Callable[[], Awaitable[MetadataStore]]


def member(i: int, instance: str | None = None) -> StoredMember:
    return StoredMember(
        member_id=f"m-{i}",
        group_instance_id=instance,
        client_id=f"client-{i}",
        client_host="/127.0.0.1",
        session_timeout_ms=10_000,
        rebalance_timeout_ms=30_000,
        subscription=bytes([0, 1, i]),
        assignment=bytes([9, i, 0, 255]),
    )


def group(gid: str = "g", generation: int = 1, members: int = 2) -> StoredGroup:
    return StoredGroup(
        group_id=gid,
        protocol_type="consumer",
        generation=generation,
        protocol_name="range",
        leader="m-0" if members else None,
        state="Stable" if members else "Empty",
        members=tuple(member(i, "inst-0" if i == 0 else None) for i in range(members)),
    )


async def test_commit_and_fetch_offsets(store: MetadataStore) -> None:
    await store.create_topic("t", 3, {})
    await store.commit_offsets(
        "g",
        [CommittedOffset("t", 0, 10, 3, "meta"), CommittedOffset("t", 2, 5, -1, None)],
    )
    got = await store.fetch_offsets("g")
    assert [(o.topic, o.partition, o.offset, o.leader_epoch, o.metadata) for o in got] == [
        ("t", 0, 10, 3, "meta"),
        ("t", 2, 5, -1, None),
    ]
    assert all(o.commit_time_ms > 0 for o in got)
    some = await store.fetch_offsets("g", [("t", 2), ("t", 1), ("other", 0)])
    assert [(o.partition, o.offset) for o in some] == [(2, 5)]
    assert await store.fetch_offsets("nobody") == []


async def test_commit_overwrites_and_may_go_backwards(store: MetadataStore) -> None:
    # The store records what the client asked; Kafka allows rewinding a group.
    await store.commit_offsets("g", [CommittedOffset("t", 0, 10)])
    await store.commit_offsets("g", [CommittedOffset("t", 0, 4, 1, "x")])
    (o,) = await store.fetch_offsets("g")
    assert (o.offset, o.leader_epoch, o.metadata) == (4, 1, "x")


async def test_groups_are_separate(store: MetadataStore) -> None:
    await store.commit_offsets("a", [CommittedOffset("t", 0, 1)])
    await store.commit_offsets("b", [CommittedOffset("t", 0, 2)])
    assert [o.offset for o in await store.fetch_offsets("a")] == [1]
    assert [o.offset for o in await store.fetch_offsets("b")] == [2]


async def test_save_load_group_roundtrip(store: MetadataStore) -> None:
    g = group()
    await store.save_group(g)
    loaded = await store.load_group("g")
    assert loaded is not None
    assert loaded.members == g.members
    assert (loaded.protocol_type, loaded.generation, loaded.protocol_name, loaded.leader) == (
        "consumer",
        1,
        "range",
        "m-0",
    )
    assert loaded.state == "Stable" and loaded.updated_at_ms > 0
    assert await store.load_group("missing") is None


async def test_save_group_replaces(store: MetadataStore) -> None:
    await store.save_group(group(generation=1, members=3))
    await store.save_group(group(generation=2, members=0))
    loaded = await store.load_group("g")
    assert loaded is not None and loaded.generation == 2 and loaded.members == ()
    assert loaded.state == "Empty" and loaded.leader is None


async def test_list_groups_includes_offset_only_groups(store: MetadataStore) -> None:
    await store.save_group(group("with-meta", members=2))
    await store.commit_offsets("with-meta", [CommittedOffset("t", 0, 1)])
    await store.commit_offsets(
        "offsets-only", [CommittedOffset("t", 0, 1), CommittedOffset("t", 1, 1)]
    )
    listed = {g.group_id: g for g in await store.list_groups()}
    assert set(listed) == {"with-meta", "offsets-only"}
    assert (listed["with-meta"].members, listed["with-meta"].offsets) == (2, 1)
    assert listed["with-meta"].protocol_type == "consumer"
    only = listed["offsets-only"]
    assert (only.state, only.protocol_type, only.members, only.offsets) == ("Empty", "", 0, 2)


async def test_delete_group_drops_metadata_and_offsets(store: MetadataStore) -> None:
    await store.save_group(group("g"))
    await store.commit_offsets("g", [CommittedOffset("t", 0, 1)])
    await store.commit_offsets("keep", [CommittedOffset("t", 0, 7)])
    assert await store.delete_group("g") is True
    assert await store.load_group("g") is None
    assert await store.fetch_offsets("g") == []
    assert await store.delete_group("g") is False
    assert [o.offset for o in await store.fetch_offsets("keep")] == [7]


async def test_delete_offsets(store: MetadataStore) -> None:
    await store.commit_offsets("g", [CommittedOffset("t", p, p) for p in range(3)])
    assert await store.delete_offsets("g", [("t", 1), ("t", 9)]) == 1
    assert [o.partition for o in await store.fetch_offsets("g")] == [0, 2]


async def test_delete_topic_drops_its_offsets(store: MetadataStore) -> None:
    await store.create_topic("gone", 2, {})
    await store.create_topic("stays", 1, {})
    await store.commit_offsets("g", [CommittedOffset("gone", 0, 1), CommittedOffset("gone", 1, 1)])
    await store.commit_offsets("g", [CommittedOffset("stays", 0, 3)])
    await store.commit_offsets("h", [CommittedOffset("gone", 0, 5)])
    await store.delete_topic("gone")
    assert [(o.topic, o.offset) for o in await store.fetch_offsets("g")] == [("stays", 3)]
    assert await store.fetch_offsets("h") == []
    # A topic created again under the old name starts without commits.
    await store.create_topic("gone", 2, {})
    assert await store.fetch_offsets("g", [("gone", 0)]) == []


async def test_committed_offsets_page_is_bounded_and_ordered(store: MetadataStore) -> None:
    await store.commit_offsets("b", [CommittedOffset("t", p, p) for p in range(3)])
    await store.commit_offsets("a", [CommittedOffset("t", p, p) for p in range(3)])
    page = await store.committed_offsets_page(4)
    assert [(g, o.partition) for g, o in page] == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]


async def test_commit_is_one_transaction(store: MetadataStore) -> None:
    # Many offsets in one call land together: a reader never sees half of a commit.
    offsets = [CommittedOffset("t", p, 100) for p in range(200)]
    seen: list[int] = []

    async def reader() -> None:
        for _ in range(50):
            n = len([o for o in await store.fetch_offsets("g") if o.offset == 100])
            seen.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(store.commit_offsets("g", offsets), reader())
    assert set(seen) <= {0, 200}
    assert len(await store.fetch_offsets("g")) == 200


async def test_state_survives_reopen(open_store: Opener) -> None:
    first = await open_store()
    await first.save_group(group("g", generation=5))
    await first.commit_offsets("g", [CommittedOffset("t", 0, 42, 2, "m")])
    await first.close()
    second = await open_store()
    loaded = await second.load_group("g")
    assert loaded is not None and loaded.generation == 5 and len(loaded.members) == 2
    (o,) = await second.fetch_offsets("g")
    assert (o.offset, o.leader_epoch, o.metadata) == (42, 2, "m")


async def test_two_stores_on_one_database_see_each_others_commits(open_store: Opener) -> None:
    a, b = await open_store(), await open_store()
    await a.commit_offsets("g", [CommittedOffset("t", 0, 1)])
    assert [o.offset for o in await b.fetch_offsets("g")] == [1]
    await b.commit_offsets("g", [CommittedOffset("t", 0, 2)])
    assert [o.offset for o in await a.fetch_offsets("g")] == [2]


async def test_writes_with_a_stale_coordinator_epoch_are_refused(open_store: Opener) -> None:
    """Issue 12 item 9: a coordinator that lost the group (another agent claimed it) cannot
    write group state or offsets over its successor's, even through another connection."""
    first, second = await open_store(), await open_store()
    await first.create_topic("t", 1, {})
    old_epoch, nothing = await first.claim_group("g")
    assert nothing is None
    await first.save_group(group(generation=1), old_epoch)
    await first.commit_offsets("g", [CommittedOffset("t", 0, 5)], old_epoch)
    new_epoch, loaded = await second.claim_group("g")
    assert new_epoch > old_epoch and loaded is not None and loaded.generation == 1
    await second.save_group(group(generation=2), new_epoch)
    await second.commit_offsets("g", [CommittedOffset("t", 0, 50)], new_epoch)
    with pytest.raises(StaleCoordinatorError):
        await first.save_group(group(generation=1, members=0), old_epoch)
    with pytest.raises(StaleCoordinatorError):
        await first.commit_offsets("g", [CommittedOffset("t", 0, 6)], old_epoch)
    stored = await first.load_group("g")
    assert stored is not None and stored.generation == 2 and len(stored.members) == 2
    assert [o.offset for o in await first.fetch_offsets("g")] == [50]
    # Unfenced writes (groups no coordinator holds) still go through; a deleted group keeps
    # its epoch, so a claim from before the delete stays stale.
    await first.commit_offsets("h", [CommittedOffset("t", 0, 1)])
    assert await second.delete_group("g")
    with pytest.raises(StaleCoordinatorError):
        await first.save_group(group(generation=1), old_epoch)
    assert (await second.claim_group("g"))[0] > new_epoch


async def test_expire_offsets_follows_kafkas_offsets_retention(store: MetadataStore) -> None:
    await store.create_topic("t", 2, {})
    for gid in ("empty", "stable", "solo"):
        await store.commit_offsets(gid, [CommittedOffset("t", 0, 7, -1, None)])
    await store.save_group(group("empty", members=0))
    await store.save_group(group("stable"))
    now_ms = int(time.time() * 1000)
    # Nothing is old enough yet.
    assert await store.expire_offsets(now_ms - 3_600_000) == (0, 0)
    assert len(await store.list_groups()) == 3
    # Past the cutoff: the Empty group's offsets and then the group itself go, and the offsets
    # of a group that never joined; a group with members keeps everything.
    assert await store.expire_offsets(now_ms + 60_000) == (2, 1)
    assert await store.fetch_offsets("empty") == []
    assert await store.fetch_offsets("solo") == []
    assert [o.offset for o in await store.fetch_offsets("stable")] == [7]
    assert await store.load_group("empty") is None
    assert await store.load_group("stable") is not None
    assert await store.expire_offsets(now_ms + 60_000) == (0, 0)
