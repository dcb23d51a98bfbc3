"""Peer reads across real agents: three `shoal agent` processes in one zone over one bucket and
one metadata store. ~16 MiB is produced, then read back in full through *each* agent at once
with zone-tagged raw Fetch requests. Without the ring every agent would GET every block
(3x); with it the zone reads each block about once, and no byte crosses a zone."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shoal.client.connection import KafkaConnection
from shoal.read.ring import Ring, block_key
from tests.agent_process import AgentProcess
from tests.rawkafka import fetch_v12

MiB = 1024 * 1024
BLOCK = 1 * MiB
ZONE = "zone-1"
CLIENT_ID = f"peer-reads-test,shoal_az={ZONE}"
TOPIC = "peer-reads"
PARTITIONS = 6
RECORD = 4096
RECORDS = 16 * MiB // RECORD


def metric(agent: AgentProcess, name: str, **labels: str) -> float:
    total = 0.0
    for line in agent.metrics().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def _fetch_gets(agent: AgentProcess) -> float:
    """The read path's GETs (not compaction's)."""
    return metric(agent, "shoal_object_store_requests_total", op="get", cause="fetch")


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    yield from run_agents(tmp_path, [])


def run_agents(tmp_path: Path, extra: list[str]) -> Iterator[list[AgentProcess]]:
    common = [
        *extra,
        "--bucket",
        f"file://{tmp_path.resolve()}/objects",
        "--metadata",
        f"sqlite:///{tmp_path.resolve()}/metadata.db",
        "--az",
        ZONE,
        "--block-bytes",
        str(BLOCK),
        # Larger segments than the local default, so that files span several blocks.
        "--flush-interval-ms",
        "200",
        # GETs are counted against the files as written: no merge may move rows meanwhile.
        "--compaction-interval-ms",
        "0",
    ]
    procs = [
        AgentProcess(tmp_path / f"agent-{i}", [*common, "--node-id", str(i)]) for i in range(3)
    ]
    try:
        procs[0].start()  # creates the schema alone
        for p in procs[1:]:
            p.start()
        deadline = time.monotonic() + 30
        while any(len(p.status()["peers"]["ring_members"]) < 3 for p in procs):
            assert time.monotonic() < deadline, "agents did not see each other"
            time.sleep(0.2)
        yield procs
    finally:
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.stop()


def produce(bootstrap: str, records: int = RECORDS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": CLIENT_ID})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(60)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": CLIENT_ID,
            "linger.ms": 20,
            "acks": "all",
            "enable.idempotence": False,
        }
    )
    failures: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    value = bytes(range(256)) * (RECORD // 256)
    for i in range(records):
        while True:
            try:
                producer.produce(TOPIC, value, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    assert not failures


def last_offset(records: bytes) -> tuple[int, int]:
    """(next offset after the last whole batch, record count) of a record set; checks every
    batch's CRC, so that bytes put together from several agents are proven intact."""
    pos = 0
    nxt = -1
    count = 0
    while pos + 61 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        crc = struct.unpack_from(">I", records, pos + 17)[0]
        assert crc == crc32c.crc32c(records[pos + 21 : pos + 12 + length]), f"bad batch at {base}"
        last_delta = struct.unpack_from(">i", records, pos + 23)[0]
        count += struct.unpack_from(">i", records, pos + 57)[0]
        nxt = base + last_delta + 1
        pos += 12 + length
    return nxt, count


async def read_all(
    agent: AgentProcess, high_watermarks: dict[int, int], client_id: str = CLIENT_ID
) -> int:
    """Fetch every partition from offset 0 to its high watermark from this agent alone."""
    conn = await KafkaConnection.open("127.0.0.1", agent.kafka_port, client_id=client_id)
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    records = 0
    try:
        while any(offsets[p] < high_watermarks[p] for p in offsets):
            wanted = {p: o for p, o in offsets.items() if o < high_watermarks[p]}
            request = fetch_v12(
                TOPIC, wanted, max_bytes=4 * MiB, partition_max_bytes=MiB, max_wait_ms=100
            )
            response = await conn.send(request)
            for topic in response.responses:
                for part in topic.partitions:
                    assert int(part.error_code) == 0, part
                    nxt, count = last_offset(bytes(part.records or b""))
                    if nxt > 0:
                        offsets[int(part.partition_index)] = nxt
                        records += count
    finally:
        await conn.close()
    return records


def test_each_block_read_once_per_zone(agents: list[AgentProcess], tmp_path: Path) -> None:
    produce(agents[0].bootstrap)
    hwms = high_watermarks(agents[0])
    assert sum(hwms.values()) == RECORDS
    segments = list((tmp_path / "objects").rglob("*.seg"))
    stored = sum(f.stat().st_size for f in segments)
    assert stored >= RECORDS * RECORD
    gets_before = sum(_fetch_gets(a) for a in agents)

    async def consume() -> list[int]:
        return list(await asyncio.gather(*(read_all(a, hwms) for a in agents)))

    counts = asyncio.run(consume())
    assert counts == [RECORDS] * 3
    gets = sum(_fetch_gets(a) for a in agents)
    gets -= gets_before
    bound = 1.15 * stored / BLOCK + len(segments)
    print(f"stored {stored} bytes in {len(segments)} files; GETs {gets:.0f}, bound {bound:.1f}")
    assert gets <= bound
    for a in agents:
        assert metric(a, "shoal_fetch_bytes_total", cross_zone="true") == 0
        assert metric(a, "shoal_fetch_bytes_total", cross_zone="false") >= RECORDS * RECORD
        assert metric(a, "shoal_peer_fallbacks_total") == 0
    assert sum(metric(a, "shoal_peer_requests_total", direction="sent") for a in agents) > 0
    assert sum(metric(a, "shoal_peer_bytes_total", direction="received") for a in agents) > 0


def high_watermarks(agent: AgentProcess) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": agent.bootstrap, "group.id": "hwm", "client.id": CLIENT_ID}
    )
    try:
        out = {}
        for p in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            out[p] = int(high)
        return out
    finally:
        consumer.close()


@pytest.fixture
def agents_slow_expiry(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    # A dead agent stays in the rings for the whole test: its blocks must come from fallbacks.
    yield from run_agents(tmp_path, ["--heartbeat-timeout-ms", "120000"])


def test_dead_owner_falls_back_and_other_zone_client_counts_as_cross_zone(
    agents_slow_expiry: list[AgentProcess], tmp_path: Path
) -> None:
    agents = agents_slow_expiry
    produce(agents[0].bootstrap)
    hwms = high_watermarks(agents[0])
    # The blocks the agent about to die owns, by the ring every agent computes.
    members = agents[0].status()["peers"]["ring_members"]
    dead_id = agents[2].status()["peers"]["me"]
    ring = Ring(members)
    objects = tmp_path / "objects"
    reader_id = agents[0].status()["peers"]["me"]
    blocks = [
        (key, i)
        for f in objects.rglob("*.seg")
        for key in [str(f.relative_to(objects))]
        for i in range((f.stat().st_size + BLOCK - 1) // BLOCK)
    ]
    dead_blocks = [b for b in blocks if ring.owner(block_key(*b)) == dead_id]
    reader_blocks = [b for b in blocks if ring.owner(block_key(*b)) == reader_id]
    assert dead_blocks, "the ring gave the agent about to die no block; nothing to test"
    agents[2].kill()
    reader = agents[0]
    gets_before = _fetch_gets(reader)
    got = asyncio.run(read_all(reader, hwms, client_id="peer-reads-test,shoal_az=zone-2"))
    assert got == RECORDS
    fallbacks = metric(reader, "shoal_peer_fallbacks_total")
    assert metric(reader, "shoal_peer_fallbacks_total", reason="unreachable") >= 1
    assert fallbacks >= len(dead_blocks) / 2  # a piece may span two of its blocks
    # Fallback reads go through the reader's own block cache: the reader GETs each block it
    # owns or reads for the dead owner at most once, however many fetches need it.
    peers = reader.status()["peers"]
    gets = _fetch_gets(reader) - gets_before
    assert peers["fallback_reads"] >= 1
    assert gets <= len(reader_blocks) + len(dead_blocks)
    # Record bytes went to a client of another zone.
    assert metric(reader, "shoal_fetch_bytes_total", cross_zone="true") >= RECORDS * RECORD
    assert sum(peers["fallbacks"].values()) == fallbacks
    assert peers["client"]["errors"]["unreachable"] >= 1
