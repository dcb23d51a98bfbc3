"""Consumer-group members of three clients, run as threads, and a shared delivery tracker.

Each member subscribes to one topic in one group, records every delivered (partition, offset)
in the tracker, and commits either automatically (the client's auto commit) or manually after
processing (commit-after-process). Members stop when the tracker has seen every offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000
MAX_POLL_INTERVAL_MS = 20_000


@dataclass
class Tracker:
    """All members' deliveries; `done` is set once `expected` distinct offsets were seen."""

    expected: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: set[tuple[int, int]] = field(default_factory=set)
    deliveries: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    phase: int = 0
    first_offset_in_phase: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, partition: int, offset: int) -> None:
        with self.lock:
            self.deliveries += 1
            self.seen.add((partition, offset))
            key = (self.phase, partition)
            if key not in self.first_offset_in_phase:
                self.first_offset_in_phase[key] = offset
            if len(self.seen) >= self.expected:
                self.done.set()

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


@dataclass
class Member:
    name: str
    delivered: int = 0
    assignment: set[int] = field(default_factory=set)
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


MemberFn = Callable[[str, str, str, Tracker, Member, bool], None]


def confluent_member(
    bootstrap: str, topic: str, group: str, tracker: Tracker, me: Member, manual: bool
) -> None:
    from confluent_kafka import Consumer, KafkaException

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": me.name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": not manual,
            "auto.commit.interval.ms": 200,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
        }
    )
    c.subscribe([topic])
    try:
        while not me.stop.is_set():
            msgs = c.consume(500, 0.2)
            good = [m for m in msgs if m.error() is None]
            for m in good:
                tracker.add(int(m.partition() or 0), int(m.offset() or 0))
            me.delivered += len(good)
            if manual and good:
                try:
                    c.commit(asynchronous=False)
                except KafkaException as exc:
                    # A rebalance took the partitions away: the next owner re-reads them.
                    if "REBALANCE" not in str(exc) and "GENERATION" not in str(exc):
                        raise
            me.assignment = {tp.partition for tp in c.assignment()}
    except Exception as exc:  # reported to the test, which fails on it
        me.error = repr(exc)
    finally:
        c.close()


def kafka_python_member(
    bootstrap: str, topic: str, group: str, tracker: Tracker, me: Member, manual: bool
) -> None:
    from kafka import KafkaConsumer  # type: ignore[import-untyped]
    from kafka.errors import CommitFailedError  # type: ignore[import-untyped]

    c = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=me.name,
        auto_offset_reset="earliest",
        enable_auto_commit=not manual,
        auto_commit_interval_ms=200,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
    )
    try:
        while not me.stop.is_set():
            batches = c.poll(timeout_ms=200, max_records=2000)
            n = 0
            for tp, records in batches.items():
                for r in records:
                    tracker.add(tp.partition, r.offset)
                n += len(records)
            me.delivered += n
            if manual and n:
                # A rebalance took the partitions away: the next owner re-reads them.
                with contextlib.suppress(CommitFailedError):
                    c.commit()
            me.assignment = {tp.partition for tp in c.assignment()}
    except Exception as exc:
        me.error = repr(exc)
    finally:
        c.close()


def aiokafka_member(
    bootstrap: str, topic: str, group: str, tracker: Tracker, me: Member, manual: bool
) -> None:
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
    from aiokafka.errors import (  # type: ignore[import-untyped]
        CommitFailedError,
        IllegalStateError,
    )

    async def run() -> None:
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=me.name,
            auto_offset_reset="earliest",
            enable_auto_commit=not manual,
            auto_commit_interval_ms=200,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        )
        await c.start()
        try:
            while not me.stop.is_set():
                batches = await c.getmany(timeout_ms=200, max_records=2000)
                n = 0
                for tp, records in batches.items():
                    for r in records:
                        tracker.add(tp.partition, r.offset)
                    n += len(records)
                me.delivered += n
                if manual and n:
                    with contextlib.suppress(CommitFailedError, IllegalStateError):
                        await c.commit()
                me.assignment = {tp.partition for tp in c.assignment()}
        finally:
            await c.stop()

    try:
        asyncio.run(run())
    except Exception as exc:
        me.error = repr(exc)


CLIENTS: dict[str, MemberFn] = {
    "confluent": confluent_member,
    "kafka-python": kafka_python_member,
    "aiokafka": aiokafka_member,
}


def start_member(
    client: str, bootstrap: str, topic: str, group: str, tracker: Tracker, name: str,
    manual: bool,
) -> Member:  # fmt: skip
    me = Member(name)
    me.thread = threading.Thread(
        target=CLIENTS[client], args=(bootstrap, topic, group, tracker, me, manual), daemon=True
    )
    me.thread.start()
    return me


def stop_members(members: list[Member], timeout_s: float = 60.0) -> None:
    for m in members:
        m.stop.set()
    deadline = time.monotonic() + timeout_s
    for m in members:
        assert m.thread is not None
        m.thread.join(max(0.1, deadline - time.monotonic()))


def produce_fast(bootstrap: str, topic: str, n: int, partitions: int, start: int = 0) -> None:
    """n small records, record i to partition i % partitions (value = i)."""
    from confluent_kafka import Producer

    failed: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for i in range(start, start + n):
        while True:
            try:
                p.produce(topic, value=str(i).encode(), partition=i % partitions,
                          on_delivery=on_delivery)  # fmt: skip
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not failed, failed[:5]


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw-probe"})
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets through OffsetFetch (-1001: none)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until predicate() holds; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started
