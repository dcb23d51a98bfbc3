"""Acceptance: confluent-kafka, kafka-python and aiokafka consumer groups of 3 members each
consume a 200,000-record, 12-partition topic: every record is delivered, the partitions are
spread over the members, and the committed offsets equal the high watermarks at the end."""

from __future__ import annotations

import pytest

from tests.agent_process import AgentProcess
from tests.integration.group_members import (
    Tracker,
    committed,
    create_topic,
    high_watermarks,
    produce_fast,
    start_member,
    stop_members,
    wait_until,
)

N = 200_000
PARTITIONS = 12
MEMBERS = 3
CONSUME_TIMEOUT_S = 240


@pytest.mark.parametrize(
    ("client", "manual"),
    [("confluent", False), ("confluent", True), ("kafka-python", True), ("kafka-python", False),
     ("aiokafka", False), ("aiokafka", True)],
    ids=["confluent-auto", "confluent-manual", "kafka-python-manual", "kafka-python-auto",
         "aiokafka-auto", "aiokafka-manual"],
)  # fmt: skip
def test_group_consumes_everything(agent: AgentProcess, client: str, manual: bool) -> None:
    topic, group = f"grp-{client}-{manual}", f"g-{client}-{manual}"
    create_topic(agent.bootstrap, topic, PARTITIONS)
    produce_fast(agent.bootstrap, topic, N, PARTITIONS)
    marks = high_watermarks(agent.bootstrap, topic, PARTITIONS)
    assert sum(marks.values()) == N

    tracker = Tracker(expected=N)
    members = [
        start_member(client, agent.bootstrap, topic, group, tracker, f"{client}-{i}", manual)
        for i in range(MEMBERS)
    ]
    try:
        wait_until(tracker.done.is_set, CONSUME_TIMEOUT_S, f"{N} records")
        # Partitions spread: once stable, every member owns a disjoint share of all 12.
        wait_until(
            lambda: (
                sorted(p for m in members for p in m.assignment) == list(range(PARTITIONS))
                and all(m.assignment for m in members)
            ),
            30,
            "assignment over all members",
        )
        assignments = [set(m.assignment) for m in members]
        # Auto commit: the last interval's commit lands within a second or at close.
        wait_until(
            lambda: committed(agent.bootstrap, group, topic, PARTITIONS) == marks,
            30,
            "committed offsets to reach the high watermarks",
        )
    finally:
        stop_members(members)
    assert [m.error for m in members] == [None] * MEMBERS
    assert tracker.count() == N
    assert {p for p, _ in tracker.seen} == set(range(PARTITIONS))
    assert all(len(a) == PARTITIONS // MEMBERS for a in assignments), assignments
    assert all(m.delivered > 0 for m in members), [m.delivered for m in members]
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == marks
