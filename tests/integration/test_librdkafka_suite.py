"""librdkafka's own test suite, run against a real Shoal agent process.

compat/librdkafka/run.sh builds librdkafka's test runner once (cached under .cache/) and runs the
test ids listed in compat/librdkafka/tests.allow; each must pass.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.common.ports import free_ports
from tests.backends import Backend

REPO = Path(__file__).resolve().parents[2]
RUN_SCRIPT = REPO / "compat" / "librdkafka" / "run.sh"
AGENT_START_TIMEOUT_S = 30.0
# librdkafka's tests assume its "default" scenario: auto-created topics get 4 partitions
# (tests/scenarios/default.json); 0012 and others produce to partitions 0..3.
AUTO_CREATE_PARTITIONS = 4
# The first run fetches and compiles librdkafka (one to three minutes on two cores).
SUITE_TIMEOUT_S = 1500.0
TAIL_LINES = 80


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + AGENT_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"shoal agent exited with {proc.returncode} before listening:\n"
                f"{_tail(log.read_text(errors='replace'))}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(
        f"shoal agent did not accept connections on port {port} within "
        f"{AGENT_START_TIMEOUT_S:.0f} s:\n{_tail(log.read_text(errors='replace'))}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@pytest.fixture
def shoal_agent(tmp_path: Path, backend: Backend) -> Iterator[tuple[int, Path]]:
    """A Shoal agent subprocess on the test's backend; yields its Kafka port and its log file."""
    kafka_port, http_port = free_ports(2)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log = tmp_path / "agent.log"
    cmd = [
        sys.executable, "-m", "shoal.cli", "agent",
        "--kafka-port", str(kafka_port),
        "--http-port", str(http_port),
        "--data-dir", str(data_dir),
        "--auto-create-topics", "true",
        "--default-partitions", str(AUTO_CREATE_PARTITIONS),
        # 0077 waits 20 s for its compacted topic to be cleaned.
        "--compaction-interval-ms", "1000",
        *backend.args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, **backend.env},
        )
    try:
        _wait_for_port(kafka_port, proc, log)
        yield kafka_port, log
    finally:
        _stop(proc)


@pytest.mark.librdkafka
@pytest.mark.timeout(SUITE_TIMEOUT_S + 60)
def test_librdkafka_allowed_tests_pass(shoal_agent: tuple[int, Path]) -> None:
    kafka_port, agent_log = shoal_agent
    result = subprocess.run(
        ["bash", str(RUN_SCRIPT), "--bootstrap", f"127.0.0.1:{kafka_port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=SUITE_TIMEOUT_S,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, (
        f"run.sh exited {result.returncode}\n--- run.sh output (tail) ---\n{_tail(output)}\n"
        f"--- agent log (tail) ---\n{_tail(agent_log.read_text(errors='replace'), 40)}"
    )
    assert " passed, 0 failed" in output, _tail(output)
