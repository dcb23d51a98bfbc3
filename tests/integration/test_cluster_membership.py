"""Three real agents on one bucket and one SQLite metadata store, in two zones: Metadata lists
every agent and leaders in the client's zone, FindCoordinator agrees everywhere, a consumer
group spans agents, and dead or stopped agents leave the broker lists."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client.admin import Admin
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

INTERVAL_MS, TIMEOUT_MS = 250, 2_000
ZONES = ("zone-1", "zone-2", "zone-1")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    shared = tmp_path / "shared"
    shared.mkdir()
    agents = []
    try:
        for i, zone in enumerate(ZONES):
            args = [
                "--bucket", f"file://{shared}/objects",
                "--metadata", f"sqlite:///{shared}/metadata.db",
                "--az", zone,
                "--flush-interval-ms", "20",
                "--heartbeat-interval-ms", str(INTERVAL_MS),
                "--heartbeat-timeout-ms", str(TIMEOUT_MS),
            ]  # fmt: skip
            agents.append(AgentProcess(tmp_path / f"agent-{i}", args).start())
        # Every agent sees all three once each has beaten after the last one joined.
        wait_until(
            lambda: all(len(broker_ports(a.bootstrap, None)) == 3 for a in agents), 10, "3 agents"
        )
        yield agents
    finally:
        for a in agents:
            a.stop()


def broker_ports(bootstrap: str, client_id: str | None) -> set[int]:
    """Broker ports of a Metadata answer, as confluent-kafka sees them."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    conf: dict[str, str | int | float | bool] = {"bootstrap.servers": bootstrap}
    if client_id is not None:
        conf["client.id"] = client_id
    md = AdminClient(conf).list_topics(timeout=10)
    return {b.port for b in md.brokers.values()}


def coordinator_port(bootstrap: str, group: str) -> int:
    async def find() -> int:
        async with Admin(bootstrap, timeout_s=10) as admin:
            return (await admin.find_coordinator(group)).port

    return asyncio.run(find())


def leader_ports(bootstrap: str, client_id: str, topic: str) -> tuple[set[int], set[int]]:
    """(broker ports, ports of the topic's partition leaders) of a Metadata answer."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    md = AdminClient({"bootstrap.servers": bootstrap, "client.id": client_id}).list_topics(
        topic, timeout=10
    )
    port = {b.id: b.port for b in md.brokers.values()}
    return set(port.values()), {port[p.leader] for p in md.topics[topic].partitions.values()}


def test_metadata_leaders_follow_the_client_zone(cluster: list[AgentProcess]) -> None:
    create_topic(cluster[0].bootstrap, "routed", 8)
    ports = [a.kafka_port for a in cluster]
    zone1, zone2, every = {ports[0], ports[2]}, {ports[1]}, set(ports)
    for a in cluster:  # whichever agent the client bootstraps from
        for client_id, leaders in (
            ("app,shoal_az=zone-1", zone1),
            ("ws_az=zone-2,app", zone2),
            ("warpstream_az=zone-2", zone2),
            ("plain-app", every),
            ("shoal_az=zone-9", every),  # no agent there
        ):
            brokers, found = leader_ports(a.bootstrap, client_id, "routed")
            # Every agent is listed (a group coordinator may be in another zone), but the
            # client's produce and fetch go to its zone; 8 partitions reach every agent there.
            assert brokers == every, client_id
            assert found == leaders, (client_id, found)


def test_status_shows_members_per_zone(cluster: list[AgentProcess]) -> None:
    with urllib.request.urlopen(f"{cluster[1].http}/v1/status", timeout=10) as resp:
        status = json.load(resp)
    zones = status["cluster"]["zones"]
    assert {z: sorted(m["kafka"] for m in ms) for z, ms in zones.items()} == {
        "zone-1": sorted(f"127.0.0.1:{cluster[i].kafka_port}" for i in (0, 2)),
        "zone-2": [f"127.0.0.1:{cluster[1].kafka_port}"],
    }
    assert [m["me"] for m in zones["zone-2"]] == [True]
    node_ids = {m["node_id"] for ms in zones.values() for m in ms}
    assert len(node_ids) == 3 and status["agent"]["node_id"] in node_ids


def test_joining_agents_notify_the_others(cluster: list[AgentProcess]) -> None:
    """Each agent, once registered, told the agents started before it (membership_notify.py):
    they saw it at once rather than at their next beat."""
    received = []
    for a in cluster:
        with urllib.request.urlopen(f"{a.http}/v1/status", timeout=10) as resp:
            notices = json.load(resp)["peers"]["membership_notices"]
        received.append(notices["received"])
    # Counted when a notice arrives (a loaded machine may answer one after the sender's
    # 1 s timeout: the sender counts that as failed, the receiver still applied it).
    assert received[0] >= 2 and received[1] >= 1, received


def test_racks_are_the_agents_zones(cluster: list[AgentProcess]) -> None:
    """librdkafka's describe_cluster reads a Metadata answer: brokers with their racks."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    def nodes(client_id: str) -> set[tuple[int, str]]:
        admin = AdminClient({"bootstrap.servers": cluster[1].bootstrap, "client.id": client_id})
        described = admin.describe_cluster(request_timeout=10).result(10)
        return {(n.port, n.rack) for n in described.nodes}

    everyone = {(a.kafka_port, z) for a, z in zip(cluster, ZONES, strict=True)}
    assert nodes("no-zone") == everyone
    assert nodes("shoal_az=zone-1") == everyone


def test_find_coordinator_agrees_from_every_agent(cluster: list[AgentProcess]) -> None:
    owners = {}
    for g in (f"group-{i}" for i in range(12)):
        found = {coordinator_port(a.bootstrap, g) for a in cluster}
        assert len(found) == 1, (g, found)
        owners[g] = found.pop()
    assert len(set(owners.values())) >= 2  # groups spread over agents


def test_consumer_group_across_agents(cluster: list[AgentProcess]) -> None:
    topic, group, n, partitions = "spread", "spread-group", 6_000, 6
    create_topic(cluster[0].bootstrap, topic, partitions)
    produce_fast(cluster[1].bootstrap, topic, n, partitions)
    marks = high_watermarks(cluster[2].bootstrap, topic, partitions)
    assert sum(marks.values()) == n
    tracker = Tracker(n)
    # Members of three clients bootstrap from different agents and name different zones;
    # whichever agent coordinates the group is in another zone for some of them.
    clients = ("confluent", "kafka-python", "aiokafka")
    members = [
        start_member(clients[i], a.bootstrap, topic, group, tracker,
                     f"m{i},shoal_az={ZONES[i]}", manual=True)
        for i, a in enumerate(cluster)
    ]
    try:
        wait_until(tracker.done.is_set, 120, "every record")
        wait_until(
            lambda: committed(cluster[0].bootstrap, group, topic, partitions) == marks,
            60,
            "commits to reach the high watermarks",
        )
    finally:
        stop_members(members)
    assert all(m.error is None for m in members), [m.error for m in members]
    assert tracker.count() == n


def test_dead_and_stopped_agents_leave_metadata(cluster: list[AgentProcess]) -> None:
    survivor = cluster[0]
    killed, stopped = cluster[1], cluster[2]
    killed.kill()
    killed_at = time.monotonic()
    gone = wait_until(
        lambda: killed.kafka_port not in broker_ports(survivor.bootstrap, None),
        30, "the killed agent to leave Metadata",
    )  # fmt: skip
    took_kill = time.monotonic() - killed_at
    assert took_kill <= (TIMEOUT_MS + 1000) / 1000, f"killed agent listed for {gone:.1f} s"
    assert broker_ports(survivor.bootstrap, "shoal_az=zone-2") == {
        survivor.kafka_port, stopped.kafka_port}  # zone-2 is empty now: all agents
    # The coordinator ring shrinks with it: every group now lives on a survivor.
    for g in (f"group-{i}" for i in range(6)):
        assert coordinator_port(survivor.bootstrap, g) in {survivor.kafka_port,
                                                            stopped.kafka_port}

    started = time.monotonic()
    assert stopped.stop() == 0
    wait_until(
        lambda: stopped.kafka_port not in broker_ports(survivor.bootstrap, None),
        30, "the stopped agent to leave Metadata",
    )  # fmt: skip
    # Deregistered on the way out: gone at the next beat, well before a heartbeat timeout.
    assert time.monotonic() - started < TIMEOUT_MS / 1000
    assert broker_ports(survivor.bootstrap, None) == {survivor.kafka_port}


def test_group_survives_its_coordinator_kill(cluster: list[AgentProcess]) -> None:
    topic, group, n, partitions = "handover", "handover-group", 10_000, 6
    create_topic(cluster[0].bootstrap, topic, partitions)
    produce_fast(cluster[0].bootstrap, topic, n, partitions)
    owner_port = coordinator_port(cluster[0].bootstrap, group)
    owner = next(a for a in cluster if a.kafka_port == owner_port)
    others = [a for a in cluster if a is not owner]
    survivor_ports = {a.kafka_port for a in others}
    tracker = Tracker(2 * n)
    boot = ",".join(a.bootstrap for a in cluster)
    members = [
        start_member("confluent", boot, topic, group, tracker, f"h{i}", manual=True)
        for i in range(3)
    ]
    try:
        wait_until(lambda: tracker.count() >= n, 120, "the first half")
        owner.kill()
        # Once the dead agent has expired, the survivors agree on a new coordinator.
        wait_until(
            lambda: {coordinator_port(a.bootstrap, group) for a in others} <= survivor_ports
            and len({coordinator_port(a.bootstrap, group) for a in others}) == 1,
            30,
            "a new coordinator",
        )
        produce_fast(others[0].bootstrap, topic, n, partitions, start=n)
        marks = high_watermarks(others[0].bootstrap, topic, partitions)
        assert sum(marks.values()) == 2 * n
        wait_until(tracker.done.is_set, 180, "the second half, after the coordinator died")
        wait_until(
            lambda: committed(others[0].bootstrap, group, topic, partitions) == marks,
            60,
            "commits to reach the high watermarks",
        )
    finally:
        stop_members(members)
    assert all(m.error is None for m in members), [m.error for m in members]


def test_group_coordinated_in_another_zone_keeps_its_coordinator(
    cluster: list[AgentProcess],
) -> None:
    """A zone-2 consumer whose group is coordinated by a zone-1 agent: librdkafka (2.10+)
    decommissions brokers missing from a Metadata answer, and a coordinator it dropped made
    the group loop through FindCoordinator and failed JoinGroups (cluster/routing.py)."""
    import logging

    from confluent_kafka import Consumer

    zone1_ports = {cluster[0].kafka_port, cluster[2].kafka_port}
    group = next(
        g for g in (f"far-{i}" for i in range(100))
        if coordinator_port(cluster[1].bootstrap, g) in zone1_ports
    )  # fmt: skip
    topic, n, partitions = "far-coordinated", 2_000, 4
    create_topic(cluster[1].bootstrap, topic, partitions)
    produce_fast(cluster[1].bootstrap, topic, n, partitions)

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"rdkafka-{group}")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    c = Consumer({
        "bootstrap.servers": cluster[1].bootstrap,
        "client.id": "app,shoal_az=zone-2",
        "group.id": group,
        "auto.offset.reset": "earliest",
        "debug": "cgrp,broker",
        "logger": logger,
    })  # fmt: skip
    seen: set[tuple[int, int]] = set()
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    seen.add((m.partition() or 0, m.offset() or 0))
        before_close = list(lines)  # close() decommissions every broker (_DESTROY)
    finally:
        c.close()
    assert len(seen) == n
    joined = [line for line in before_close if "Joining group" in line]
    assert joined, "no JoinGroup in the client's log: did debug logging reach the logger?"
    # Brokers dropped for missing from a Metadata answer (_DESTROY_BROKER); the bootstrap
    # handles go that way as always once the real brokers are known.
    dropped = [
        line for line in before_close
        if ("_DESTROY_BROKER" in line or "coordinator decommissioned" in line)
        and "/bootstrap" not in line
    ]  # fmt: skip
    assert not dropped, dropped[:3]
