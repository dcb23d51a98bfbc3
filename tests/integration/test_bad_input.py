"""Acceptance: bad input over raw sockets gets Kafka's answer (an error code or a closed
connection), the agent's memory stays bounded, and a healthy client keeps working throughout."""

from __future__ import annotations

import contextlib
import datetime
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.list_offsets.v9.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i32Timedelta

from tests.agent_process import AgentProcess
from tests.backends import agent_on_backend
from tests.integration.test_clients_roundtrip import create_topic
from tests.rawkafka import RawConnection
from tests.unit.batchgen import batch_of_payload, make_batch, zstd_bomb

TOPIC = "bad-input"


@pytest.fixture(scope="module")
def strict_agent(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    data: Path = tmp_path_factory.mktemp("strict")
    args = ["--auto-create-topics", "false", "--flush-interval-ms", "10"]
    with agent_on_backend(backend_kind, request, data, args) as proc:
        create_topic(proc.bootstrap, TOPIC, 2)
        yield proc


@dataclass
class Healthy:
    """What a producer saw that kept producing on its own connection while a test misbehaved."""

    delivered: list[int] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)  # produce() to acknowledgement

    def max_wait_s(self) -> float:
        return max(self.waits_s, default=0.0)


@pytest.fixture
def healthy(strict_agent: AgentProcess) -> Iterator[Healthy]:
    seen = Healthy()
    failed: list[str] = []
    stop = threading.Event()

    def run() -> None:
        p = Producer({"bootstrap.servers": strict_agent.bootstrap, "linger.ms": 1})

        def cb(err: object, msg: Message) -> None:
            if err:
                failed.append(str(err))
            else:
                seen.delivered.append(1)
                seen.waits_s.append(msg.latency() or 0.0)

        while not stop.is_set():
            p.produce(TOPIC, b"healthy", partition=0, on_delivery=cb)
            p.poll(0.01)
        p.flush(30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield seen
    stop.set()
    t.join(60)
    assert not failed, failed[:3]
    assert len(seen.delivered) > 0


def produce_request(
    records: bytes, acks: int = -1, topic: str = TOPIC, partition: int = 0
) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=acks,  # type: ignore[arg-type]
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        topic_data=(
            TopicProduceData(
                name=topic,  # type: ignore[arg-type]
                partition_data=(PartitionProduceData(index=partition, records=records),),  # type: ignore[arg-type]
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


def test_good_batch_is_accepted(strict_agent: AgentProcess, healthy: Healthy) -> None:
    assert produce_error(strict_agent, produce_request(GOOD)) == 0


def test_bad_crc(strict_agent: AgentProcess, healthy: Healthy) -> None:
    bad = bytearray(GOOD)
    bad[-1] ^= 0xFF  # payload byte covered by the CRC
    assert produce_error(strict_agent, produce_request(bytes(bad))) == 2  # CORRUPT_MESSAGE


def test_corrupt_batch_header(strict_agent: AgentProcess, healthy: Healthy) -> None:
    bad = bytearray(GOOD)
    bad[16] = 1  # magic byte: v1 message sets are not accepted in a v9 request
    code = produce_error(strict_agent, produce_request(bytes(bad)))
    assert code in (2, 87), code  # Kafka: CORRUPT_MESSAGE or INVALID_RECORD
    truncated = GOOD[:40]
    assert produce_error(strict_agent, produce_request(truncated)) in (2, 87)


def test_bad_acks(strict_agent: AgentProcess, healthy: Healthy) -> None:
    assert produce_error(strict_agent, produce_request(GOOD, acks=2)) == 21


def test_unknown_topic_without_auto_create(strict_agent: AgentProcess, healthy: Healthy) -> None:
    assert produce_error(strict_agent, produce_request(GOOD, topic="no-such-topic")) == 3


@pytest.mark.parametrize("size", [-1, -2_000_000_000, 2_000_000_000, 100 * 1024 * 1024 + 1])
def test_bad_frame_sizes_close(strict_agent: AgentProcess, healthy: Healthy, size: int) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    conn.send_raw(struct.pack(">i", size) + b"\x00" * 16)
    assert conn.is_closed_by_peer()
    conn.close()


def test_truncated_frame_then_hangup(strict_agent: AgentProcess, healthy: Healthy) -> None:
    _, frame = RawConnection(strict_agent.bootstrap).request_bytes(produce_request(GOOD))
    for cut in (2, 6, len(frame) // 2, len(frame) - 1):
        conn = RawConnection(strict_agent.bootstrap)
        conn.send_raw(frame[:cut])
        conn.close()
    # The agent is still answering.
    assert produce_error(strict_agent, produce_request(GOOD)) == 0


def test_garbage_body_closes(strict_agent: AgentProcess, healthy: Healthy) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhi", 0, 9, 1) + b"\xff" * 50  # Produce v9 header, then junk
    conn.send_raw(struct.pack(">i", len(body)) + body)
    assert conn.is_closed_by_peer()


def test_unknown_api_key_closes(strict_agent: AgentProcess, healthy: Healthy) -> None:
    conn = RawConnection(strict_agent.bootstrap)
    body = struct.pack(">hhih", 9999, 0, 7, -1)
    conn.send_raw(struct.pack(">i", len(body)) + body)
    assert conn.is_closed_by_peer()


def test_unsupported_version(strict_agent: AgentProcess, healthy: Healthy) -> None:
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
    resp = conn.call(ApiVersionsRequest(client_software_name="raw", client_software_version="1"))
    assert resp.error_code == 0
    assert any(k.api_key == 0 for k in resp.api_keys)


def test_memory_bounded_under_abuse(strict_agent: AgentProcess, healthy: Healthy) -> None:
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


BOMB_BYTES = 2 * 1024 * 1024 * 1024  # one record of 2 GiB of zeros: about 65 KB of zstd


def list_offset_at(agent: AgentProcess, timestamp: int, partition: int = 1) -> tuple[int, int]:
    request = ListOffsetsRequest(
        replica_id=-1,  # type: ignore[arg-type]
        isolation_level=0,  # type: ignore[arg-type]
        topics=(
            ListOffsetsTopic(
                name=TOPIC,  # type: ignore[arg-type]
                partitions=(
                    ListOffsetsPartition(
                        partition_index=partition,  # type: ignore[arg-type]
                        current_leader_epoch=-1,  # type: ignore[arg-type]
                        timestamp=timestamp,  # type: ignore[arg-type]
                    ),
                ),
            ),
        ),
    )
    conn = RawConnection(agent.bootstrap)
    try:
        part = conn.call(request).topics[0].partitions[0]
        return int(part.error_code), int(part.offset)
    finally:
        conn.close()


def test_decompression_bomb_is_refused_in_bounded_memory(
    strict_agent: AgentProcess, healthy: Healthy
) -> None:
    # Timestamps within Kafka's bounds (no more than an hour ahead), so the batch is stored.
    now_ms = int(time.time() * 1000)
    bomb = batch_of_payload(zstd_bomb(BOMB_BYTES), 4, 1, timestamp_ms=1, max_timestamp_ms=now_ms)
    assert len(bomb) < 100_000
    # Produce keeps batches as bytes (only the header and CRC are checked): accepted.
    request = produce_request(bomb, partition=1)
    assert produce_error(strict_agent, request) == 0
    before = strict_agent.rss_bytes()
    waits_before = len(healthy.waits_s)
    # A timestamp lookup must look inside the batch: it refuses to inflate it past the limit
    # and answers with the batch's own offset.
    for _ in range(3):
        code, offset = list_offset_at(strict_agent, 2)
        assert code == 0
        assert offset >= 0
    time.sleep(1)  # the healthy producer's answers during the lookups arrive
    grown = strict_agent.rss_bytes() - before
    assert grown < 512 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert len(healthy.waits_s) > waits_before
    assert max(healthy.waits_s[waits_before:]) < 2.0


def test_a_timestamp_refusal_does_not_inflate_the_batch(
    strict_agent: AgentProcess, healthy: Healthy
) -> None:
    # Two hours ahead: Kafka 4 refuses it (INVALID_TIMESTAMP). The agent names the record
    # without decompressing: a bomb sent this way costs no memory, however often.
    ahead_ms = int(time.time() * 1000) + 2 * 3600 * 1000
    bomb = batch_of_payload(zstd_bomb(BOMB_BYTES), 4, 1, timestamp_ms=1, max_timestamp_ms=ahead_ms)
    before = strict_agent.rss_bytes()
    for _ in range(5):
        assert produce_error(strict_agent, produce_request(bomb, partition=1)) == 32
    grown = strict_agent.rss_bytes() - before
    assert grown < 32 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_an_acks_0_produce_that_fails_closes_the_connection(
    strict_agent: AgentProcess, healthy: Healthy
) -> None:
    # acks=0 gets no answer, so an error can only be signalled as Kafka does: by closing.
    conn = RawConnection(strict_agent.bootstrap)
    conn.send(produce_request(GOOD, acks=0, topic="no-such-topic"))
    assert conn.is_closed_by_peer()
    conn.close()
    # A good acks=0 produce keeps its connection, which still answers the next request.
    conn = RawConnection(strict_agent.bootstrap)
    conn.send(produce_request(GOOD, acks=0))
    assert not conn.is_closed_by_peer(timeout_s=1.0)
    resp = conn.call(produce_request(GOOD))
    assert int(resp.responses[0].partition_responses[0].error_code) == 0
    conn.close()


def test_transactional_batches_are_refused_until_transactions_exist(
    strict_agent: AgentProcess, healthy: Healthy
) -> None:
    # Without transactions nothing would ever commit or abort these records, and
    # read_committed consumers would be shown them.
    batch = make_batch(
        [(b"k", b"v")], producer_id=4242, producer_epoch=0, base_sequence=0, transactional=True
    )
    assert produce_error(strict_agent, produce_request(batch)) == 48  # INVALID_TXN_STATE


def test_slow_loris_frames_do_not_stall_other_clients(
    strict_agent: AgentProcess, healthy: Healthy
) -> None:
    # Three connections each announce a ~100 MB frame, then send one byte a second: together
    # they claim more than the agent's request budget (256 MiB).
    announced = 100 * 1024 * 1024 - 1
    conns = [RawConnection(strict_agent.bootstrap) for _ in range(3)]
    for conn in conns:
        conn.send_raw(struct.pack(">i", announced) + struct.pack(">hhi", 0, 9, 1))
    before = strict_agent.rss_bytes()
    waits_before = len(healthy.waits_s)
    for _ in range(8):
        time.sleep(1)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.send_raw(b"\x00")
    waits = healthy.waits_s[waits_before:]
    assert len(waits) > 100, len(waits)  # it kept producing throughout
    assert max(waits) < 2.0, f"a healthy produce waited {max(waits):.1f} s"
    grown = strict_agent.rss_bytes() - before
    assert grown < 512 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    for conn in conns:
        conn.close()
