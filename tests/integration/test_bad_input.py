"""Acceptance: bad input over raw sockets gets Kafka's answer (an error code or a closed
connection), the agent's memory stays bounded, and a healthy client keeps working throughout."""

from __future__ import annotations

import datetime
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i32Timedelta

from tests.agent_process import AgentProcess
from tests.backends import open_backend
from tests.integration.test_clients_roundtrip import create_topic
from tests.rawkafka import RawConnection
from tests.unit.batchgen import make_batch

TOPIC = "bad-input"


@pytest.fixture(scope="module")
def strict_agent(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    data: Path = tmp_path_factory.mktemp("strict")
    with open_backend(backend_kind, request) as backend:
        proc = AgentProcess(
            data,
            [*backend.args, "--auto-create-topics", "false", "--flush-interval-ms", "10"],
            env=backend.env,
        ).start()
        create_topic(proc.bootstrap, TOPIC, 2)
        try:
            yield proc
        finally:
            assert proc.stop() == 0, proc.log_tail()


@pytest.fixture
def healthy(strict_agent: AgentProcess) -> Iterator[list[int]]:
    """A producer that keeps producing on its own connection while a test misbehaves."""
    delivered: list[int] = []
    failed: list[str] = []
    stop = threading.Event()

    def run() -> None:
        p = Producer({"bootstrap.servers": strict_agent.bootstrap, "linger.ms": 1})

        def cb(err: object, msg: object) -> None:
            (failed if err else delivered).append(str(err) if err else 1)  # type: ignore[arg-type]

        while not stop.is_set():
            p.produce(TOPIC, b"healthy", partition=0, on_delivery=cb)
            p.poll(0.01)
        p.flush(30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield delivered
    stop.set()
    t.join(60)
    assert not failed, failed[:3]
    assert len(delivered) > 0


def produce_request(records: bytes, acks: int = -1, topic: str = TOPIC) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=acks,  # type: ignore[arg-type]
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        topic_data=(
            TopicProduceData(
                name=topic,  # type: ignore[arg-type]
                partition_data=(PartitionProduceData(index=0, records=records),),  # type: ignore[arg-type]
            ),
        ),
    )


def produce_error(agent: AgentProcess, request: ProduceRequest) -> int:
    conn = RawConnection(agent.bootstrap)
    try:
        resp = conn.call(request)
        return int(resp.responses[0].partition_responses[0].error_code)
    finally:
        conn.close()


GOOD = make_batch([(b"k", b"v")])


def test_good_batch_is_accepted(strict_agent: AgentProcess, healthy: list[int]) -> None:
    assert produce_error(strict_agent, produce_request(GOOD)) == 0


def test_bad_crc(strict_agent: AgentProcess, healthy: list[int]) -> None:
    bad = bytearray(GOOD)
    bad[-1] ^= 0xFF  # payload byte covered by the CRC
    assert produce_error(strict_agent, produce_request(bytes(bad))) == 2  # CORRUPT_MESSAGE


def test_corrupt_batch_header(strict_agent: AgentProcess, healthy: list[int]) -> None:
    bad = bytearray(GOOD)
    bad[16] = 1  # magic byte: v1 message sets are not accepted in a v9 request
    code = produce_error(strict_agent, produce_request(bytes(bad)))
    assert code in (2, 87), code  # Kafka: CORRUPT_MESSAGE or INVALID_RECORD
    truncated = GOOD[:40]
    assert produce_error(strict_agent, produce_request(truncated)) in (2, 87)


def test_bad_acks(strict_agent: AgentProcess, healthy: list[int]) -> None:
    assert produce_error(strict_agent, produce_request(GOOD, acks=2)) == 21


def test_unknown_topic_without_auto_create(strict_agent: AgentProcess, healthy: list[int]) -> None:
    assert produce_error(strict_agent, produce_request(GOOD, topic="no-such-topic")) == 3


@pytest.mark.parametrize("size", [-1, -2_000_000_000, 2_000_000_000, 100 * 1024 * 1024 + 1])
def test_bad_frame_sizes_close(strict_agent: AgentProcess, healthy: list[int], size: int) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    conn.send_raw(struct.pack(">i", size) + b"\x00" * 16)
    assert conn.is_closed_by_peer()
    conn.close()


def test_truncated_frame_then_hangup(strict_agent: AgentProcess, healthy: list[int]) -> None:
    _, frame = RawConnection(strict_agent.bootstrap).request_bytes(produce_request(GOOD))
    for cut in (2, 6, len(frame) // 2, len(frame) - 1):
        conn = RawConnection(strict_agent.bootstrap)
        conn.send_raw(frame[:cut])
        conn.close()
    # The agent is still answering.
    assert produce_error(strict_agent, produce_request(GOOD)) == 0


def test_garbage_body_closes(strict_agent: AgentProcess, healthy: list[int]) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhi", 0, 9, 1) + b"\xff" * 50  # Produce v9 header, then junk
    conn.send_raw(struct.pack(">i", len(body)) + body)
    assert conn.is_closed_by_peer()


def test_unknown_api_key_closes(strict_agent: AgentProcess, healthy: list[int]) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhih", 9999, 0, 7, -1)
    conn.send_raw(struct.pack(">i", len(body)) + body)
    assert conn.is_closed_by_peer()


def test_unsupported_version(strict_agent: AgentProcess, healthy: list[int]) -> None:
    # ApiVersions at an unknown version: answered in v0 with UNSUPPORTED_VERSION and the ranges.
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhih", 18, 99, 5, -1)
    conn.send_raw(struct.pack(">i", len(body)) + body)
    frame = conn.read_frame()
    correlation, error_code, count = struct.unpack_from(">ihi", frame)
    assert (correlation, error_code) == (5, 35)
    keys = {struct.unpack_from(">hhh", frame, 10 + 6 * i)[0] for i in range(count)}
    assert {0, 1, 3, 18} <= keys
    conn.close()
    # Any other API at an unsupported version: closed.
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhih", 0, 99, 6, -1)
    conn.send_raw(struct.pack(">i", len(body)) + body)
    assert conn.is_closed_by_peer()


def test_api_versions_v3(strict_agent: AgentProcess) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    resp = conn.call(
        ApiVersionsRequest(client_software_name="raw", client_software_version="1")
    )
    assert resp.error_code == 0
    assert any(k.api_key == 0 for k in resp.api_keys)


def test_memory_bounded_under_abuse(strict_agent: AgentProcess, healthy: list[int]) -> None:
    before = strict_agent.rss_bytes()
    for _ in range(50):
        conn = RawConnection(strict_agent.bootstrap)
        # Claims 100 MiB, sends 1 MiB, hangs up: the agent must not hold the claimed size.
        conn.send_raw(struct.pack(">i", 100 * 1024 * 1024) + b"\x00" * (1024 * 1024))
        conn.close()
    for _ in range(200):
        conn = RawConnection(strict_agent.bootstrap)
        conn.send_raw(struct.pack(">i", 2_000_000_000))
        conn.close()
    assert produce_error(strict_agent, produce_request(GOOD)) == 0
    grown = strict_agent.rss_bytes() - before
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
