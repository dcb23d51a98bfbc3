"""The three timed phases against one running broker: produce, consume, paced latency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from bench_model import FLUSH_TIMEOUT_S, MB, MiB, PhaseError, Progress, Workload, fmt_bytes
from brokers import RunningBroker


def producer_config(
    bootstrap: str, wl: Workload, on_delivery: Callable[..., None]
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "acks": "all",
        "enable.idempotence": wl.idempotence,
        "compression.type": wl.compression,
        "message.timeout.ms": int(wl.phase_timeout_s * 1000),
        "on_delivery": on_delivery,
    }


class Watchdog:
    """Ends a phase that runs past its deadline or makes no progress for too long."""

    def __init__(self, phase: str, broker: RunningBroker, wl: Workload) -> None:
        self.phase = phase
        self.broker = broker
        self.start = time.monotonic()
        self.deadline = self.start + wl.phase_timeout_s
        self.stall_s = wl.stall_timeout_s
        self.last_progress = self.start
        self.last_count = -1

    def check(self, count: int) -> None:
        now = time.monotonic()
        if count != self.last_count:
            self.last_count = count
            self.last_progress = now
        if now > self.deadline:
            raise PhaseError(f"{self.phase}: over the phase timeout ({count} records done)")
        if now - self.last_progress > self.stall_s:
            raise PhaseError(f"{self.phase}: no progress for {self.stall_s:.0f} s at {count}")
        self.broker.check_alive()


def phase_produce(
    broker: RunningBroker, topic: str, wl: Workload, values: list[bytes], progress: Progress
) -> tuple[float, int, int]:
    """Produce all records as fast as possible; return (seconds, delivered, failed)."""
    delivered = 0
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            failed.append(str(err))

    producer = Producer(producer_config(broker.bootstrap, wl, on_delivery))
    n, parts, count = wl.records, wl.partitions, len(values)
    watchdog = Watchdog("produce", broker, wl)

    def show() -> None:
        done = delivered * wl.record_bytes
        elapsed = max(1e-9, time.monotonic() - watchdog.start)
        progress.update(
            f"[{broker.name}] produce {fmt_bytes(done)} / {fmt_bytes(n * wl.record_bytes)}"
            f"  {done / elapsed / MB:.1f} MB/s"
        )

    # Connection and metadata are set-up costs, not throughput.
    producer.list_topics(topic, timeout=wl.stall_timeout_s)
    start = time.perf_counter()
    for i in range(n):
        value = values[i % count]
        while True:
            try:
                producer.produce(topic, value, partition=i % parts)
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                producer.poll(0.05)
                watchdog.check(delivered + len(failed))
                show()
        if i & 1023 == 0:
            producer.poll(0)
            watchdog.check(delivered + len(failed))
            show()
    while delivered + len(failed) < n:
        producer.poll(0.1)
        watchdog.check(delivered + len(failed))
        show()
    seconds = time.perf_counter() - start
    producer.flush(FLUSH_TIMEOUT_S)
    if failed:
        progress.done(
            f"[{broker.name}] produce: {len(failed)} delivery errors, first: {failed[0]}",
            always=True,
        )
    return seconds, delivered, len(failed)


def phase_consume(
    broker: RunningBroker, topic: str, wl: Workload, expected: int, progress: Progress
) -> tuple[float, int, int]:
    """Read the topic from the beginning until `expected` records; return (s, records, bytes)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            # assign() needs no group, but the client insists on an id.
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.max.bytes": 64 * MiB,
            "max.partition.fetch.bytes": 8 * MiB,
            "receive.message.max.bytes": 65 * MiB,
            "queued.max.messages.kbytes": 256 * 1024,
            # When its prefetch queue is momentarily full, librdkafka otherwise stops fetching
            # a partition for 500 ms or more: with a broker that answers faster than the
            # application drains the queue, that backoff, not the broker, set the figure
            # (one run in ~8 read 206 instead of ~850 MB/s). Same setting for every broker.
            "fetch.queue.backoff.ms": 10,
        }
    )
    records = value_bytes = 0
    watchdog = Watchdog("consume", broker, wl)
    try:
        # Without the topic's leaders in its cache the client backs off ~1 s before ListOffsets.
        consumer.list_topics(topic, timeout=wl.stall_timeout_s)
        start = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(wl.partitions)])
        while records < expected:
            # consume() waits for the full count or the timeout, so never ask for more than
            # is left: the last call would otherwise idle for the whole timeout.
            batch = consumer.consume(num_messages=min(10_000, expected - records), timeout=0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.fatal() or not err.retriable():
                        raise PhaseError(f"consume: {err}")
                    continue
                records += 1
                value = msg.value()
                value_bytes += len(value) if value is not None else 0
            seconds = time.perf_counter() - start
            watchdog.check(records)
            progress.update(
                f"[{broker.name}] consume {records}/{expected} records"
                f"  {value_bytes / max(1e-9, seconds) / MB:.1f} MB/s"
            )
        seconds = time.perf_counter() - start
    finally:
        consumer.close()
    return seconds, records, value_bytes


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


def phase_latency(
    broker: RunningBroker,
    topic: str,
    wl: Workload,
    values: list[bytes],
    rate: float,
    progress: Progress,
) -> tuple[list[float], int, float]:
    """Produce at `rate` records/s; return (latencies in s, failed or undelivered, rate reached)."""
    latencies: list[float] = []
    failed = 0

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            return
        # librdkafka stamps the message at produce() and measures to its delivery report, so
        # the time the report waits for our poll() is not counted against the broker.
        latency = msg.latency()
        if latency is not None:
            latencies.append(latency)

    producer = Producer(producer_config(broker.bootstrap, wl, on_delivery))
    # Warm-up: connection, metadata and producer id are set-up costs, not produce latency.
    producer.produce(topic, values[0], partition=0)
    if producer.flush(FLUSH_TIMEOUT_S) > 0:
        raise PhaseError("latency: warm-up message not delivered")
    latencies.clear()
    failed = 0

    target = max(1, int(rate * wl.latency_seconds))
    parts, count = wl.partitions, len(values)
    watchdog = Watchdog("latency", broker, wl)
    sent = 0
    start = time.perf_counter()
    last_send = start
    while sent < target:
        now = time.perf_counter()
        due = min(target, int((now - start) * rate) + 1)
        while sent < due:
            try:
                producer.produce(topic, values[sent % count], partition=sent % parts)
            except BufferError:
                break
            sent += 1
        last_send = time.perf_counter()
        producer.poll(0)
        watchdog.check(sent + len(latencies))
        progress.update(
            f"[{broker.name}] latency {sent}/{target} sent at {rate:.0f} rec/s,"
            f" {len(latencies)} delivered"
        )
        wait = start + sent / rate - time.perf_counter()
        if wait > 0.002:
            producer.poll(min(wait, 0.01))
        elif wait > 0:
            time.sleep(wait)
    achieved = sent / max(1e-9, last_send - start)
    # Messages still queued after the flush count as failed: the broker did not keep up with
    # the rate, and the percentiles then cover only the delivered ones.
    remaining = producer.flush(min(wl.phase_timeout_s, FLUSH_TIMEOUT_S))
    return latencies, failed + remaining, achieved
