"""Producers and checks for the fault tests: a producer running in a thread (so the test can kill
and restart agents or change faults meanwhile) that records, per record index, the offset each
acknowledgement carried, and a reader that counts every record it gets back."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from typing import Any

import pytest

from shoal.settings import Settings
from tests.integration import workload


def requires_settings(*names: str) -> pytest.MarkDecorator:
    """Skip until the agent has these settings (flags are added with them)."""
    have = {f.name for f in dataclasses.fields(Settings)}
    missing = [n for n in names if n not in have]
    return pytest.mark.skipif(bool(missing), reason=f"Settings lacks {missing}")


class BackgroundProducer:
    """confluent-kafka producer in a thread; records are `workload.record(i)`, i from `start`."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        *,
        idempotent: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.partitions = partitions
        self.lock = threading.Lock()
        self.acked: dict[int, tuple[int, int]] = {}  # record index -> (partition, offset)
        self.errors: list[Any] = []  # KafkaError of failed deliveries
        self.sent = 0
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": idempotent,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "socket.timeout.ms": 10_000,
        }
        conf.update(config or {})
        self.producer = Producer(conf)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _on_delivery(self, err: Any, msg: Any) -> None:
        index = int(msg.key().decode().removeprefix("key-"))
        with self.lock:
            if err is not None:
                self.errors.append(err)
            else:
                self.acked[index] = (msg.partition(), msg.offset())

    def produce(self, start: int, count: int, rate_per_s: float | None = None) -> None:
        """Send records start..start+count-1 (paced if rate_per_s), serving callbacks."""
        began = time.monotonic()
        for k, i in enumerate(range(start, start + count)):
            r = workload.record(i, self.partitions)
            while True:
                try:
                    self.producer.produce(
                        self.topic,
                        value=r.value,
                        key=r.key,
                        partition=r.partition,
                        headers=list(r.headers),
                        timestamp=r.timestamp_ms,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.sent += 1
            self.producer.poll(0)
            if rate_per_s:
                ahead = (k + 1) / rate_per_s - (time.monotonic() - began)
                if ahead > 0:
                    self.producer.poll(ahead)

    def flush(self, timeout_s: float) -> int:
        return int(self.producer.flush(timeout_s))

    def start(self, start: int, count: int, flush_timeout_s: float = 120.0) -> None:
        def run() -> None:
            try:
                self.produce(start, count)
                self.flush(flush_timeout_s)
            except BaseException as exc:  # handed to join()
                self._failure = exc

        self._thread = threading.Thread(target=run, name="producer", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "producer thread did not finish"
        if self._failure is not None:
            raise self._failure


def read_back(bootstrap: str, topic: str, partitions: int, n: int) -> Counter[tuple[int, int, int]]:
    """Every record read from the beginning, as (record index, partition, offset) -> count.

    Reads until `n` records arrived (or a deadline), so duplicates beyond `n` may be missed;
    callers compare with the high watermarks too."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"faults-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: Counter[tuple[int, int, int]] = Counter()
    deadline = time.monotonic() + 120
    try:
        while sum(got.values()) < n and time.monotonic() < deadline:
            for m in c.consume(1000, 1.0):
                if m.error():
                    raise AssertionError(str(m.error()))
                key, partition, offset = m.key(), m.partition(), m.offset()
                assert key is not None and partition is not None and offset is not None
                index = int(key.decode().removeprefix("key-"))
                expected = workload.record(index, partitions)
                assert m.value() == expected.value, f"record {index}: value differs"
                got[(index, partition, offset)] += 1
    finally:
        c.close()
    return got


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    marks = workload.watermarks_confluent(bootstrap, topic, partitions)
    return {p: hw for p, (_, hw) in marks.items()}
