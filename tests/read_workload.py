"""Produce a fixed volume, then read it back with many consumer groups at once.

Shared by `tests/integration/test_distributed_mmap.py` and `bench/read_path.py`. Consumers are
confluent-kafka (librdkafka) clients in threads: librdkafka fetches on its own threads and the
Python side only counts offsets, so dozens of groups fit in one process on a 2-core machine.

Delivery is checked per group with one byte per offset: a group is done when every offset
below the high watermark of every partition has been seen at least once (redelivery after a
rebalance or an agent's death is allowed; a missing record is not).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

MiB = 1024 * 1024
# Retriable errors a client may see while an agent dies or the group rebalances.
RETRIABLE = frozenset(
    {
        KafkaError._PARTITION_EOF,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.KAFKA_STORAGE_ERROR,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


def client_id(zone: str | None, name: str = "shoal-test") -> str:
    return f"{name},shoal_az={zone}" if zone else name


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)
    futures[topic].result(60)


def produce_volume(
    bootstrap: str,
    topic: str,
    total_bytes: int,
    partitions: int,
    record_bytes: int = 1024,
    zone: str | None = None,
    timeout_s: float = 600.0,
) -> int:
    """`total_bytes` of `record_bytes` values, round-robin over the partitions; returns the
    record count. Values are random (incompressible), acks=all, idempotent."""
    count = max(1, total_bytes // record_bytes)
    pool = os.urandom(record_bytes * 64)
    errors: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id(zone, "shoal-producer"),
            "linger.ms": 20,
            "batch.size": 512 * 1024,
            "enable.idempotence": True,
            "queue.buffering.max.kbytes": 64 * 1024,
        }
    )
    deadline = time.monotonic() + timeout_s
    for i in range(count):
        start = (i % 64) * record_bytes
        value = pool[start : start + record_bytes]
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError("produce did not finish in time") from None
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    if remaining or errors:
        raise RuntimeError(f"{remaining} undelivered, errors {errors[:5]}")
    return count


def watermarks(bootstrap: str, topic: str, partitions: int, attempts: int = 5) -> list[int]:
    """High watermarks; retried, since a topic just created may not be in every agent's
    metadata answer yet."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shoal-watermarks"})
    try:
        for attempt in range(attempts):
            try:
                return [
                    c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)
                ]
            except KafkaException:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        c.close()


@dataclass
class GroupResult:
    group: str
    zone: str | None
    records: int = 0
    distinct: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    seconds: float = 0.0
    done: bool = False

    @property
    def redelivered(self) -> int:
        return self.records - self.distinct


def consume_group(
    bootstrap: str,
    topic: str,
    group: str,
    zone: str | None,
    high: Sequence[int],
    *,
    timeout_s: float = 300.0,
    stop: threading.Event | None = None,
    config: dict[str, object] | None = None,
) -> GroupResult:
    """One consumer in group `group` reads the topic from the beginning until every offset
    below `high[p]` of every partition p has been seen."""
    result = GroupResult(group, zone)
    seen = [bytearray(h) for h in high]
    missing = sum(high)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id(zone, "shoal-consumer"),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            # Many consumers share this process: keep each one's prefetch queue small.
            "queued.max.messages.kbytes": 8192,
            "fetch.wait.max.ms": 200,
            **(config or {}),
        }
    )
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        c.subscribe([topic])
        while missing > 0 and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            for m in c.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    (result.errors if err.code() in RETRIABLE else result.fatal).append(str(err))
                    continue
                result.records += 1
                p, off = m.partition() or 0, m.offset() or 0
                row = seen[p]
                if off < len(row) and not row[off]:
                    row[off] = 1
                    missing -= 1
    finally:
        result.seconds = time.monotonic() - started
        result.distinct = sum(high) - missing
        result.done = missing == 0
        c.close()
    return result


def consume_groups(
    bootstrap_by_zone: dict[str | None, str],
    topic: str,
    groups_per_zone: int,
    high: Sequence[int],
    *,
    tag: str,
    timeout_s: float = 300.0,
    config: dict[str, object] | None = None,
) -> list[GroupResult]:
    """`groups_per_zone` groups in each zone at once, each reading everything."""
    jobs = [
        (zone, boot, f"{tag}-{zone or 'any'}-g{g}")
        for zone, boot in bootstrap_by_zone.items()
        for g in range(groups_per_zone)
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [
            pool.submit(
                consume_group, boot, topic, group, zone, high, timeout_s=timeout_s, config=config
            )
            for zone, boot, group in jobs
        ]
        return [f.result() for f in futures]


@dataclass
class LatencyResult:
    sent: int
    received: int
    latencies_ms: list[float]

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


def end_to_end_latency(
    producer_bootstrap: str,
    producer_zone: str | None,
    consumer_bootstrap: str,
    consumer_zone: str | None,
    topic: str,
    *,
    count: int = 2000,
    rate_per_s: float = 200.0,
    value_bytes: int = 256,
    timeout_s: float = 120.0,
) -> LatencyResult:
    """Time from each `produce()` call to the consumer's receipt of that record, with the
    producer and the consumer in different zones (so on different agents). Both sides run in
    this process and stamp `time.monotonic_ns()`, so no clock skew enters."""
    from confluent_kafka import OFFSET_END

    received: dict[int, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def consume() -> None:
        c = Consumer(
            {
                "bootstrap.servers": consumer_bootstrap,
                "client.id": client_id(consumer_zone, "shoal-latency-consumer"),
                "group.id": f"{topic}-latency",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 500,
                "fetch.min.bytes": 1,
            }
        )
        try:
            c.subscribe([topic], on_assign=lambda cons, parts: _assign_end(cons, parts, ready))
            while not done.is_set():
                # poll(), not consume(n, timeout): consume waits for n messages or the whole
                # timeout, which would add up to that timeout to every measured latency.
                m = c.poll(0.1)
                if m is not None and m.error() is None:
                    value = m.value() or b""
                    sent_ns = int.from_bytes(value[:8], "big")
                    received[sent_ns] = (time.monotonic_ns() - sent_ns) / 1e6
        finally:
            c.close()

    def _assign_end(cons: Consumer, parts: list[TopicPartition], flag: threading.Event) -> None:
        cons.assign([TopicPartition(p.topic, p.partition, OFFSET_END) for p in parts])
        flag.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    if not ready.wait(60):
        done.set()
        raise TimeoutError("latency consumer got no assignment")
    time.sleep(1.0)  # let the first fetches reach the end of the log
    p = Producer(
        {
            "bootstrap.servers": producer_bootstrap,
            "client.id": client_id(producer_zone, "shoal-latency-producer"),
            "linger.ms": 0,
            "acks": "all",
        }
    )
    pad = b"x" * max(0, value_bytes - 8)
    interval = 1.0 / rate_per_s
    next_at = time.monotonic()
    for _ in range(count):
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += interval
        p.produce(topic, value=time.monotonic_ns().to_bytes(8, "big") + pad)
        p.poll(0)
    p.flush(30)
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    done.set()
    thread.join(30)
    return LatencyResult(count, len(received), list(received.values()))
