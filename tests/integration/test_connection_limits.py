"""Connection limits of the server, against a real agent: connections in all and per IP
(Kafka's max.connections and max.connections.per.ip), and a client that stops reading its
responses is disconnected rather than holding its connection's requests for good."""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

# v3: before KIP-394, a new member's join waits for the rebalance instead of being sent back.
from kio.schema.join_group.v3.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.produce.v9.request import ProduceRequest
from kio.schema.types import GroupId
from kio.static.primitive import i32Timedelta

from tests.agent_process import AgentProcess
from tests.integration.test_bad_input import produce_request
from tests.integration.test_clients_roundtrip import create_topic
from tests.rawkafka import RawConnection
from tests.unit.batchgen import make_batch


def metric(agent: AgentProcess, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", agent.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[AgentProcess]:
    proc = AgentProcess(
        tmp_path / "agent",
        [
            "--connections-max", "8",
            "--connections-per-ip-max", "5",
            "--response-write-timeout-ms", "1000",
            "--flush-interval-ms", "5",
        ],
    ).start()  # fmt: skip
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_tail()


def answers(conn: RawConnection) -> bool:
    try:
        resp = conn.call(ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    except OSError:
        return False
    return int(resp.error_code) == 0


def wait_for_connections(agent: AgentProcess, at_most: float) -> None:
    deadline = time.monotonic() + 10
    while metric(agent, "shoal_connections") > at_most and time.monotonic() < deadline:
        time.sleep(0.05)


def test_connections_in_all_and_per_ip_are_capped(limited: AgentProcess) -> None:
    wait_for_connections(limited, 0)  # the start-up probe's connection has gone
    first = [RawConnection(limited.bootstrap) for _ in range(5)]
    assert all(answers(c) for c in first)
    over_ip = RawConnection(limited.bootstrap)
    assert over_ip.is_closed_by_peer()
    # Another address still gets in, up to the total.
    other = [RawConnection(limited.bootstrap, source_ip="127.0.0.2") for _ in range(3)]
    assert all(answers(c) for c in other)
    over_total = RawConnection(limited.bootstrap, source_ip="127.0.0.3")
    assert over_total.is_closed_by_peer()
    assert metric(limited, 'shoal_connections_closed_total{reason="connections_per_ip_max"}') == 1
    assert metric(limited, 'shoal_connections_closed_total{reason="connections_max"}') == 1
    # Room is given back when a connection closes.
    first[0].close()
    wait_for_connections(limited, 7)
    assert answers(RawConnection(limited.bootstrap))
    for c in [*first[1:], *other, over_ip, over_total]:
        c.close()


def fetch(topic: str) -> FetchRequest:
    return FetchRequest(
        replica_id=-1,  # type: ignore[arg-type]
        max_wait=i32Timedelta.parse(datetime.timedelta(0)),
        min_bytes=0,  # type: ignore[arg-type]
        max_bytes=8 * 1024 * 1024,  # type: ignore[arg-type]
        isolation_level=0,  # type: ignore[arg-type]
        session_id=0,  # type: ignore[arg-type]
        session_epoch=-1,  # type: ignore[arg-type]
        topics=(
            FetchTopic(
                topic=topic,  # type: ignore[arg-type]
                partitions=(
                    FetchPartition(
                        partition=0,  # type: ignore[arg-type]
                        current_leader_epoch=-1,  # type: ignore[arg-type]
                        fetch_offset=0,  # type: ignore[arg-type]
                        last_fetched_epoch=-1,  # type: ignore[arg-type]
                        log_start_offset=-1,  # type: ignore[arg-type]
                        partition_max_bytes=8 * 1024 * 1024,  # type: ignore[arg-type]
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def test_a_client_that_stops_reading_is_disconnected(limited: AgentProcess) -> None:
    create_topic(limited.bootstrap, "big", 1)
    producer = Producer({"bootstrap.servers": limited.bootstrap, "linger.ms": 5})
    for _ in range(8000):
        producer.produce("big", b"x" * 1000, partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0
    open_before = metric(limited, "shoal_connections")  # the producer's
    conn = RawConnection(limited.bootstrap)
    # 32 pipelined fetches of ~8 MB each, none of them read: far more than socket buffers.
    for _ in range(32):
        conn.send(fetch("big"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if metric(limited, 'shoal_connections_closed_total{reason="write_timeout"}') == 1:
            break
        time.sleep(0.2)
    assert metric(limited, 'shoal_connections_closed_total{reason="write_timeout"}') == 1
    # The connection is gone, not just its writer: no connection is left open.
    wait_for_connections(limited, open_before)
    assert metric(limited, "shoal_connections") == open_before
    conn.close()


@pytest.fixture
def slow_joins(tmp_path: Path) -> Iterator[AgentProcess]:
    """JoinGroups for new groups wait 20 s (the initial rebalance delay), holding their request
    bytes; the request budget is 64 MiB, a connection's share 16 MiB."""
    proc = AgentProcess(
        tmp_path / "agent",
        [
            "--requests-bytes-max", str(64 * 1024 * 1024),
            "--group-initial-rebalance-delay-ms", "20000",
            "--flush-interval-ms", "5",
        ],
    ).start()  # fmt: skip
    try:
        yield proc
    finally:
        proc.stop()


def big_produce(topic: str, batches: int) -> ProduceRequest:
    """A Produce of `batches` batches of 1,000,000-byte records (under max.message.bytes)."""
    one = make_batch([(None, b"v" * 1_000_000)])
    return produce_request(one * batches, topic=topic)


def test_one_connection_cannot_hold_the_whole_request_budget(slow_joins: AgentProcess) -> None:
    """Issue 12 (fair sharing): eight pipelined 8 MiB JoinGroups on one connection held the
    whole 64 MiB budget until their rebalances ended, and an 8 MiB produce on another
    connection waited for them. A connection now holds at most a quarter of the budget."""
    create_topic(slow_joins.bootstrap, "fair", 1)
    hog = RawConnection(slow_joins.bootstrap, timeout_s=120)
    metadata = b"m" * (8 * 1024 * 1024)
    joins = [
        JoinGroupRequest(
            group_id=GroupId(f"hog-{i}"),
            session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
            rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
            member_id="",
            protocol_type="consumer",
            protocols=(JoinGroupRequestProtocol(name="range", metadata=metadata),),
        )
        for i in range(8)
    ]
    def send_joins() -> None:
        # Blocks once the agent stops reading the hog (its share held); ends when it closes.
        with contextlib.suppress(OSError):
            for join in joins:
                hog.send(join)

    sender = threading.Thread(target=send_joins, daemon=True)
    sender.start()
    time.sleep(2)  # the hog's frames are in (as many as it may hold)
    other = RawConnection(slow_joins.bootstrap, timeout_s=60)
    started = time.monotonic()
    resp = other.call(big_produce("fair", 8))
    waited = time.monotonic() - started
    assert int(resp.responses[0].partition_responses[0].error_code) == 0
    assert waited < 10, f"the produce waited {waited:.1f} s behind another connection's joins"
    hog.close()
    other.close()
