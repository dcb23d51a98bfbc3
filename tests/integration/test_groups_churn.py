"""Acceptance: rebalance under churn. While a producer writes, members join, leave and are
killed (-9) one after another; the group converges each time within the session timeout plus a
few seconds; with commit-after-process no record is lost, and no committed offset ever goes
backwards or past the high watermark."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.agent_process import AgentProcess
from tests.integration.group_members import committed, create_topic, high_watermarks, wait_until

PARTITIONS = 12
SESSION_S = 6.0
CONVERGE_S = SESSION_S + 10.0
REPO = Path(__file__).resolve().parents[2]


class MemberProc:
    def __init__(self, agent: AgentProcess, topic: str, group: str, out: Path, pause_s: float):
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.group_member_proc", agent.bootstrap,
             topic, group, str(out), str(pause_s)],
            cwd=REPO,
        )  # fmt: skip

    def term(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def delivered(files: list[Path]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for f in files:
        if f.exists():
            for line in f.read_text().splitlines():
                p, o = line.split()
                out.add((int(p), int(o)))
    return out


def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(10)
    return str(desc.state.name), len(desc.members)


class CommitWatcher(threading.Thread):
    """Reads committed offsets, then high watermarks, over and over; records violations."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.stop = threading.Event()
        self.violations: list[str] = []
        self.samples = 0

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        last: dict[int, int] = {}
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        try:
            while not self.stop.is_set():
                got = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
                marks = {
                    p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                    for p in range(PARTITIONS)
                }
                for p, off in got.items():
                    if off < 0:
                        continue
                    if off < last.get(p, -1):
                        self.violations.append(f"p{p} went back {last[p]} -> {off}")
                    if off > marks[p]:
                        self.violations.append(f"p{p} committed {off} > high watermark {marks[p]}")
                    last[p] = off
                self.samples += 1
                time.sleep(0.2)
        finally:
            c.close()


def test_rebalance_under_churn(agent: AgentProcess, tmp_path: Path) -> None:
    topic, group = "churn", "churn-group"
    create_topic(agent.bootstrap, topic, PARTITIONS)
    produced = [0]
    stop_producing = threading.Event()

    def producer() -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 10})
        while not stop_producing.is_set():
            for i in range(produced[0], produced[0] + 600):
                p.produce(topic, value=str(i).encode(), partition=i % PARTITIONS)
            assert p.flush(30) == 0
            produced[0] += 600
            time.sleep(0.05)

    writer = threading.Thread(target=producer, daemon=True)
    writer.start()
    watcher = CommitWatcher(agent.bootstrap, group, topic)
    watcher.start()
    files: list[Path] = []
    convergence: list[float] = []

    def spawn() -> MemberProc:
        files.append(tmp_path / f"member-{len(files)}.txt")
        return MemberProc(agent, topic, group, files[-1], pause_s=0.02)

    def converge(n: int) -> None:
        convergence.append(
            wait_until(
                lambda: group_state(agent.bootstrap, group) == ("STABLE", n),
                CONVERGE_S,
                f"group stable with {n} members",
            )
        )

    procs: list[MemberProc] = []
    try:
        m1, m2 = spawn(), spawn()
        procs += [m1, m2]
        converge(2)
        m3 = spawn()
        procs.append(m3)
        converge(3)
        m1.term()  # graceful leave
        converge(2)
        m2.kill()  # -9: the session timeout expels it
        converge(1)
        m4 = spawn()
        procs.append(m4)
        converge(2)
        m4.kill()
        converge(1)
        stop_producing.set()
        writer.join(60)
        marks = high_watermarks(agent.bootstrap, topic, PARTITIONS)
        assert sum(marks.values()) == produced[0]
        wanted = {(p, o) for p in range(PARTITIONS) for o in range(marks[p])}
        wait_until(lambda: wanted <= delivered(files), 60, "every record to be processed")
        wait_until(
            lambda: committed(agent.bootstrap, group, topic, PARTITIONS) == marks,
            30,
            "commits to reach the high watermarks",
        )
    finally:
        stop_producing.set()
        watcher.stop.set()
        for p in procs:
            if p.proc.poll() is None:
                p.kill()
        watcher.join(30)
    assert watcher.samples > 10
    assert watcher.violations == []
    assert len(convergence) == 6 and max(convergence) < CONVERGE_S
    print(
        f"churn: produced {produced[0]}, convergence seconds {[round(c, 1) for c in convergence]}"
    )
