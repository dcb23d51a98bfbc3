"""`shoal playground --agents N --zones Z` as a user runs it: one supervisor process, N agents."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.read_workload import consume_group, create_topic, produce_volume, watermarks

AGENTS = 3
ZONES = 2


def _free_base(count: int) -> int:
    """A base port with `count` free ports after it, below the ephemeral range (re-checked by
    the playground itself)."""
    for _ in range(200):
        base = random.randrange(20000, 32000)
        if all(_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Running:
    proc: subprocess.Popen[str]
    kafka_base: int
    http_base: int
    data_dir: Path
    out_path: Path

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def status(self, i: int) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.http_base + i}/v1/status"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.loads(resp.read()))


def _start(tmp_path: Path) -> Running:
    kafka_base, http_base = _free_base(AGENTS), _free_base(AGENTS)
    out_path = tmp_path / "playground.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "shoal.cli", "playground",
                "--agents", str(AGENTS), "--zones", str(ZONES),
                "--kafka-port", str(kafka_base), "--http-port", str(http_base),
                "--data-dir", str(tmp_path / "data"), "--flush-interval-ms", "20",
            ],
            stdout=out, stderr=subprocess.STDOUT, env=env, text=True,
        )  # fmt: skip
    running = Running(proc, kafka_base, http_base, tmp_path / "data", out_path)
    deadline = time.monotonic() + 60
    while "Ctrl-C stops all agents" not in running.output():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"playground did not start:\n{running.output()}")
        time.sleep(0.1)
    return running


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = _start(tmp_path)
    try:
        yield r
    finally:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)


def _gone(pids: list[int], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and _not_zombie(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_banner_agents_zones_and_graceful_stop(running: Running) -> None:
    out = running.output()
    zone1 = f"127.0.0.1:{running.kafka_base},127.0.0.1:{running.kafka_base + 2}"
    zone2 = f"127.0.0.1:{running.kafka_base + 1}"
    assert zone1 in out and "shoal_az=zone-1" in out
    assert zone2 in out and "shoal_az=zone-2" in out
    assert out.count("playground:") == 1  # one banner

    for i in range(AGENTS):
        agent = running.status(i)["agent"]
        assert isinstance(agent, dict)
        assert agent["node_id"] == i
        assert agent["az"] == f"zone-{i % ZONES + 1}"
    # One shared data dir: one metadata file, one object folder, a log per agent.
    assert (running.data_dir / "metadata.db").exists()
    assert sorted(p.name for p in (running.data_dir / "logs").iterdir()) == [
        f"agent-{i}.log" for i in range(AGENTS)
    ]

    # Data produced through one zone is read back through the other.
    topic = f"pg-{uuid.uuid4().hex[:6]}"
    create_topic(zone1, topic, 4)
    produce_volume(zone1, topic, 256 * 1024, 4, zone="zone-1")
    high = watermarks(zone2, topic, 4)
    assert sum(high) == 256
    result = consume_group(zone2, topic, f"{topic}-g", "zone-2", high, timeout_s=60)
    assert result.done and not result.fatal

    children = running.children()
    assert len(children) == AGENTS
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(60) == 0
    assert _gone(children)
    assert "stopping all agents" in running.output()


def test_killed_agent_is_reported_and_the_others_keep_running(running: Running) -> None:
    children = running.children()
    os.kill(children[1], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "agent 1 (zone-2" not in running.output():
        assert time.monotonic() < deadline, running.output()
        time.sleep(0.1)
    assert "killed by SIGKILL" in running.output()
    assert running.proc.poll() is None
    assert running.status(0)["agent"] is not None
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(60) == 0
    assert _gone(children)


def test_agents_die_with_a_killed_supervisor(running: Running) -> None:
    children = running.children()
    assert len(children) == AGENTS
    running.proc.kill()
    running.proc.wait(10)
    assert _gone(children), "orphaned agents"
