"""File compaction under load: 3 agent processes sharing one SQLite store and one objects folder,
with compaction, retention and the GC running every few seconds while idempotent producers and
consumer groups run, for `SHOAL_COMPACTION_LOAD_S` seconds (60 in `make test`; 600 is the
acceptance run of `make soak`).

Two topics: one with `retention.ms` = 20 s (retention removes records as the run goes) and one
kept forever. Producers record every acknowledgement (topic, partition, offset, value); two
consumer groups of two members each (one group per topic, auto-commit on, one member replaced
half way) record every record read; at the end a fresh reader reads each partition from its log
start. `check` then holds that history to Kafka's semantics, knowing nothing of Shoal:

- acks: every offset below a partition's high watermark was acked once, with one value;
- groups (at least once): every acked record read at its acked offset with its value, unless it
  is below the partition's final log start (removed by retention); a redelivery, after a
  rebalance, reads the same value; within one assignment a member reads a partition's offsets
  in order, without repeats (and, kept forever, without gaps);
- the fresh read (exactly once): each offset once, each with its acked value, every acked
  offset at or above the final log start;
- compaction really ran meanwhile (files merged, rows moved) and retention moved every
  partition's log start of the retention topic.

`test_checker_finds_what_a_broken_store_does` shows the checker failing on histories of a store
that loses, moves, duplicates or rewrites records before its verdict on Shoal is trusted.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import wait_for_membership
from tests.cluster_process import Cluster, running_cluster

DURATION_S = float(os.environ.get("SHOAL_COMPACTION_LOAD_S", "60"))
AGENTS = 3
PARTITIONS = 4
PRODUCERS = 3
# Records per second per producer per topic: 3 x 2 x 120 = 720 records/s, about 0.25 MiB/s.
RATE_PER_S = 120
RETENTION_MS = 20_000
TIMEOUT_S = 30.0
CATCH_UP_S = 120.0
JOB_ARGS = [
    "--flush-interval-ms", "5",
    "--compaction-interval-ms", "2000",
    "--compaction-file-bytes-target", str(4 * 1024 * 1024),
    "--retention-check-interval-ms", "2000",
    "--gc-interval-ms", "1000",
    "--gc-grace-ms", "3000",
]  # fmt: skip
_FILLER = os.urandom(4096)

TP = tuple[str, int]  # (topic, partition)


# -- the history --------------------------------------------------------------------------------


@dataclass
class History:
    """What the clients saw. Filled by the producer and consumer threads under `lock`."""

    retention_topics: set[str] = field(default_factory=set)
    acked: dict[TP, dict[int, bytes]] = field(default_factory=dict)
    # group -> (topic, partition) -> offset -> the value first read there
    group_reads: dict[str, dict[TP, dict[int, bytes]]] = field(default_factory=dict)
    group_records: int = 0  # every record the groups read, redeliveries included
    # (topic, partition) -> the fresh read from the log start, in the order read
    fresh: dict[TP, list[tuple[int, bytes]]] = field(default_factory=dict)
    log_start: dict[TP, int] = field(default_factory=dict)  # after the fresh read
    high: dict[TP, int] = field(default_factory=dict)  # once the producers stopped
    problems: list[str] = field(default_factory=list)  # seen as they happened
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        with self.lock:
            at = self.acked.setdefault((topic, partition), {})
            if offset in at:
                self.problems.append(f"{topic}-{partition}@{offset} acked twice")
            at[offset] = value

    def group_read(self, group: str, topic: str, partition: int, offset: int, value: bytes) -> None:
        with self.lock:
            self.group_records += 1
            at = self.group_reads.setdefault(group, {}).setdefault((topic, partition), {})
            first = at.setdefault(offset, value)
            if first != value:
                self.problems.append(
                    f"group {group}: {topic}-{partition}@{offset} read again with another value"
                )

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


@dataclass
class Verdict:
    problems: list[str]
    acked: int = 0
    removed: int = 0  # acked records below the final log start
    group_read: int = 0  # distinct (group, offset) reads
    fresh_read: int = 0


def check(h: History, groups: dict[str, str]) -> Verdict:
    """The history against Kafka's semantics (see the module doc). `groups`: group -> topic."""
    v = Verdict(list(h.problems))
    problems = v.problems
    for tp, high in sorted(h.high.items()):
        topic, partition = tp
        name = f"{topic}-{partition}"
        acked = h.acked.get(tp, {})
        start = h.log_start.get(tp, 0)
        v.acked += len(acked)
        v.removed += sum(1 for off in acked if off < start)
        if sorted(acked) != list(range(high)):
            extra = sorted(set(acked) - set(range(high)))[:5]
            lacking = sorted(set(range(high)) - set(acked))[:5]
            problems.append(f"{name}: acked offsets are not 0..{high - 1}: extra {extra},"
                            f" never acked {lacking}")  # fmt: skip
        if topic not in h.retention_topics and start != 0:
            problems.append(f"{name}: log start {start} in a topic kept forever")
        fresh = h.fresh.get(tp, [])
        v.fresh_read += len(fresh)
        offsets = [off for off, _ in fresh]
        if offsets != sorted(set(offsets)):
            problems.append(f"{name}: fresh read not once each, in order: {_runs(offsets)}")
        for off, value in fresh:
            if acked.get(off) != value:
                problems.append(f"{name}@{off}: fresh read a value not acked there")
        lost = sorted(set(off for off in acked if off >= start) - set(offsets))
        if lost:
            problems.append(f"{name}: {len(lost)} acked records above the log start {start}"
                            f" missing from the fresh read: {_runs(lost)}")  # fmt: skip
    for group, topic in groups.items():
        reads = h.group_reads.get(group, {})
        for tp, by_offset in reads.items():
            v.group_read += len(by_offset)
            acked = h.acked.get(tp, {})
            wrong = [off for off, value in by_offset.items() if acked.get(off) != value]
            if wrong:
                problems.append(f"group {group}: {tp[0]}-{tp[1]}: read values not acked at"
                                f" offsets {_runs(sorted(wrong))}")  # fmt: skip
        for tp, acked in h.acked.items():
            if tp[0] != topic:
                continue
            start = h.log_start.get(tp, 0)
            unread = sorted(off for off in acked if off >= start and off not in reads.get(tp, {}))
            if unread:
                problems.append(f"group {group}: {tp[0]}-{tp[1]}: {len(unread)} acked records"
                                f" never read: {_runs(unread)}")  # fmt: skip
    return v


def _runs(offsets: list[int], shown: int = 6) -> str:
    """`offsets` as runs ("3-7, 9, ..."), the first `shown` of them."""
    runs: list[list[int]] = []
    for off in offsets:
        if runs and off == runs[-1][1] + 1:
            runs[-1][1] = off
        else:
            runs.append([off, off])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:shown])
    return text + (f", ... ({len(runs)} runs)" if len(runs) > shown else "")


# -- the clients ----------------------------------------------------------------------------


def _value(topic: str, producer: int, seq: int) -> bytes:
    head = f"{topic}:{producer}:{seq:010d}:".encode()
    size = 100 + (seq * 37) % 400
    start = seq % 2048
    return head + _FILLER[start : start + size]


class SteadyProducer(threading.Thread):
    """One idempotent producer writing RATE_PER_S records a second to each topic, round-robin
    over the partitions, every acknowledgement recorded, until `stop`; then it flushes."""

    def __init__(
        self, index: int, bootstrap: str, topics: list[str], history: History, stop: threading.Event
    ) -> None:
        super().__init__(name=f"producer-{index}", daemon=True)
        self.index = index
        self.topics = topics
        self.history = history
        self.stop_event = stop
        self.sent = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": f"load-producer-{index}",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 120_000,
                "error_cb": lambda err: history.problem(f"producer {index}: {err}"),
            }
        )

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.history.problem(f"producer {self.index}: delivery failed: {err}")
            return
        value = msg.value()
        assert value is not None
        self.history.ack(msg.topic(), int(msg.partition()), int(msg.offset()), value)

    def run(self) -> None:
        began = time.monotonic()
        try:
            seq = 0
            while not self.stop_event.is_set():
                for topic in self.topics:
                    self._send(topic, seq)
                seq += 1
                self.producer.poll(0)
                # poll returns early once it served a callback: wait out the pace in a loop.
                while (ahead := seq / RATE_PER_S - (time.monotonic() - began)) > 0:
                    self.producer.poll(ahead)
            left = self.producer.flush(60)
            if left:
                self.history.problem(f"producer {self.index}: {left} records never acked")
        except Exception as exc:  # the test fails on it, with the others' problems
            self.history.problem(f"producer {self.index} crashed: {exc!r}")
        finally:
            self.producer.close()

    def _send(self, topic: str, seq: int) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, _value(topic, self.index, seq), partition=seq % PARTITIONS,
                    on_delivery=self._delivered,
                )  # fmt: skip
                self.sent += 1
                return
            except BufferError:
                self.producer.poll(0.05)


class GroupMember(threading.Thread):
    """One member of a consumer group reading its topic (auto-commit on) until `stop`. Within
    one assignment it checks that each partition's offsets come in order without repeats (and
    without gaps where `gapless`); a rebalance may redeliver from the last commit."""

    def __init__(
        self, name: str, bootstrap: str, group: str, topic: str, gapless: bool, history: History
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.group = group
        self.topic = topic
        self.gapless = gapless
        self.history = history
        self.stop_event = threading.Event()
        self.assignments = 0
        self._last: dict[int, int] = {}  # partition -> last offset read in this assignment
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": name,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 200,
                "error_cb": lambda err: history.problem(f"{name}: {err}"),
            }
        )

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignments += 1
        self._last.clear()

    def run(self) -> None:
        try:
            self.consumer.subscribe([self.topic], on_assign=self._assigned,
                                    on_revoke=self._assigned)  # fmt: skip
            while not self.stop_event.is_set():
                for m in self.consumer.consume(500, 0.5):
                    self._record(m)
        except Exception as exc:
            self.history.problem(f"{self.name} crashed: {exc!r}")
        finally:
            self.consumer.close()

    def _record(self, m: Any) -> None:
        err = m.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                self.history.problem(f"{self.name}: consumer error {err}")
            return
        partition, offset, value = int(m.partition()), int(m.offset()), m.value()
        last = self._last.get(partition)
        if last is not None and (offset <= last or (self.gapless and offset != last + 1)):
            self.history.problem(f"{self.name}: {self.topic}-{partition} read {offset} after"
                                 f" {last} in one assignment")  # fmt: skip
        self._last[partition] = offset
        self.history.group_read(self.group, self.topic, partition, offset, value)


def _watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"marks-{uuid.uuid4().hex[:6]}"})
    try:
        return {
            p: tuple(c.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S))  # type: ignore[misc]
            for p in range(PARTITIONS)
        }
    finally:
        c.close()


def _fresh_read(bootstrap: str, topic: str, high: dict[int, int], history: History) -> None:
    """Each partition from its log start (OFFSET_BEGINNING) to `high`, without a group."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fresh-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "error_cb": lambda err: history.problem(f"fresh reader: {err}"),
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    done: set[int] = set()
    deadline = time.monotonic() + CATCH_UP_S
    try:
        while len(done) < PARTITIONS and time.monotonic() < deadline:
            batch: list[Any] = c.consume(1000, 0.5)
            for m in batch:
                err = m.error()
                partition = int(m.partition())
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        history.problem(f"fresh reader: {topic}-{partition}: {err}")
                    elif int(m.offset()) >= high[partition]:
                        done.add(partition)
                    continue
                history.fresh.setdefault((topic, partition), []).append(
                    (int(m.offset()), m.value())
                )
                if int(m.offset()) + 1 >= high[partition]:
                    done.add(partition)
    finally:
        c.close()
    if len(done) < PARTITIONS:
        history.problem(f"fresh reader: {topic}: partitions {set(range(PARTITIONS)) - done}"
                        f" not read to their end in {CATCH_UP_S:.0f} s")  # fmt: skip


def _groups_caught_up(history: History, groups: dict[str, str], starts: Callable[[], dict[TP, int]]
                      ) -> bool:  # fmt: skip
    """Each group has read, for each partition of its topic, its last offset (or the
    partition's log start has passed it)."""
    with history.lock:
        behind = [
            tp
            for group, topic in groups.items()
            for tp, high in history.high.items()
            if tp[0] == topic and high > 0
            and (high - 1) not in history.group_reads.get(group, {}).get(tp, {})
        ]  # fmt: skip
    return not behind or all(starts().get(tp, 0) >= history.high[tp] for tp in behind)


def _create_topics(bootstrap: str, kept: str, short: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([
        NewTopic(kept, PARTITIONS, 1, config={"retention.ms": "-1"}),
        NewTopic(short, PARTITIONS, 1, config={"retention.ms": str(RETENTION_MS)}),
    ])  # fmt: skip
    for f in futures.values():
        f.result(TIMEOUT_S)


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)


def _sum(cluster: Cluster, name: str, **labels: str) -> float:
    return sum(cluster.counters(name, **labels).values())


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.timeout(DURATION_S + 300)
def test_compaction_under_load_keeps_every_record_at_its_offset(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    kept, short = f"load-kept-{tag}", f"load-retained-{tag}"
    topics = [kept, short]
    groups = {f"g-{kept}": kept, f"g-{short}": short}
    history = History(retention_topics={short})
    with running_cluster(tmp_path / "cluster", AGENTS, 3, JOB_ARGS) as cluster:
        wait_for_membership([a.process for a in cluster.agents])
        bootstrap = cluster.bootstrap()
        _create_topics(bootstrap, kept, short)

        members = [
            GroupMember(f"{group}-m{i}", bootstrap, group, topic, topic == kept, history)
            for group, topic in groups.items()
            for i in range(2)
        ]
        stop = threading.Event()
        producers = [SteadyProducer(i, bootstrap, topics, history, stop) for i in range(PRODUCERS)]
        try:
            for t in [*members, *producers]:
                t.start()
            started = time.monotonic()
            replaced = False
            while (elapsed := time.monotonic() - started) < DURATION_S:
                if not replaced and elapsed >= DURATION_S / 2:
                    # A member leaves and another joins: two rebalances under load.
                    replaced = True
                    for k in (0, 2):
                        old = members[k]
                        old.stop_event.set()
                        old.join(TIMEOUT_S)
                        members.append(GroupMember(f"{old.group}-m2", bootstrap, old.group,
                                                   old.topic, old.gapless, history))  # fmt: skip
                        members[-1].start()
                assert all(a.alive for a in cluster.agents), cluster.log_tails()
                time.sleep(1.0)
            stop.set()
            for p in producers:
                p.join(90)
                assert not p.is_alive(), "a producer did not finish its flush"
            for topic in topics:
                for partition, (_, high) in _watermarks(bootstrap, topic).items():
                    history.high[(topic, partition)] = high

            def starts() -> dict[TP, int]:
                return {
                    (topic, p): low
                    for topic in topics
                    for p, (low, _) in _watermarks(bootstrap, topic).items()
                }

            _wait("the groups read everything acked",
                  lambda: _groups_caught_up(history, groups, starts), CATCH_UP_S)  # fmt: skip
        finally:
            stop.set()
            for m in members:
                m.stop_event.set()
            for t in [*members, *producers]:
                t.join(TIMEOUT_S)

        for topic in (short, kept):  # retention's first: it empties soon after the producers
            highs = {p: history.high[(topic, p)] for (t, p) in history.high if t == topic}
            _fresh_read(bootstrap, topic, highs, history)
        for tp, low in starts().items():
            history.log_start[tp] = low

        merged_in = _sum(cluster, "shoal_compaction_files_total", kind="input")
        merged_out = _sum(cluster, "shoal_compaction_files_total", kind="output")
        moved = _sum(cluster, "shoal_compaction_rows_total", outcome="moved")
        stale = _sum(cluster, "shoal_compaction_rows_total", outcome="stale")
        skipped = _sum(cluster, "shoal_compaction_rows_total", outcome="skipped")
        compaction_errors = _sum(cluster, "shoal_compaction_errors_total")
        puts = _sum(cluster, "shoal_object_store_requests_total", op="put", cause="compaction")
        files_now = {topic: cluster.topic_files(topic) for topic in topics}
        log_tails = cluster.log_tails(20)

    verdict = check(history, groups)
    sent = sum(p.sent for p in producers)
    print(
        f"\ncompaction under load, {DURATION_S:.0f} s: {sent} sent, {verdict.acked} acked,"
        f" group reads {history.group_records} ({verdict.group_read} distinct),"
        f" fresh read {verdict.fresh_read}, removed by retention {verdict.removed};"
        f" compaction {merged_in:.0f} files into {merged_out:.0f} ({puts:.0f} PUTs),"
        f" rows moved {moved:.0f}, stale {stale:.0f}, skipped {skipped:.0f},"
        f" errors {compaction_errors:.0f}; files now {files_now}; log starts"
        f" {[history.log_start[(short, p)] for p in range(PARTITIONS)]} of highs"
        f" {[history.high[(short, p)] for p in range(PARTITIONS)]}"
    )
    assert not verdict.problems, "\n".join(verdict.problems[:40]) + "\n" + log_tails
    assert verdict.acked > DURATION_S * RATE_PER_S, "the producers barely wrote"
    assert merged_in > 0 and moved > 0, "compaction did not run under load"
    assert all(history.log_start[(short, p)] > 0 for p in range(PARTITIONS)), history.log_start
    assert verdict.removed > 0


def _sample_history() -> tuple[History, dict[str, str]]:
    """A correct history: topic k kept (3 records), topic r with retention (log start 1)."""
    h = History(retention_topics={"r"})
    groups = {"gk": "k", "gr": "r"}
    for topic, start in (("k", 0), ("r", 1)):
        h.high[(topic, 0)] = 3
        h.log_start[(topic, 0)] = start
        for off in range(3):
            value = f"{topic}{off}".encode()
            h.ack(topic, 0, off, value)
            h.group_read(f"g{topic}", topic, 0, off, value)
            if off >= start:
                h.fresh.setdefault((topic, 0), []).append((off, value))
    return h, groups


def test_checker_finds_what_a_broken_store_does() -> None:
    h, groups = _sample_history()
    assert check(h, groups).problems == []
    assert check(h, groups).removed == 1

    h, groups = _sample_history()  # a record lost: neither read nor below the log start
    h.fresh[("k", 0)].pop(1)
    del h.group_reads["gk"][("k", 0)][1]
    found = check(h, groups).problems
    assert any("missing from the fresh read: 1" in p for p in found), found
    assert any("never read: 1" in p for p in found), found

    h, groups = _sample_history()  # a record read at another offset
    h.fresh[("k", 0)][2] = (2, b"k1")
    assert any("k-0@2: fresh read a value not acked" in p for p in check(h, groups).problems)

    h, groups = _sample_history()  # the fresh read sees an offset twice
    h.fresh[("k", 0)].append((2, b"k2"))
    assert any("not once each" in p for p in check(h, groups).problems)

    h, groups = _sample_history()  # a redelivery with another value
    h.group_read("gr", "r", 0, 2, b"other")
    assert any("read again with another value" in p for p in check(h, groups).problems)

    h, groups = _sample_history()  # an offset acked that is not below the high watermark
    h.ack("k", 0, 3, b"k3")
    assert any("acked offsets are not 0..2" in p for p in check(h, groups).problems)

    h, groups = _sample_history()  # retention on a topic kept forever
    h.log_start[("k", 0)] = 1
    assert any("log start 1 in a topic kept forever" in p for p in check(h, groups).problems)
