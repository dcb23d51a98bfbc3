"""The asyncio group coordinator over a real SQLite store with an injected clock, and the
group handlers called with decoded kio requests (batched FindCoordinator, multi-group
OffsetFetch, version-specific shapes)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from kio.index import load_request_schema

from shoal.groups.coordinator import GroupCoordinator
from shoal.groups.model import GroupConfig, GroupState, JoinRequest
from shoal.groups.ownership import CoordinatorNode, SingleAgentOwnership
from shoal.handlers.base import RequestContext
from shoal.handlers.group_coordination import handle_find_coordinator, handle_join_group
from shoal.handlers.offsets import handle_offset_commit, handle_offset_fetch
from shoal.handlers.services import Services
from shoal.meta.group_store import CommittedOffset
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.meta.store import MetadataStore
from shoal.protocol import errors
from shoal.protocol.messages import keep_fields
from shoal.settings import Settings
from tests.unit.handler_services import handler_services

NODE = CoordinatorNode(7, "agent-7.example", 19092)


class Clock:
    def __init__(self) -> None:
        self.now = 10_000

    def __call__(self) -> int:
        return self.now


class OtherOwner:
    node_id = NODE.node_id

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        return CoordinatorNode(8, "elsewhere", 1) if group_id.startswith("x-") else NODE

    def lease_valid(self) -> bool:
        return True


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    s = SqliteMetadataStore(str(tmp_path / "m.db"))
    await s.start()
    yield s
    await s.close()


def coordinator(store: SqliteMetadataStore, clock: Clock, **kwargs: Any) -> GroupCoordinator:
    return GroupCoordinator(
        store,
        OtherOwner(),
        GroupConfig(initial_rebalance_delay_ms=0),
        clock=clock,
        **kwargs,
    )


def jreq(
    member_id: str = "", instance: str | None = None, require_known_member_id: bool = False
) -> JoinRequest:
    return JoinRequest(member_id, instance, "c", "/127.0.0.1", 10_000, 20_000, "consumer",
                       (("range", b"sub"),), require_known_member_id)  # fmt: skip


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_not_coordinator_and_not_started(store: SqliteMetadataStore) -> None:
    clock = Clock()
    c = coordinator(store, clock)
    assert (await c.join("g", jreq())).error == errors.COORDINATOR_LOAD_IN_PROGRESS
    await c.start()
    try:
        assert (await c.join("x-g", jreq())).error == errors.NOT_COORDINATOR
        assert await c.heartbeat("x-g", "m", None, 1) == errors.NOT_COORDINATOR
        assert await c.commit_offsets("x-g", "", None, -1, []) == errors.NOT_COORDINATOR
        assert (await c.fetch_offsets("x-g", None))[0] == errors.NOT_COORDINATOR
        assert await c.delete_group("x-g") == errors.NOT_COORDINATOR
        assert (await c.join("", jreq())).error == errors.INVALID_GROUP_ID
        bad = JoinRequest("", None, "c", "/h", 1, 1, "consumer", (("range", b""),), False)
        assert (await c.join("g", bad)).error == errors.INVALID_SESSION_TIMEOUT
        assert (await c.join("g", jreq("ghost"))).error == errors.UNKNOWN_MEMBER_ID
    finally:
        await c.stop()


async def test_commit_rules_for_groups_without_state(store: SqliteMetadataStore) -> None:
    c = coordinator(store, Clock())
    await c.start()
    try:
        offsets = [CommittedOffset("t", 0, 5)]
        assert await c.commit_offsets("g", "m", None, 3, offsets) == errors.ILLEGAL_GENERATION
        assert await c.commit_offsets("g", "", None, -1, offsets) == errors.NONE
        code, got = await c.fetch_offsets("g", None)
        assert code == errors.NONE and [o.offset for o in got] == [5]
        assert [g for g, _, _ in await c.list_groups()] == ["g"]
        code, view = await c.describe_group("g")
        assert code == errors.NONE and view is not None and view.state == "Empty"
        assert await c.delete_group("g") == errors.NONE
        assert await c.delete_group("g") == errors.GROUP_ID_NOT_FOUND
    finally:
        await c.stop()


async def test_generation_survives_a_restart(store: SqliteMetadataStore) -> None:
    clock = Clock()
    first = coordinator(store, clock)
    await first.start()
    joined = await first.join("g", jreq())
    assert joined.error == errors.NONE and joined.generation == 1
    synced = await first.sync("g", joined.member_id, None, 1, None, None,
                              {joined.member_id: b"assigned"})  # fmt: skip
    assert synced.assignment == b"assigned"
    await first.commit_offsets("g", joined.member_id, None, 1, [CommittedOffset("t", 0, 9)])
    await first.stop()

    second = coordinator(store, clock)  # a new process on the same database
    await second.start()
    try:
        # The member carries on in its generation: heartbeat, sync and commit work.
        assert await second.heartbeat("g", joined.member_id, None, 1) == errors.NONE
        again = await second.sync("g", joined.member_id, None, 1, None, None, {})
        assert again.assignment == b"assigned"
        assert (await second.fetch_offsets("g", [("t", 0)]))[1][0].offset == 9
        assert (
            await second.commit_offsets(
                "g", joined.member_id, None, 1, [CommittedOffset("t", 0, 10)]
            )
            == errors.NONE
        )
        assert await second.delete_group("g") == errors.NON_EMPTY_GROUP
        # Its session runs out on the new coordinator's clock: the group empties.
        clock.now += 10_001
        second.poke()
        await settle()  # the timer task ticks the group
        group = second.loaded_groups()[0]
        assert group.state is GroupState.EMPTY
        assert await second.heartbeat("g", joined.member_id, None, 1) == (errors.UNKNOWN_MEMBER_ID)
    finally:
        await second.stop()
    stored = await store.load_group("g")
    assert stored is not None and stored.state == "Empty" and stored.generation == 2


async def test_stop_answers_waiting_joins(store: SqliteMetadataStore) -> None:
    clock = Clock()
    c = coordinator(store, clock)
    await c.start()
    a = await c.join("g", jreq())
    await c.sync("g", a.member_id, None, 1, None, None, {})
    # A second member's join waits for the first to rejoin.
    waiting = asyncio.create_task(c.join("g", jreq()))
    await settle()
    assert not waiting.done()
    await c.stop()
    assert (await waiting).error == errors.NOT_COORDINATOR


# -- handlers ----------------------------------------------------------------------------------
def request(api_key: int, version: int, **kwargs: Any) -> Any:
    cls = load_request_schema(api_key, version)
    return cls(**keep_fields(cls, kwargs))


def nested(api_key: int, version: int, class_name: str, **kwargs: Any) -> Any:
    cls = getattr(sys.modules[load_request_schema(api_key, version).__module__], class_name)
    return cls(**keep_fields(cls, kwargs))


def ctx(api_key: int, version: int) -> RequestContext:
    return RequestContext(api_key, version, 1, "client-1", "127.0.0.1:5555")


@pytest.fixture
async def svc(store: SqliteMetadataStore) -> AsyncIterator[Services]:
    settings = Settings(advertised_host="agent-7.example", kafka_port=19092, node_id=7)
    meta = cast(MetadataStore, store)
    c = GroupCoordinator(store, SingleAgentOwnership(NODE), GroupConfig(0))
    await c.start()
    yield handler_services(settings, meta, groups=c, cluster_id="c")
    await c.stop()


@pytest.mark.parametrize("version", [0, 1, 3, 4, 6])
async def test_find_coordinator(svc: Services, version: int) -> None:
    req = request(10, version, key="g1", key_type=0, coordinator_keys=("g1", "g2"))
    resp = await handle_find_coordinator(svc, ctx(10, version), req)
    if version >= 4:
        assert [(c.key, c.node_id, c.host, c.port) for c in resp.coordinators] == [
            ("g1", 7, "agent-7.example", 19092),
            ("g2", 7, "agent-7.example", 19092),
        ]
    else:
        assert (resp.node_id, resp.host, resp.port, resp.error_code) == (
            7, "agent-7.example", 19092, 0
        )  # fmt: skip


async def test_join_v4_requires_member_id_and_v0_does_not(svc: Services) -> None:
    import datetime

    proto = (nested(11, 4, "JoinGroupRequestProtocol", name="range", metadata=b"m"),)
    kw: dict[str, Any] = dict(group_id="g", session_timeout=datetime.timedelta(seconds=10),
                              rebalance_timeout=datetime.timedelta(seconds=20), member_id="",
                              protocol_type="consumer", protocols=proto)  # fmt: skip
    first = await handle_join_group(svc, ctx(11, 4), request(11, 4, **kw))
    assert first.error_code == errors.MEMBER_ID_REQUIRED and first.member_id.startswith("client-1-")
    proto0 = (nested(11, 0, "JoinGroupRequestProtocol", name="range", metadata=b"m"),)
    kw0 = dict(kw, group_id="g0", protocols=proto0)
    joined = await handle_join_group(svc, ctx(11, 0), request(11, 0, **kw0))
    assert joined.error_code == errors.NONE and joined.generation_id == 1
    assert joined.leader == joined.member_id and joined.protocol_name == "range"


async def test_offset_fetch_multi_group_and_unknown_partitions(svc: Services) -> None:
    await svc.meta.create_topic("t", 2, {})
    for group, offset in (("a", 3), ("b", 4)):
        commit = request(
            8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
            topics=(nested(8, 8, "OffsetCommitRequestTopic", name="t", partitions=(
                nested(8, 8, "OffsetCommitRequestPartition", partition_index=0,
                       committed_offset=offset, committed_leader_epoch=2,
                       committed_metadata="md"),
                nested(8, 8, "OffsetCommitRequestPartition", partition_index=5,
                       committed_offset=1, committed_metadata=None),
            )),),
        )  # fmt: skip
        resp = await handle_offset_commit(svc, ctx(8, 8), commit)
        codes = [p.error_code for p in resp.topics[0].partitions]
        assert codes == [errors.NONE, errors.UNKNOWN_TOPIC_OR_PARTITION]
    fetch = request(9, 8, groups=(
        nested(9, 8, "OffsetFetchRequestGroup", group_id="a", topics=None),
        nested(9, 8, "OffsetFetchRequestGroup", group_id="b", topics=(
            nested(9, 8, "OffsetFetchRequestTopics", name="t", partition_indexes=(0, 1)),)),
    ), require_stable=False)  # fmt: skip
    resp = await handle_offset_fetch(svc, ctx(9, 8), fetch)
    a, b = resp.groups
    assert [(p.partition_index, p.committed_offset, p.committed_leader_epoch, p.metadata)
            for p in a.topics[0].partitions] == [(0, 3, 2, "md")]  # fmt: skip
    assert [(p.partition_index, p.committed_offset) for p in b.topics[0].partitions] == [
        (0, 4), (1, -1)
    ]  # fmt: skip
    old = await handle_offset_fetch(
        svc, ctx(9, 1),
        request(9, 1, group_id="a", topics=(nested(9, 1, "OffsetFetchRequestTopic", name="t",
                                                  partition_indexes=(0,)),)),
    )  # fmt: skip
    assert old.topics[0].partitions[0].committed_offset == 3


async def test_made_up_group_ids_cannot_grow_memory_without_bound(
    store: SqliteMetadataStore,
) -> None:
    c = coordinator(store, Clock(), groups_in_memory_max=8)
    await c.start()
    try:
        # JoinGroup v4+ with no member id: each leaves a group holding one pending member
        # (KIP-394) that would otherwise stay for its whole session.
        for i in range(100):
            made_up = await c.join(f"made-up-{i}", jreq(require_known_member_id=True))
            assert made_up.error == errors.MEMBER_ID_REQUIRED
            assert len(c.loaded_groups()) <= 8
        # Groups with joined members are kept; when every slot holds one, a new group is
        # refused with a retriable error rather than growing memory.
        real = []
        for i in range(8):
            joined = await c.join(f"real-{i}", jreq())
            assert joined.error == errors.NONE
            real.append(joined)
        assert {g.group_id for g in c.loaded_groups()} == {f"real-{i}" for i in range(8)}
        assert (await c.join("one-more", jreq())).error == errors.COORDINATOR_NOT_AVAILABLE
        for i, joined in enumerate(real):
            assert await c.heartbeat(f"real-{i}", joined.member_id, None, 1) == errors.NONE
    finally:
        await c.stop()
