"""Kafka's own verifiable clients against a 3-agent, 2-zone cluster with one agent killed -9.

`kafka-verifiable-producer` (idempotent, acks=all) writes N increasing integers while a group of
three `kafka-verifiable-consumer` processes reads them; mid-run the agent that coordinates the
group (and leads a share of the producer's partitions) is killed with SIGKILL, and restarted
later. Proves: the producer ends with sent == acked and no send error; every acked
(partition, offset, value) is consumed by the group; no value is in the log twice (idempotence
deduplicated the retries of requests the dead agent may have committed); the log holds exactly
the acked records. Redelivery to the group after a rebalance is allowed (the consumers are
at-least-once) and only counted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.client.admin import Admin
from tests.cluster_process import Cluster, running_cluster
from tests.integration.group_members import create_topic, high_watermarks, wait_until
from tests.kafka_dist import tool_process

TOPIC = "verifiable"
PARTITIONS = 6
MESSAGES = 8_000
THROUGHPUT = 300  # records/s: about 27 s of producing
KILL_AFTER_ACKS = 2_500
RESTART_AFTER_ACKS = 5_500
# The agent killed: zone-2's only agent, so the zone-2 consumer loses its whole zone.
VICTIM = 1
AGENTS, ZONES = 3, 2
EXTRA_ARGS = [
    "--flush-interval-ms", "20",
    # As test_cluster_membership: a killed agent leaves every ring within 2 s, not 5 s.
    "--heartbeat-interval-ms", "250",
    "--heartbeat-timeout-ms", "2000",
]  # fmt: skip
# (zone tag or None, agent listed first in the bootstrap list) of each consumer.
CONSUMERS: list[tuple[str | None, int]] = [("zone-1", 0), ("zone-2", 1), (None, 2)]


@dataclass
class ToolRun:
    """One tool process and the JSON events its stdout has printed so far."""

    name: str
    proc: subprocess.Popen[str]
    log: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None

    def start_reading(self) -> ToolRun:
        self.reader = threading.Thread(target=self._read, name=f"read-{self.name}", daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                self.events.append(event)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.snapshot() if e.get("name") == name]

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.get("name") == name)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (the tools' shutdown hook closes the client and prints
        `shutdown_complete`), then waits for stdout to be read to its end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        if self.reader is not None:
            self.reader.join(30)
        # Kept beside the tool's stderr for whoever reads a failure.
        events = self.log.with_suffix(".jsonl")
        events.write_text("".join(json.dumps(e) + "\n" for e in self.snapshot()))
        return code

    def stderr_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _bootstrap(cluster: Cluster, first: int) -> str:
    order = [first, *(i for i in range(AGENTS) if i != first)]
    return ",".join(cluster.agents[i].bootstrap for i in order)


def _coordinator_port(bootstrap: str, group: str) -> int:
    async def find() -> int:
        async with Admin(bootstrap, timeout_s=10) as admin:
            return (await admin.find_coordinator(group)).port

    return asyncio.run(find())


def _group_owned_by(cluster: Cluster, index: int) -> str:
    """A group id whose coordinator is agent `index`, so the kill also moves the group."""
    port = cluster.agents[index].process.kafka_port
    boot = cluster.agents[0].bootstrap
    for i in range(200):
        group = f"verifiable-group-{i}"
        if _coordinator_port(boot, group) == port:
            return group
    raise AssertionError(f"no group id of 200 is coordinated by agent {index}")


def _assigned(run: ToolRun) -> set[int]:
    """Partitions the consumer holds now: eager rebalances revoke all, then assign."""
    held: set[int] = set()
    for e in run.snapshot():
        if e.get("name") == "partitions_assigned":
            held = {p["partition"] for p in e["partitions"]}
        elif e.get("name") == "partitions_revoked":
            held -= {p["partition"] for p in e["partitions"]}
    return held


def _consumed(consumers: list[ToolRun]) -> list[tuple[int, int, str]]:
    """(partition, offset, value) of every record_data event of every consumer."""
    return [
        (int(e["partition"]), int(e["offset"]), str(e["value"]))
        for c in consumers
        for e in c.named("record_data")
    ]


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str, runs: list[ToolRun]) -> None:
    try:
        wait_until(predicate, timeout_s, what)
    except AssertionError as exc:
        tails = "\n".join(f"--- {r.name} stderr ---\n{r.stderr_tail()}" for r in runs)
        raise AssertionError(f"{exc}\n{tails}") from None


def test_verifiable_clients_survive_an_agent_kill(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "cluster", AGENTS, ZONES, EXTRA_ARGS) as cluster:
        wait_until(
            lambda: all(a.process.live_agents() == AGENTS for a in cluster.agents),
            30, "every agent to see all three",
        )  # fmt: skip
        every = _bootstrap(cluster, 0)
        create_topic(every, TOPIC, PARTITIONS)
        group = _group_owned_by(cluster, VICTIM)

        runs: list[ToolRun] = []
        try:
            consumers = []
            for i, (zone, first) in enumerate(CONSUMERS):
                config = tmp_path / f"consumer-{i}.properties"
                tag = f",shoal_az={zone}" if zone else ""
                config.write_text(f"client.id=verifiable-consumer-{i}{tag}\n")
                log = tmp_path / f"consumer-{i}.log"
                proc = tool_process(
                    "kafka-verifiable-consumer",
                    "--bootstrap-server", _bootstrap(cluster, first),
                    "--topic", TOPIC, "--group-id", group,
                    "--reset-policy", "earliest", "--session-timeout", "10000",
                    "--verbose", "--command-config", str(config),
                    log=log,
                )  # fmt: skip
                consumers.append(ToolRun(f"consumer-{i}", proc, log).start_reading())
            runs.extend(consumers)
            # The producer starts into a settled group, so the kill is what moves it.
            _wait(
                lambda: all(_assigned(c) for c in consumers)
                and set().union(*(_assigned(c) for c in consumers)) == set(range(PARTITIONS)),
                120, "the three consumers to share all partitions", runs,
            )  # fmt: skip

            config = tmp_path / "producer.properties"
            config.write_text(
                "enable.idempotence=true\n"
                "acks=all\n"
                "retries=2147483647\n"
                "max.in.flight.requests.per.connection=5\n"
                "delivery.timeout.ms=120000\n"
                "request.timeout.ms=15000\n"
                "linger.ms=5\n"
                "client.id=verifiable-producer\n"
            )
            log = tmp_path / "producer.log"
            proc = tool_process(
                "kafka-verifiable-producer",
                "--bootstrap-server", _bootstrap(cluster, 2),
                "--topic", TOPIC, "--max-messages", str(MESSAGES),
                "--throughput", str(THROUGHPUT), "--acks", "-1",
                "--command-config", str(config),
                log=log,
            )  # fmt: skip
            producer = ToolRun("producer", proc, log).start_reading()
            runs.append(producer)

            _wait(
                lambda: producer.count("producer_send_success") >= KILL_AFTER_ACKS,
                120, f"{KILL_AFTER_ACKS} acks", runs,
            )  # fmt: skip
            cluster.kill(VICTIM)
            acks_at_kill = producer.count("producer_send_success")
            _wait(
                lambda: producer.count("producer_send_success") >= RESTART_AFTER_ACKS
                or producer.proc.poll() is not None,
                120, f"{RESTART_AFTER_ACKS} acks with agent {VICTIM} dead", runs,
            )  # fmt: skip
            acks_while_dead = producer.count("producer_send_success") - acks_at_kill
            cluster.restart(VICTIM)

            code = producer.proc.wait(180)
            assert producer.reader is not None
            producer.reader.join(30)
            assert code == 0, producer.stderr_tail()

            acked = producer.named("producer_send_success")
            errors = producer.named("producer_send_error")
            tool_data = producer.named("tool_data")
            assert not errors, errors[:5]
            assert len(tool_data) == 1, producer.stderr_tail()
            sent, acked_count = int(tool_data[0]["sent"]), int(tool_data[0]["acked"])
            assert sent == acked_count == MESSAGES == len(acked), (sent, acked_count, len(acked))
            assert acks_at_kill < MESSAGES, "the kill came after the last ack"
            assert acks_while_dead > 0, "no ack while the agent was dead"

            marks = high_watermarks(every, TOPIC, PARTITIONS)
            # The log holds exactly the acked records: a retry written twice would show here.
            assert sum(marks.values()) == MESSAGES, marks
            want = {(int(e["partition"]), int(e["offset"])): str(e["value"]) for e in acked}
            assert len(want) == MESSAGES, "two acks name one (partition, offset)"
            log_offsets = {(p, o) for p, mark in marks.items() for o in range(mark)}
            assert set(want) == log_offsets

            def caught_up() -> bool:
                return {(p, o) for p, o, _ in _consumed(consumers)} >= log_offsets

            _wait(caught_up, 180, "the group to consume up to the high watermarks", runs)
        finally:
            codes = [r.terminate() for r in reversed(runs)]
        assert all(c.count("shutdown_complete") == 1 for c in consumers), codes

    consumed = _consumed(consumers)
    values_at: dict[tuple[int, int], set[str]] = {}
    for p, o, v in consumed:
        values_at.setdefault((p, o), set()).add(v)
    assert all(len(v) == 1 for v in values_at.values()), "one offset read with two values"
    for key, value in want.items():
        assert values_at.get(key) == {value}, (key, value, values_at.get(key))
    # No value at two offsets: what idempotence must prevent.
    offsets_of = Counter(v for (_, _), vs in values_at.items() for v in vs)
    twice = [v for v, n in offsets_of.items() if n > 1]
    assert not twice, f"{len(twice)} values written twice, e.g. {twice[:5]}"
    assert set(offsets_of) == {str(i) for i in range(MESSAGES)}

    redelivered = sum(n - 1 for n in Counter((p, o) for p, o, _ in consumed).values() if n > 1)
    rebalances = sum(c.count("partitions_assigned") for c in consumers)
    commits = [e for c in consumers for e in c.named("offsets_committed")]
    failed_commits = sum(1 for e in commits if not e.get("success"))
    report = (
        f"sent={sent} acked={acked_count} acked_before_kill={acks_at_kill} "
        f"acked_while_dead={acks_while_dead} consumed={len(consumed)} "
        f"redelivered={redelivered} assignments={rebalances} "
        f"commits={len(commits)} failed_commits={failed_commits}"
    )
    print(report)
