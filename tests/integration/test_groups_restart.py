"""Acceptance: kill -9 the agent mid-consumption and restart it on the same data dir and ports;
the members rejoin (or carry on in their generation, reloaded from the metadata store) and
resume from their committed offsets: nothing is lost, nothing restarts from the beginning."""

from __future__ import annotations

import time
from pathlib import Path

from tests.agent_process import AgentProcess
from tests.integration.group_members import (
    committed,
    create_topic,
    high_watermarks,
    produce_fast,
    wait_until,
)
from tests.integration.test_groups_churn import MemberProc, delivered

N = 60_000
PARTITIONS = 12


def lines(files: list[Path]) -> list[tuple[int, int]]:
    out = []
    for f in files:
        if f.exists():
            for line in f.read_text().splitlines():
                p, o = line.split()
                out.append((int(p), int(o)))
    return out


def test_agent_restart_mid_consumption(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent", ["--flush-interval-ms", "20"]).start()
    procs: list[MemberProc] = []
    try:
        topic, group = "restart", "restart-group"
        create_topic(agent.bootstrap, topic, PARTITIONS)
        produce_fast(agent.bootstrap, topic, N, PARTITIONS)
        marks = high_watermarks(agent.bootstrap, topic, PARTITIONS)
        files = [tmp_path / f"m{i}.txt" for i in range(3)]
        procs = [MemberProc(agent, topic, group, f, pause_s=0.05) for f in files]
        wait_until(lambda: len(delivered(files)) >= N // 3, 120, "a third of the records")

        before = committed(agent.bootstrap, group, topic, PARTITIONS)
        assert any(o > 0 for o in before.values())
        per_file_before = [len(f.read_text().splitlines()) for f in files]
        agent.kill()
        time.sleep(1.0)
        agent.start()  # same data dir and ports

        wait_until(lambda: len(delivered(files)) >= N, 180, "every record after the restart")
        wait_until(
            lambda: committed(agent.bootstrap, group, topic, PARTITIONS) == marks,
            60,
            "commits to reach the high watermarks",
        )
        # Everything delivered after the kill starts at or above what was committed before it.
        after = [
            (int(p), int(o))
            for f, skip in zip(files, per_file_before, strict=True)
            for p, o in (line.split() for line in f.read_text().splitlines()[skip:])
        ]
        assert after, "nothing was consumed after the restart"
        low = {p: min(o for q, o in after if q == p) for p in {q for q, _ in after}}
        for p, first in low.items():
            assert first >= before[p], f"partition {p} restarted at {first} < committed {before[p]}"
        # Re-deliveries are bounded by what was in flight, not the whole topic.
        assert len(lines(files)) < 2 * N
    finally:
        for m in procs:
            if m.proc.poll() is None:
                m.term()
        agent.stop()
