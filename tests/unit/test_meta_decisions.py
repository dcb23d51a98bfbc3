"""The decisions both metadata-store backends share, tested without a database: commits
(offsets and idempotence), InitProducerId, log-start moves, topic changes, group persistence,
agent registration and migrations. The contract suites check that both backends carry them out
alike (tests/unit/test_meta_contract.py and siblings)."""

from __future__ import annotations

import uuid

import pytest

from shoal.meta.agent_store import AgentInfo
from shoal.meta.agents import (
    agent_from_row,
    agent_row,
    decode_roles,
    encode_roles,
    pick_node_id,
    plan_registration,
)
from shoal.meta.commits import (
    INT32_MAX,
    RECENT_BATCHES_MAX,
    ProducerEntry,
    last_sequence,
    next_sequence,
    plan_commit,
)
from shoal.meta.group_store import CommittedOffset, StoredGroup, StoredMember
from shoal.meta.groups import (
    decode_members,
    encode_members,
    group_from_row,
    group_row,
    offsets_to_write,
    stamped,
    wanted_partitions,
)
from shoal.meta.maintenance import dropped_in_request_order, new_log_start, page_limit
from shoal.meta.migrations import parse_migrations, pending
from shoal.meta.producers import (
    EPOCH_MAX,
    Action,
    InitDecision,
    Lookup,
    ProducerRow,
    decide_init,
    lookup,
)
from shoal.meta.store import (
    InvalidPartitionsError,
    MetadataError,
    PendingBatch,
    ProducerFencedError,
    TopicInfo,
)
from shoal.meta.topics import altered, check_new_topic, encode_configs, grown, topic_from_row
from shoal.protocol import errors

# -- commits --------------------------------------------------------------------------------


def batch(
    partition: int = 0, count: int = 1, *, pid: int = -1, epoch: int = -1, seq: int = -1
) -> PendingBatch:
    return PendingBatch("t", partition, 0, 100, count, 1, 1, pid, epoch, seq)


def test_offsets_follow_the_cursor_in_list_order() -> None:
    cursors = {("t", 0): (10, 4), ("t", 1): (0, 0)}
    plan = plan_commit([batch(0, 3), batch(1, 2), batch(0, 1)], cursors, {})
    assert [(o.error_code, o.base_offset, o.log_start_offset) for o in plan.outcomes] == [
        (0, 10, 4), (0, 0, 0), (0, 13, 4),
    ]
    assert [base for _, base in plan.rows] == [10, 0, 13]
    assert plan.partitions[("t", 0)].next_offset == 14 and plan.partitions[("t", 0)].advanced
    assert plan.partitions[("t", 1)].next_offset == 2


def test_unknown_partition_and_empty_batch_get_errors_and_no_offsets() -> None:
    plan = plan_commit([batch(5), batch(0, 0)], {("t", 0): (7, 0)}, {})
    assert [o.error_code for o in plan.outcomes] == [
        errors.UNKNOWN_TOPIC_OR_PARTITION, errors.INVALID_RECORD,
    ]
    assert plan.rows == [] and not plan.partitions[("t", 0)].advanced


def test_duplicate_of_a_recent_batch_returns_its_offsets_without_a_row() -> None:
    stored = {(1, "t", 0): ProducerEntry(0, [(0, 2, 40), (3, 4, 43)])}
    plan = plan_commit([batch(count=3, pid=1, epoch=0, seq=0)], {("t", 0): (45, 0)}, stored)
    assert plan.outcomes[0].duplicate and plan.outcomes[0].base_offset == 40
    assert plan.rows == [] and plan.producers == {}


def test_sequence_gap_stale_epoch_and_bumped_epoch() -> None:
    stored = {(1, "t", 0): ProducerEntry(2, [(0, 4, 0)])}
    cursors = {("t", 0): (5, 0)}
    gap = plan_commit([batch(pid=1, epoch=2, seq=7)], cursors, stored)
    stale = plan_commit([batch(pid=1, epoch=1, seq=5)], cursors, stored)
    bumped_bad = plan_commit([batch(pid=1, epoch=3, seq=5)], cursors, stored)
    bumped = plan_commit([batch(pid=1, epoch=3, seq=0)], cursors, stored)
    assert gap.outcomes[0].error_code == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert stale.outcomes[0].error_code == errors.INVALID_PRODUCER_EPOCH
    assert bumped_bad.outcomes[0].error_code == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert bumped.outcomes[0].error_code == errors.NONE
    assert bumped.producers[(1, "t", 0)] == ProducerEntry(3, [(0, 0, 5)])


def test_unknown_producer_accepts_any_sequence_and_keeps_the_last_five() -> None:
    batches = [batch(pid=2, epoch=0, seq=100 + i) for i in range(RECENT_BATCHES_MAX + 2)]
    stored: dict[tuple[int, str, int], ProducerEntry] = {}
    plan = plan_commit(batches, {("t", 0): (0, 0)}, stored)
    assert all(o.error_code == errors.NONE for o in plan.outcomes)
    recent = plan.producers[(2, "t", 0)].recent
    assert len(recent) == RECENT_BATCHES_MAX and recent[-1] == (106, 106, 6)
    assert stored == {}  # inputs are not modified


def test_sequences_wrap_at_int32() -> None:
    assert last_sequence(INT32_MAX, 2) == 0
    assert next_sequence(INT32_MAX) == 0 and next_sequence(5) == 6


def test_recent_batches_round_trip_their_stored_form() -> None:
    entry = ProducerEntry(4, [(0, 9, 100), (10, 19, 110)])
    assert ProducerEntry.decode(4, entry.encode_recent()) == entry


# -- producers (InitProducerId) -------------------------------------------------------------


def test_lookup_names_the_row_the_decision_needs() -> None:
    assert lookup("tx") is Lookup.BY_TRANSACTIONAL_ID
    assert lookup(None) is Lookup.NONE


def test_idempotent_producer_always_gets_a_new_id() -> None:
    # As Kafka's coordinator: no transactional id, no bump, whatever pair the request names.
    assert decide_init(None, -1, -1, None).action is Action.ALLOCATE
    assert decide_init(None, 7, 3, ProducerRow(7, 3)).action is Action.ALLOCATE
    assert decide_init(None, 7, 2, ProducerRow(7, 3)).action is Action.ALLOCATE


def test_transactional_id_maps_once_then_bumps_and_fences() -> None:
    assert decide_init("tx", -1, -1, None).action is Action.ALLOCATE
    assert decide_init("tx", -1, -1, ProducerRow(5, 0)) == InitDecision(Action.BUMP, 5, 1)
    assert decide_init("tx", 5, 0, ProducerRow(5, 0)) == InitDecision(Action.BUMP, 5, 1)
    with pytest.raises(ProducerFencedError):
        decide_init("tx", 5, 0, ProducerRow(5, 1))


def test_exhausted_epoch_retires_the_id() -> None:
    assert decide_init("tx", -1, -1, ProducerRow(5, EPOCH_MAX)) == InitDecision(
        Action.RETIRE_AND_ALLOCATE, 5
    )
    assert decide_init("tx", 6, EPOCH_MAX - 1, ProducerRow(6, EPOCH_MAX - 1)).epoch == EPOCH_MAX


# -- maintenance ----------------------------------------------------------------------------


def test_log_start_moves_up_to_the_high_watermark_never_back() -> None:
    assert new_log_start(5, 20, 10) == 10
    assert new_log_start(5, 20, 99) == 20
    assert new_log_start(5, 20, 2) == 5


def test_forgotten_files_are_reported_once_in_request_order() -> None:
    assert dropped_in_request_order(["b", "a", "b", "c"], {"a", "b"}) == ["b", "a"]
    assert page_limit(0) == 1 and page_limit(50) == 50


# -- topics ---------------------------------------------------------------------------------


def test_topic_changes() -> None:
    info = TopicInfo("t", uuid.uuid4(), 2, {"a": "1", "b": "2"})
    assert grown(info, 4).partitions == 4
    with pytest.raises(InvalidPartitionsError):
        grown(info, 2)
    with pytest.raises(InvalidPartitionsError):
        check_new_topic(0)
    check_new_topic(1)
    assert altered(info, {"a": None, "c": "3"}, replace=False).configs == {"b": "2", "c": "3"}
    assert altered(info, {"c": "3", "d": None}, replace=True).configs == {"c": "3"}
    assert info.configs == {"a": "1", "b": "2"}
    stored = topic_from_row("t", info.topic_id, 2, encode_configs(info.configs))
    assert stored == info


# -- groups ---------------------------------------------------------------------------------


def test_group_rows_are_stamped_unless_the_caller_did() -> None:
    g = StoredGroup("g", "consumer", 3, "range", "m", "Stable")
    assert stamped(g, 99).updated_at_ms == 99
    assert stamped(StoredGroup("g", "", 0, None, None, "Empty", updated_at_ms=5), 99) \
        .updated_at_ms == 5  # fmt: skip


def test_offset_commit_rows_last_wins_sorted_and_stamped() -> None:
    rows = offsets_to_write(
        [CommittedOffset("b", 0, 1), CommittedOffset("a", 1, 2, commit_time_ms=7),
         CommittedOffset("b", 0, 3)],
        now_ms=50,
    )
    assert rows == [
        CommittedOffset("a", 1, 2, commit_time_ms=7), CommittedOffset("b", 0, 3, commit_time_ms=50)
    ]
    assert wanted_partitions([("b", 0), ("a", 1), ("b", 0)]) == [("a", 1), ("b", 0)]


def test_members_and_group_rows_round_trip() -> None:
    members = (StoredMember("m1", "i1", "c", "/h", 10, 20, b"\x00\xff", b""),
               StoredMember("m2", None, "c", "/h", 10, 20, b"", b"\x01"))
    assert decode_members(encode_members(members)) == members
    g = StoredGroup("g", "consumer", 3, "range", "m1", "Stable", members, 123)
    assert group_from_row("g", group_row(g)[1:]) == g


# -- agents ---------------------------------------------------------------------------------


def agent(name: str, node: int, heartbeat: int, port: int = 9000, started: int = 0) -> AgentInfo:
    return AgentInfo(name, node, "h", port, 8080, "az", "g", ("proxy",), started, heartbeat)


def test_registration_evicts_own_stale_and_earlier_lives() -> None:
    rows = [
        agent("me", 4, 1000, port=1),  # an earlier registration of this agent id
        agent("stale", 0, 10, port=2),
        agent("old-life", 1, 1000, port=9000, started=5),
        agent("twin", 2, 1000, port=9000, started=500),  # same address, started later: kept
        agent("other", 3, 1000, port=3),
    ]
    plan = plan_registration(agent("me", -1, 1000, started=100), 3, rows, stale_before_ms=100)
    assert plan.evict == ("me", "stale", "old-life")
    assert plan.row.node_id == 0  # 3 is taken by a live agent; 0 was freed


def test_node_id_is_the_requested_one_when_free() -> None:
    assert plan_registration(agent("a", -1, 0), 7, [], 0).row.node_id == 7
    assert pick_node_id(None, {0, 1, 3}) == 2
    assert pick_node_id(-1, set()) == 0


def test_agent_rows_round_trip() -> None:
    info = AgentInfo("a", 1, "h", 1, 2, "z", "g", ("proxy", "jobs"), 3, 4)
    assert agent_from_row(agent_row(info)) == info
    assert decode_roles(encode_roles(())) == () and decode_roles("proxy,,jobs") == ("proxy", "jobs")


# -- migrations -----------------------------------------------------------------------------


def test_pending_migrations_and_a_newer_database() -> None:
    migrations = parse_migrations(
        "-- migration: 1\nCREATE TABLE a (x INT);\n"
        "-- migration: 2\n-- note\nCREATE TABLE b (y INT);\n"
    )
    assert [v for v, _ in pending(migrations, 0)] == [1, 2]
    assert pending(migrations, 1) == ((2, ("CREATE TABLE b (y INT)",)),)
    assert pending(migrations, 2) == ()
    with pytest.raises(MetadataError):
        pending(migrations, 3)
