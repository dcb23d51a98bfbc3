"""`shoal groups` (a subprocess, as an operator runs it) against a real agent and real
confluent-kafka consumer groups; plus the admin client at its lowest and highest versions."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from shoal.client import EARLIEST, LATEST, TP, Admin
from shoal.client import admin as admin_module
from shoal.protocol import errors
from tests.agent_process import AgentProcess
from tests.integration.group_members import committed, create_topic, produce_fast, wait_until

PARTITIONS = 3
PER_PARTITION = 100


def shoal_groups(
    agent: AgentProcess, *args: str, rc: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    argv = [sys.executable, "-m", "shoal.cli", "groups"]
    if env is None:
        argv += ["--bootstrap", agent.bootstrap]
    else:
        base.update(env)
    done = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=60, env=base, check=False
    )
    assert done.returncode == rc, (done.returncode, done.stdout, done.stderr)
    return done


def as_json(agent: AgentProcess, *args: str) -> Any:
    return json.loads(shoal_groups(agent, *args, "--json").stdout)


class PollingConsumer:
    """A group member that keeps polling in a thread (so it stays in the group) and commits
    the offsets it is told to."""

    def __init__(self, bootstrap: str, group: str, topic: str, client_id: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": client_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
            }
        )
        self.consumer.subscribe([topic])
        self.consumed = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                msg = self.consumer.poll(0.1)
            if msg is not None and not msg.error():
                self.consumed += 1

    def assignment(self) -> list[int]:
        with self.lock:
            return sorted(tp.partition for tp in self.consumer.assignment())

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        with self.lock:
            self.consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.consumer.close()


@pytest.fixture
def members() -> Iterator[list[PollingConsumer]]:
    started: list[PollingConsumer] = []
    yield started
    for m in started:
        if not m.stop.is_set():
            m.close()


def iso(ms: int) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_groups_cli_end_to_end(agent: AgentProcess, members: list[PollingConsumer]) -> None:
    topic, group = "cli-topic", "cli-group"
    create_topic(agent.bootstrap, topic, PARTITIONS)
    produce_fast(agent.bootstrap, topic, PER_PARTITION * PARTITIONS, PARTITIONS)
    time.sleep(0.02)
    between_ms = int(time.time() * 1000)  # after every record of the first batch
    time.sleep(0.02)
    produce_fast(agent.bootstrap, topic, 50 * PARTITIONS, PARTITIONS, start=10_000)
    end = PER_PARTITION + 50

    members += [
        PollingConsumer(agent.bootstrap, group, topic, "cli-a"),
        PollingConsumer(agent.bootstrap, group, topic, "cli-b"),
    ]
    wait_until(
        lambda: sorted(p for m in members for p in m.assignment()) == list(range(PARTITIONS)),
        60,
        "both members assigned",
    )
    wait_until(lambda: sum(m.consumed for m in members) == end * PARTITIONS, 60, "records")
    commits = {0: 40, 1: 70, 2: 150}
    for m in members:
        mine = {p: commits[p] for p in m.assignment()}
        if mine:
            m.commit(topic, mine)

    # list: the group, Stable; SHOAL_BOOTSTRAP stands for --bootstrap
    listed = shoal_groups(agent, "list", env={"SHOAL_BOOTSTRAP": agent.bootstrap}).stdout
    assert listed.splitlines()[0].split() == ["GROUP", "STATE", "PROTOCOL-TYPE"]
    assert [group, "Stable", "consumer"] in [line.split() for line in listed.splitlines()]
    assert {"group": group, "state": "Stable", "protocol_type": "consumer"} in as_json(
        agent, "list"
    )

    # describe: lag per partition, members and their assignments
    doc = as_json(agent, "describe", group)
    assert doc["state"] == "Stable"
    rows = {r["partition"]: r for r in doc["partitions"]}
    assert sorted(rows) == list(range(PARTITIONS))
    for p, offset in commits.items():
        assert rows[p]["committed_offset"] == offset
        assert rows[p]["log_end_offset"] == end
        assert rows[p]["lag"] == end - offset
    assert doc["total_lag"] == sum(end - o for o in commits.values())
    by_client = {m["client_id"]: m for m in doc["members"]}
    assert sorted(by_client) == ["cli-a", "cli-b"]
    for m, client in zip(members, ("cli-a", "cli-b"), strict=True):
        described = by_client[client]
        assert [a["partition"] for a in described["assignment"]] == m.assignment()
        assert described["host"].endswith("127.0.0.1")
        for p in m.assignment():
            assert rows[p]["client_id"] == client
            assert rows[p]["member_id"] == described["member_id"]
    text = shoal_groups(agent, "describe", group).stdout
    assert f"Total lag: {doc['total_lag']}" in text
    line0 = next(line.split() for line in text.splitlines() if line.startswith(f"{topic} "))
    assert line0[:5] == [topic, "0", "40", str(end), str(end - 40)]

    # while members are active: no reset (not even a dry run), no delete
    refused = shoal_groups(agent, "reset", group, "--topic", topic, "--to-earliest", rc=1)
    assert "active member" in refused.stderr and "stop its consumers" in refused.stderr
    assert "NON_EMPTY_GROUP" in json.dumps(
        json.loads(shoal_groups(agent, "delete", group, "--json", rc=1).stdout)
    )
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == commits

    for m in members:
        m.close()
    wait_until(lambda: as_json(agent, "describe", group)["state"] == "Empty", 30, "group Empty")

    # dry run: the plan, nothing committed
    plan = shoal_groups(agent, "reset", group, "--topic", topic, "--to-earliest").stdout
    assert "Dry run" in plan
    assert [group, topic, "1", "70", "0"] in [line.split() for line in plan.splitlines()]
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == commits

    def reset(*how: str) -> dict[int, int]:
        out = as_json(agent, "reset", group, "--topic", topic, *how, "--execute")
        assert out["executed"] is True
        return {r["partition"]: r["new_offset"] for r in out["partitions"]}

    assert reset("--to-earliest") == {0: 0, 1: 0, 2: 0}
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == {0: 0, 1: 0, 2: 0}
    assert reset("--to-latest") == {0: end, 1: end, 2: end}
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == {0: end, 1: end, 2: end}
    at = PER_PARTITION  # the first record of the second batch
    assert reset("--to-datetime", iso(between_ms)) == {0: at, 1: at, 2: at}
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == {0: at, 1: at, 2: at}
    # after the last record: the log end, as Kafka's tool does
    later = iso(int(time.time() * 1000) + 3_600_000)
    assert reset("--to-datetime", later) == {0: end, 1: end, 2: end}
    assert reset("--partitions", "1", "--to-offset", "7") == {1: 7}
    assert reset("--partitions", "0,1", "--shift-by", "-10") == {0: end - 10, 1: 0}
    assert reset("--partitions", "2", "--to-offset", "99999") == {2: end}  # kept in range
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == {0: end - 10, 1: 0, 2: end}
    assert as_json(agent, "describe", group)["total_lag"] == 10 + end

    bad = shoal_groups(agent, "reset", group, "--topic", topic, "--partitions", "5",
                       "--to-earliest", rc=1)  # fmt: skip
    assert "no partition 5" in bad.stderr
    missing = shoal_groups(agent, "reset", group, "--topic", "no-such", "--to-earliest", rc=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr

    # delete: gone from list and describe; a second delete reports it missing
    deleted = shoal_groups(agent, "delete", group).stdout
    assert [group, "deleted"] in [line.split() for line in deleted.splitlines()]
    assert group not in [g["group"] for g in as_json(agent, "list")]
    assert "does not exist" in shoal_groups(agent, "describe", group, rc=1).stderr
    again = shoal_groups(agent, "delete", group, rc=1)
    assert "does not exist" in again.stdout and "not deleted" in again.stderr
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == {0: -1001, 1: -1001, 2: -1001}


def test_usage_and_connection_errors(agent: AgentProcess) -> None:
    usage = shoal_groups(agent, "reset", "g", "--topic", "t", rc=2)  # no --to-*
    assert "one of the arguments" in usage.stderr
    assert shoal_groups(agent, "frobnicate", rc=2).returncode == 2
    assert "ISO 8601" in shoal_groups(agent, "reset", "g", "--topic", "t",
                                      "--to-datetime", "yesterday", rc=2).stderr  # fmt: skip
    port = agent.kafka_port
    agent.stop()
    down = shoal_groups(agent, "list", "--timeout-ms", "2000", rc=1)
    assert f"cannot connect to 127.0.0.1:{port}" in down.stderr


@pytest.mark.parametrize("end", ["lowest", "highest"])
async def test_admin_at_lowest_and_highest_versions(
    agent: AgentProcess, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """Every admin call at the lowest and at the highest version it speaks gives the same
    answers (the fields of old and new versions differ: OffsetFetch v1 puts group errors on
    partitions, FindCoordinator v4 batches keys, ...)."""
    for key, (lo, hi) in list(admin_module.CLIENT_VERSIONS.items()):
        v = lo if end == "lowest" else hi
        monkeypatch.setitem(admin_module.CLIENT_VERSIONS, key, (v, v))
    topic, group = f"ver-{end}", f"ver-group-{end}"
    create_topic(agent.bootstrap, topic, 2)
    produce_fast(agent.bootstrap, topic, 20, 2)
    tps = [TP(topic, 0), TP(topic, 1)]
    async with Admin(agent.bootstrap, timeout_s=10) as admin:
        meta = await admin.metadata([topic])
        assert sorted(meta.topics[topic].leaders) == [0, 1]
        assert (await admin.metadata(["never-created"])).topics["never-created"].error_code == (
            errors.UNKNOWN_TOPIC_OR_PARTITION
        )
        coordinator = await admin.find_coordinator(group)
        assert coordinator.port == agent.kafka_port
        assert await admin.offset_commit(group, {tps[0]: 3, tps[1]: 7}) == {
            tps[0]: errors.NONE,
            tps[1]: errors.NONE,
        }
        assert {tp: c.offset for tp, c in (await admin.offset_fetch(group)).items()} == {
            tps[0]: 3,
            tps[1]: 7,
        }
        assert list(await admin.offset_fetch(group, [tps[1]])) == [tps[1]]
        assert group in [g.group_id for g in await admin.list_groups()]
        desc = await admin.describe_group(group)
        assert (desc.state, desc.members) == ("Empty", ())
        earliest = await admin.list_offsets(tps, EARLIEST)
        latest = await admin.list_offsets(tps, LATEST)
        assert [earliest[tp].offset for tp in tps] == [0, 0]
        assert [latest[tp].offset for tp in tps] == [10, 10]
        by_time = await admin.list_offsets(tps, 0)
        assert [by_time[tp].offset for tp in tps] == [0, 0]
        assert await admin.delete_groups([group]) == {group: errors.NONE}
        assert await admin.offset_fetch(group) == {}
        missing = await admin.describe_group("never-a-group")
        assert missing.error_code in (errors.NONE, errors.GROUP_ID_NOT_FOUND)
        assert missing.state == "Dead" and missing.members == ()


def test_describe_100_partitions(agent: AgentProcess) -> None:
    """Describe of a group with commits on 100 partitions; prints the time taken."""
    topic, group, n = "wide", "wide-group", 100
    create_topic(agent.bootstrap, topic, n)
    produce_fast(agent.bootstrap, topic, n * 10, n)
    c = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, p, p % 10) for p in range(n)], asynchronous=False)
    finally:
        c.close()
    started = time.perf_counter()
    doc = as_json(agent, "describe", group)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert len(doc["partitions"]) == n
    assert [r["lag"] for r in doc["partitions"]] == [10 - p % 10 for p in range(n)]
    assert doc["total_lag"] == sum(10 - p % 10 for p in range(n))
    print(f"\nshoal groups describe, {n} partitions: {elapsed_ms:.0f} ms (whole process)")
