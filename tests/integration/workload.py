"""A deterministic record workload and per-client produce/consume drivers.

Record i goes to partition i % partitions, carries key, two headers and a timestamp derived from
i, and a value that embeds i, so that consumers can check content, order and exactly-once
delivery per partition.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

BASE_TS_MS = 1_700_000_000_000


@dataclass(frozen=True, slots=True)
class Rec:
    partition: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def record(i: int, partitions: int) -> Rec:
    digest = hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()
    value = f"{i:08d}:".encode() + (digest * (1 + i % 7)).encode()
    return Rec(
        partition=i % partitions,
        key=f"key-{i}".encode(),
        value=value,
        headers=(("idx", str(i).encode()), ("h2", digest[:8].encode())),
        timestamp_ms=BASE_TS_MS + i,
    )


def records(n: int, partitions: int) -> Iterator[Rec]:
    for i in range(n):
        yield record(i, partitions)


def expected_by_partition(n: int, partitions: int) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
    for r in records(n, partitions):
        out[r.partition].append(r)
    return out


# -- confluent-kafka ------------------------------------------------------------------------


def produce_confluent(bootstrap: str, topic: str, n: int, partitions: int, codec: str) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )
    for r in records(n, partitions):
        while True:
            try:
                p.produce(
                    topic,
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    headers=list(r.headers),
                    timestamp=r.timestamp_ms,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} messages not delivered"
    assert not errors, errors[:5]


def consume_confluent(bootstrap: str, topic: str, n: int, partitions: int) -> dict[int, list[Rec]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verify-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
    count = 0
    deadline = time.monotonic() + 180
    try:
        while count < n and time.monotonic() < deadline:
            for m in c.consume(1000, 1.0):
                if m.error():
                    raise AssertionError(str(m.error()))
                _, ts = m.timestamp()
                # confluent's stubs allow None for error and tombstone messages; these records
                # always carry a partition, key, value and headers, and a None would still fail
                # the callers' comparison with the expected Rec.
                part = cast(int, m.partition())
                headers = cast("tuple[tuple[str, bytes], ...]", tuple(m.headers() or ()))
                got[part].append(
                    Rec(part, cast(bytes, m.key()), cast(bytes, m.value()), headers, ts)
                )
                count += 1
    finally:
        c.close()
    return got


def watermarks_confluent(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(partitions)
        }
    finally:
        c.close()


def offsets_for_times_confluent(
    bootstrap: str, topic: str, queries: list[tuple[int, int]]
) -> list[int]:
    """ListOffsets by timestamp: the offset answered for each (partition, timestamp)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "oft"})
    try:
        # One call per query: librdkafka merges repeated partitions within one call.
        return [
            c.offsets_for_times([TopicPartition(topic, p, ts)], 10)[0].offset for p, ts in queries
        ]
    finally:
        c.close()


# -- kafka-python ---------------------------------------------------------------------------


def produce_kafka_python(bootstrap: str, topic: str, n: int, partitions: int, codec: str) -> None:
    from kafka import KafkaProducer  # type: ignore[import-untyped]

    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        batch_size=64 * 1024,
    )
    futures = []
    for r in records(n, partitions):
        futures.append(
            p.send(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                headers=list(r.headers),
                timestamp_ms=r.timestamp_ms,
            )
        )
    p.flush(120)
    for f in futures:
        f.get(timeout=60)
    p.close(30)


def consume_kafka_python(
    bootstrap: str, topic: str, n: int, partitions: int
) -> dict[int, list[Rec]]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=8 << 20,
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
    count = 0
    deadline = time.monotonic() + 300
    try:
        while count < n and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=1000, max_records=5000).items():
                for m in msgs:
                    got[tp.partition].append(
                        Rec(tp.partition, m.key, m.value, tuple(m.headers), m.timestamp)
                    )
                    count += 1
    finally:
        c.close()
    return got


# -- aiokafka -------------------------------------------------------------------------------


def produce_aiokafka(bootstrap: str, topic: str, n: int, partitions: int, codec: str) -> None:
    async def run() -> None:
        from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

        p = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=5,
            enable_idempotence=True,
            max_batch_size=64 * 1024,
        )
        await p.start()
        try:
            pending = []
            for r in records(n, partitions):
                pending.append(
                    await p.send(
                        topic,
                        value=r.value,
                        key=r.key,
                        partition=r.partition,
                        headers=list(r.headers),
                        timestamp_ms=r.timestamp_ms,
                    )
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await p.stop()

    asyncio.run(run())


def consume_aiokafka(bootstrap: str, topic: str, n: int, partitions: int) -> dict[int, list[Rec]]:
    async def run() -> dict[int, list[Rec]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await c.start()
        got: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            count = 0
            deadline = time.monotonic() + 300
            while count < n and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=1000, max_records=5000)
                for tp, msgs in batch.items():
                    for m in msgs:
                        got[tp.partition].append(
                            Rec(tp.partition, m.key, m.value, tuple(m.headers), m.timestamp)
                        )
                        count += 1
        finally:
            await c.stop()
        return got

    return asyncio.run(run())
