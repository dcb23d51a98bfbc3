"""franz-go's own kgo integration tests, run against a real Shoal agent process.

compat/franz-go/run.sh builds the test binary of franz-go's pkg/kgo once (cached under .cache/)
and runs the named tests against the agent; each must pass. `make test` runs a representative
part (produce, consume, a consumer group, a fetch larger than the broker's limit); the whole of
compat/franz-go/tests.allow is marked `compat`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess

REPO = Path(__file__).resolve().parents[2]
RUN_SCRIPT = REPO / "compat" / "franz-go" / "run.sh"
ALLOW_LIST = REPO / "compat" / "franz-go" / "tests.allow"
# One test of each kind the allow-list covers, each a few seconds against one agent.
REPRESENTATIVE = (
    "TestPing",
    "TestClient_ProduceLargeMessages",
    "TestIssue810",
    "TestIssueFetchLargerThanBrokerMaxReadBytes",
    "TestGroupSimple",
)
# The first run fetches franz-go and compiles kgo's test binary (one to three minutes on two
# cores); later runs reuse the binary.
BUILD_TIMEOUT_S = 600.0
PER_TEST_TIMEOUT_S = 300
# Records each ETL test produces (TestGroupETL). kgo's default, 500000, passes on the embedded
# backend in about 110 s but outlasts the 300 s per test on moto S3 + PostgreSQL on two cores.
ETL_RECORDS = 100000
TAIL_LINES = 80


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _allowed() -> list[str]:
    names = []
    for line in ALLOW_LIST.read_text().splitlines():
        names.extend(line.split("#", 1)[0].split())
    return names


def _run(agent: AgentProcess, tests: list[str], timeout_s: float) -> str:
    result = subprocess.run(
        [
            "bash", str(RUN_SCRIPT),
            "--bootstrap", agent.bootstrap,
            "--tests", ",".join(tests),
            "--timeout", str(PER_TEST_TIMEOUT_S),
            "--records", str(ETL_RECORDS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=timeout_s,
        env=dict(os.environ),
        cwd=REPO,
    )  # fmt: skip
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, (
        f"run.sh exited {result.returncode}\n--- run.sh output (tail) ---\n{_tail(output)}\n"
        f"--- agent log (tail) ---\n{agent.log_tail(40)}"
    )
    return output


REPRESENTATIVE_TIMEOUT_S = BUILD_TIMEOUT_S + 60 * len(REPRESENTATIVE)


@pytest.mark.timeout(REPRESENTATIVE_TIMEOUT_S + 60)
def test_representative_part_passes(agent: AgentProcess) -> None:
    output = _run(agent, list(REPRESENTATIVE), REPRESENTATIVE_TIMEOUT_S)
    assert f"franz-go: {len(REPRESENTATIVE)} passed, 0 failed" in output, _tail(output)


def test_representative_part_is_in_allow_list() -> None:
    missing = set(REPRESENTATIVE) - set(_allowed())
    assert not missing, f"not in {ALLOW_LIST.name}: {sorted(missing)}"


@pytest.mark.compat
@pytest.mark.timeout(BUILD_TIMEOUT_S + 3660)
def test_allow_list_passes(agent: AgentProcess) -> None:
    tests = _allowed()
    assert tests, f"{ALLOW_LIST} names no tests"
    output = _run(agent, tests, BUILD_TIMEOUT_S + 3600)
    assert f"franz-go: {len(tests)} passed, 0 failed" in output, _tail(output)
