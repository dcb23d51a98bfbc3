"""The Java client (kafka-clients 4.4.0) and Kafka Streams against two agents of one cluster.

compat/java is a Maven project of JUnit tests that never start a broker: they read
`-Dshoal.bootstrap` and `-Dshoal.bootstrap2`. Here two agents share one backend (a folder and
one SQLite file on `embedded`, the backend's bucket and database on `s3-pg`), and Maven runs
the tests against them. `make test` runs the `quick` tag (a few tests of each class); the whole
set is marked `compat`. Each run writes surefire's reports to its own directory under tmp_path,
so the two backends' runs never read each other's results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess, wait_for_membership
from tests.backends import Backend

REPO = Path(__file__).resolve().parents[2]
POM = REPO / "compat" / "java" / "pom.xml"
M2 = REPO / ".cache" / "m2"
CLASSES = ("AdminTest", "ConsumerGroupTest", "ProducerTest", "StreamsWordCountTest")
# The first run downloads Maven's plugins and the clients into .cache/m2 and compiles; later
# runs take about a minute for the quick tag on two loaded cores.
QUICK_TIMEOUT_S = 900.0
ALL_TIMEOUT_S = 1800.0
TAIL_LINES = 120


@dataclass
class Surefire:
    """Counts summed over surefire's TEST-*.xml files, and what failed."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    classes: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)


def read_reports(directory: Path) -> Surefire:
    out = Surefire()
    for path in sorted(directory.glob("TEST-*.xml")):
        suite = ET.parse(path).getroot()
        out.tests += int(suite.get("tests", "0"))
        out.failures += int(suite.get("failures", "0"))
        out.errors += int(suite.get("errors", "0"))
        out.skipped += int(suite.get("skipped", "0"))
        out.classes.add(str(suite.get("name", "")).rsplit(".", 1)[-1])
        for case in suite.iter("testcase"):
            for kind in ("failure", "error"):
                problem = case.find(kind)
                if problem is not None:
                    text = (problem.text or problem.get("message") or "").strip()
                    out.failed.append(f"{case.get('name')} ({kind}): {text[:3000]}")
    return out


@pytest.fixture
def two_agents(tmp_path: Path, backend: Backend) -> Iterator[list[AgentProcess]]:
    if backend.kind == "embedded":
        # One cluster on the embedded stores: both agents name the same folder and SQLite file.
        shared = tmp_path / "shared"
        shared.mkdir()
        store = [
            "--bucket",
            f"file://{shared}/objects",
            "--metadata",
            f"sqlite:///{shared}/metadata.db",
        ]
    else:
        store = list(backend.args)
    agents: list[AgentProcess] = []
    try:
        for i in range(2):
            args = [*store, "--node-id", str(i), "--flush-interval-ms", "20"]
            agents.append(AgentProcess(tmp_path / f"agent{i}", args, env=backend.env).start())
        wait_for_membership(agents)
        yield agents
    finally:
        for agent in agents:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.stop()


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_java_tests(
    agents: list[AgentProcess], reports: Path, groups: str | None, timeout_s: float
) -> Surefire:
    if shutil.which("mvn") is None:
        raise AssertionError(
            "mvn is not on PATH: the Java client tests need Maven 3.8+ and Java 17"
        )
    command = [
        "mvn", "-B", "-q",
        f"-Dmaven.repo.local={M2}",
        "-f", str(POM),
        "test",
        f"-Dshoal.bootstrap={agents[0].bootstrap}",
        f"-Dshoal.bootstrap2={agents[1].bootstrap}",
        f"-Dshoal.reports={reports}",
    ]  # fmt: skip
    if groups is not None:
        command.append(f"-Dgroups={groups}")
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=timeout_s,
        env=dict(os.environ),
        cwd=REPO,
    )
    output = result.stdout.decode(errors="replace")
    found = read_reports(reports)
    logs = "\n".join(
        f"--- agent {i} log (tail) ---\n{a.log_tail(30)}" for i, a in enumerate(agents)
    )
    context = (
        f"mvn exited {result.returncode}; surefire: {found.tests} tests, "
        f"{found.failures} failures, {found.errors} errors, {found.skipped} skipped, "
        f"classes {sorted(found.classes)}\n"
        + "\n".join(found.failed)
        + f"\n--- mvn output (tail) ---\n{_tail(output)}\n{logs}"
    )
    assert result.returncode == 0, context
    assert found.tests > 0, context
    assert (found.failures, found.errors, found.skipped) == (0, 0, 0), context
    assert found.classes == set(CLASSES), context
    return found


@pytest.mark.timeout(QUICK_TIMEOUT_S + 120)
def test_java_client_quick_part(two_agents: list[AgentProcess], tmp_path: Path) -> None:
    run_java_tests(two_agents, tmp_path / "surefire-quick", "quick", QUICK_TIMEOUT_S)


@pytest.mark.compat
@pytest.mark.timeout(ALL_TIMEOUT_S + 120)
def test_java_client_all(two_agents: list[AgentProcess], tmp_path: Path) -> None:
    run_java_tests(two_agents, tmp_path / "surefire-all", None, ALL_TIMEOUT_S)
