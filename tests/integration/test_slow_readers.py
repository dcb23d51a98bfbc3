"""Clients that fetch and never read their answers (issue 12 items 5 and 7).

Each Fetch response holds its record bytes until the socket takes them: on the old code, 32
connections that each asked for 16 MiB and stopped reading made the agent hold their blocks
(evicted from the cache, so one set per answer) for the whole write timeout. What Fetch
responses load and hold until written is now one budget (`--responses-bytes-max`, counted in
whole blocks); past it a Fetch answers without data.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shoal.client.connection import encode_request
from tests.agent_process import AgentProcess
from tests.rawkafka import fetch_v12

MiB = 1024 * 1024
TOPIC = "slow-readers"
PARTITIONS = 4
RECORD = 4096
VOLUME = 16 * MiB
READERS = 32
BUDGET = 32 * MiB


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    proc = AgentProcess(
        tmp_path / "agent",
        [
            "--flush-interval-ms", "50",
            "--responses-bytes-max", str(BUDGET),
            # Smaller than the data: a slow reader's answer pins blocks the cache evicted, so
            # each one holds its own (an answer is views of blocks, not a copy).
            "--cache-bytes-max", str(4 * MiB),
            "--response-write-timeout-ms", "60000",
        ],
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def _produce(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    value = b"v" * RECORD
    for i in range(VOLUME // RECORD):
        while True:
            try:
                producer.produce(TOPIC, value, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def _fetch_everything(correlation_id: int) -> bytes:
    request = fetch_v12(
        TOPIC, dict.fromkeys(range(PARTITIONS), 0), max_bytes=64 * MiB, partition_max_bytes=VOLUME
    )
    return encode_request(request, correlation_id, "slow-reader")


def _read_response(sock: socket.socket) -> int:
    size = int.from_bytes(sock.recv(4, socket.MSG_WAITALL), "big")
    got = 0
    while got < size:
        chunk = sock.recv(min(MiB, size - got))
        assert chunk, "connection closed mid-response"
        got += len(chunk)
    return size


def test_responses_nobody_reads_hold_no_more_than_the_budget(agent: AgentProcess) -> None:
    _produce(agent.bootstrap)
    # One reader that does read, first: the agent has loaded and answered once, so what the
    # slow readers add below is what their unread responses hold.
    with socket.create_connection(("127.0.0.1", agent.kafka_port)) as sock:
        sock.sendall(_fetch_everything(1))
        assert _read_response(sock) > VOLUME
    before = agent.rss_bytes()
    slow: list[socket.socket] = []
    try:
        for i in range(READERS):
            sock = socket.socket()
            # A small receive window, so the agent's side holds nearly all of each answer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", agent.kafka_port))
            sock.sendall(_fetch_everything(i + 2))
            slow.append(sock)
        time.sleep(4)  # every fetch answered: with data while the budget had room, else empty
        grown = agent.rss_bytes() - before
    finally:
        for sock in slow:
            sock.close()
    # Measured: 161 MiB without the budget (what the kernel's send buffers did not take of 32
    # unread 16 MiB answers), 5 MiB with it.
    assert grown < 2 * BUDGET, f"RSS grew by {grown / MiB:.0f} MiB"
