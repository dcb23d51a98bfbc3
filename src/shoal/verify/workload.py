"""The clients of a verify run: idempotent producers, assign-mode consumers, a final read.

confluent-kafka (librdkafka) clients, each in its own thread, all against one bootstrap:
- producers (`enable.idempotence=true`, `acks=all`) write unique values `producer:seq`, seq
  counting up, each to partition `seq mod N`, paced to a rate; every value's outcome (ack with
  (partition, offset), error, or no answer by the end) and ack time are recorded. A producer
  that hits a fatal error (its idempotent session is over) is replaced by a new one with a new
  producer number, so per-producer order is only asked of one idempotent session;
- consumers (no group: `assign` of every partition from offset 0) record every record they get;
- at the end, once producers have flushed and consumers caught up (or a deadline passed), a
  fresh consumer reads every partition from its start up to the high watermark.

The history this builds is all the checker sees.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.verify.history import History, Outcome, Read, Write, value

log = logging.getLogger("shoal.verify")
# librdkafka's own log lines (connection refused while an agent is down, ...): the run sends
# them to a file of the report rather than the terminal.
client_log = logging.getLogger("shoal.verify.clients")

_POLL_S = 0.2
_WATERMARK_TIMEOUT_S = 10.0
_ABSENT_FOR_S = 10.0  # a partition the broker keeps saying is not there this long is gone


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    bootstrap: str
    topic: str
    partitions: int
    producers: int
    consumers: int
    duration_s: float
    rate_per_producer: float  # values per second per producer
    message_timeout_ms: int = 60_000  # librdkafka's delivery timeout: then the value is an error
    drain_timeout_s: float = 90.0  # producers' flush, then consumers catching up
    final_read_timeout_s: float = 180.0


class VerifyError(RuntimeError):
    """The run could not be carried out (not a verdict on the system under test)."""


def create_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": client_log}
    admin = AdminClient(conf)
    futures = admin.create_topics([NewTopic(topic, partitions, 1)])
    try:
        futures[topic].result(timeout_s)
    except Exception as exc:
        raise VerifyError(f"creating topic {topic!r} with {partitions} partitions: {exc}") from exc


class _Clock:
    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def now(self) -> float:
        return time.monotonic() - self.t0


class _Producer:
    """One producer thread; `writes` holds the outcome of every value it sent."""

    def __init__(
        self, config: WorkloadConfig, clock: _Clock, numbers: Callable[[], int], index: int
    ) -> None:
        self.config = config
        self.clock = clock
        self.numbers = numbers
        self.index = index
        self.lock = threading.Lock()
        self.sent: dict[str, tuple[int, int, int, float]] = {}  # value -> producer, seq, p, t
        self.done: dict[str, Write] = {}
        self.sessions = 0
        self.thread = threading.Thread(target=self._run, name=f"verify-producer-{index}")

    def _client(self) -> Any:
        from confluent_kafka import Producer

        self.sessions += 1
        return Producer(
            {
                "bootstrap.servers": self.config.bootstrap,
                "client.id": f"shoal-verify-producer-{self.index}",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": self.config.message_timeout_ms,
                "retry.backoff.ms": 100,
                "retry.backoff.max.ms": 1000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 1000,
                "socket.timeout.ms": 10_000,
                "logger": client_log,
            }
        )

    def _on_delivery(self, err: Any, msg: Any) -> None:
        raw = msg.value().decode(errors="replace")
        now = self.clock.now()
        with self.lock:
            sent = self.sent.get(raw)
            if sent is None:
                return
            producer, seq, partition, sent_s = sent
            if err is None:
                w = Write(producer, seq, partition, sent_s, Outcome.OK, msg.offset(), now)
            else:
                w = Write(producer, seq, partition, sent_s, Outcome.ERROR, None, now, str(err))
            self.done[raw] = w

    def _run(self) -> None:
        from confluent_kafka import KafkaException

        config = self.config
        producer, number, seq = self._client(), self.numbers(), 0
        began = self.clock.now()
        while True:
            now = self.clock.now()
            if now >= config.duration_s:
                break
            due = began + seq / config.rate_per_producer
            if due > now:
                producer.poll(min(due - now, _POLL_S))
                continue
            partition = seq % config.partitions
            v = value(number, seq)
            with self.lock:
                self.sent[v] = (number, seq, partition, now)
            try:
                producer.produce(
                    config.topic, value=v.encode(), partition=partition,
                    on_delivery=self._on_delivery,
                )  # fmt: skip
            except BufferError:
                with self.lock:
                    del self.sent[v]
                producer.poll(0.05)
                continue
            except KafkaException as exc:
                # A fatal error: this idempotent session is over, start another.
                log.warning("producer %d (%d): %s; starting a new session", self.index, number, exc)
                with self.lock:
                    del self.sent[v]
                producer.flush(1.0)
                producer, number, seq = self._client(), self.numbers(), 0
                began = self.clock.now()
                continue
            seq += 1
            producer.poll(0)
        left = producer.flush(config.drain_timeout_s)
        if left:
            log.warning("producer %d: %d values unanswered at the end", self.index, left)

    def writes(self) -> list[Write]:
        with self.lock:
            out = list(self.done.values())
            for v, (producer, seq, partition, sent_s) in self.sent.items():
                if v not in self.done:
                    out.append(Write(producer, seq, partition, sent_s, Outcome.UNKNOWN))
        return out


class _Consumer:
    """An assign-mode consumer of every partition from offset 0, recording all it reads."""

    def __init__(self, config: WorkloadConfig, clock: _Clock, name: str) -> None:
        self.config = config
        self.clock = clock
        self.name = name
        self.reads: list[Read] = []
        self.next_offset = [0] * config.partitions
        self.errors = 0
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._guarded, name=f"verify-{name}")

    def client(self) -> Any:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer(
            {
                "bootstrap.servers": self.config.bootstrap,
                "client.id": f"shoal-verify-{self.name}",
                # Required by the client; never joined (assign, no commits).
                "group.id": f"shoal-verify-{self.config.topic}-{self.name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 1000,
                "logger": client_log,
            }
        )
        c.assign(
            [TopicPartition(self.config.topic, p, OFFSET_BEGINNING)
             for p in range(self.config.partitions)]
        )  # fmt: skip
        return c

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # handed to the run
            self.failure = exc

    def _run(self) -> None:
        c = self.client()
        try:
            while not self.stop.is_set():
                self.take(c.consume(1000, _POLL_S))
        finally:
            c.close()

    def take(self, messages: list[Any]) -> None:
        now = self.clock.now()
        for m in messages:
            if m.error():
                self.errors += 1
                continue
            p, o = m.partition(), m.offset()
            raw = m.value()
            self.reads.append(Read(p, o, raw.decode(errors="replace") if raw else "", now))
            self.next_offset[p] = max(self.next_offset[p], o + 1)


def _absent(c: Any, topic: str, partition: int) -> bool:
    """Whether the broker's metadata says `partition` of `topic` does not exist (a broker that
    does not answer is not that)."""
    from confluent_kafka import KafkaError, KafkaException

    try:
        md = c.list_topics(topic, timeout=_WATERMARK_TIMEOUT_S)
    except KafkaException:
        return False
    t = md.topics.get(topic)
    if t is None:
        return False
    if t.error is not None:
        return bool(t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART)
    return partition not in t.partitions


def watermarks(
    config: WorkloadConfig, timeout_s: float
) -> tuple[dict[int, tuple[int, int]], set[int]]:
    """(low, high) of every partition, retried until `timeout_s` (an agent may be down); and
    the partitions the broker said, for `_ABSENT_FOR_S` on end, do not exist (a broker that
    lost its topic): those are (0, 0), empty, so what was acked there counts as lost. After
    the first, the next ones are taken at the broker's first word."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + timeout_s
    c = Consumer(
        {
            "bootstrap.servers": config.bootstrap,
            "group.id": "shoal-verify-watermarks",
            "logger": client_log,
        }
    )
    try:
        out: dict[int, tuple[int, int]] = {}
        absent: set[int] = set()
        for p in range(config.partitions):
            absent_since: float | None = None
            while True:
                try:
                    low, high = c.get_watermark_offsets(
                        TopicPartition(config.topic, p), timeout=_WATERMARK_TIMEOUT_S
                    )
                    out[p] = (int(low), int(high))
                    break
                except KafkaException as exc:
                    now = time.monotonic()
                    if not _absent(c, config.topic, p):
                        absent_since = None
                    elif absent_since is None:
                        absent_since = now
                    # Once one partition is known gone, the broker has said so long enough.
                    if absent_since is not None and (
                        absent or now - absent_since >= _ABSENT_FOR_S
                    ):
                        log.warning("partition %d: the broker says it does not exist", p)
                        out[p] = (0, 0)
                        absent.add(p)
                        break
                    if now > deadline:
                        raise VerifyError(f"watermarks of partition {p}: {exc}") from exc
                    time.sleep(1.0)
        return out, absent
    finally:
        c.close()


class Workload:
    """Producers and consumers for `duration_s`, then the drain and the final read."""

    def __init__(self, config: WorkloadConfig) -> None:
        if config.partitions < 1 or config.producers < 1 or config.consumers < 0:
            raise ValueError("needs at least one partition and one producer")
        if config.rate_per_producer <= 0:
            raise ValueError("the rate must be positive")
        self.config = config
        self.clock = _Clock(time.monotonic())
        counter = itertools.count()
        lock = threading.Lock()

        def numbers() -> int:
            with lock:
                return next(counter)

        self.producers = [
            _Producer(config, self.clock, numbers, i) for i in range(config.producers)
        ]
        self.consumers = [
            _Consumer(config, self.clock, f"consumer-{i}") for i in range(config.consumers)
        ]
        self.absent: set[int] = set()  # partitions gone by the final read (see `watermarks`)

    def start(self) -> None:
        self.clock.t0 = time.monotonic()
        threads = [w.thread for w in self.producers] + [c.thread for c in self.consumers]
        for thread in threads:
            thread.start()

    def now(self) -> float:
        return self.clock.now()

    def progress(self) -> str:
        acked = errors = 0
        for prod in self.producers:
            with prod.lock:
                for w in prod.done.values():
                    acked += w.outcome is Outcome.OK
                    errors += w.outcome is Outcome.ERROR
        reads = sum(len(c.reads) for c in self.consumers)
        sessions = sum(p.sessions for p in self.producers)
        return (
            f"t={self.clock.now():.0f}s acked={acked} errors={errors} live reads={reads}"
            f" producer sessions={sessions}"
        )

    def finish(self) -> History:
        """Wait for the producers, let consumers catch up, read everything: the history."""
        config = self.config
        for prod in self.producers:
            prod.thread.join()
        if self.consumers:
            try:
                marks, _ = watermarks(config, config.drain_timeout_s)
                deadline = time.monotonic() + config.drain_timeout_s
                while time.monotonic() < deadline and any(
                    c.next_offset[p] < marks[p][1] for c in self.consumers for p in marks
                ):
                    if any(c.failure is not None for c in self.consumers):
                        break
                    time.sleep(_POLL_S)
            finally:  # else their threads outlive a failed drain and the process never exits
                for c in self.consumers:
                    c.stop.set()
            for c in self.consumers:
                c.thread.join(60)
                if c.failure is not None:
                    raise VerifyError(f"{c.name} failed: {c.failure}") from c.failure
        history = History(partitions=config.partitions)
        for prod in self.producers:
            history.writes.extend(prod.writes())
        history.writes.sort(key=lambda w: w.sent_s)
        for c in self.consumers:
            history.live_reads.extend(c.reads)
        self._final_read(history)
        return history

    def _final_read(self, history: History) -> None:
        config = self.config
        marks, self.absent = watermarks(config, config.final_read_timeout_s)
        reader = _Consumer(config, self.clock, "final-reader")
        c = reader.client()
        deadline = time.monotonic() + config.final_read_timeout_s
        try:
            while any(reader.next_offset[p] < high for p, (_, high) in marks.items()):
                if time.monotonic() > deadline:
                    short = {p: (reader.next_offset[p], high) for p, (_, high) in marks.items()
                             if reader.next_offset[p] < high}  # fmt: skip
                    log.warning("final read incomplete (partition: (reached, end)): %s", short)
                    break
                reader.take(c.consume(1000, _POLL_S))
        finally:
            c.close()
        for p, (low, high) in marks.items():
            history.final_start[p] = low
            history.final_end[p] = high
            history.final[p] = []
        for r in reader.reads:
            if r.offset < marks[r.partition][1]:
                history.final[r.partition].append(r)
