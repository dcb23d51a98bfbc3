"""`shoal verify` as a user runs it: against a real agent without faults, against a 2-agent
playground it starts itself with a kill -9 fault, and against an agent it starts from
`--broker-command` and kills -9 and restarts. All short (the 10-minute 3-agent SeaweedFS +
PostgreSQL schedule is `make verify`)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agent_process import AgentProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
REPORT_FILES = ("verdict.json", "timeline.csv", "timeline.png")


def _verify(args: list[str], report: Path, timeout_s: float) -> tuple[int, dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    done = subprocess.run(
        [sys.executable, "-m", "shoal.cli", "verify", *args, "--report", str(report), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        text = f"no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise AssertionError(text) from None
    return done.returncode, doc, done.stderr


@pytest.mark.timeout(180)
def test_verify_a_single_agent_without_faults(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent", ["--flush-interval-ms", "10"]).start()
    try:
        code, doc, stderr = _verify(
            ["--bootstrap", agent.bootstrap, "--partitions", "4", "--duration-s", "20"],
            tmp_path / "report", 150,
        )  # fmt: skip
    finally:
        agent.stop()
    verdict = doc["verdict"]
    assert code == 0, (verdict, stderr[-3000:])
    assert verdict["ok"] and verdict["acked"] > 1000
    for kind in ("lost", "duplicated", "reordered", "inconsistent_offsets", "unexpected"):
        assert verdict[kind] == 0, (kind, verdict["examples"])
    assert verdict["read"] == verdict["acked"] and verdict["indeterminate"] == 0
    for name in REPORT_FILES:
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    assert (tmp_path / "report" / "clients.log").exists()  # empty: nothing went wrong


@pytest.mark.timeout(240)
def test_verify_a_playground_with_a_kill(tmp_path: Path) -> None:
    code, doc, stderr = _verify(
        ["--playground", "2", "--object-store", "local", "--metadata", "sqlite",
         "--partitions", "4", "--duration-s", "30", "--faults", "kill@1:10s:2s"],
        tmp_path / "report", 220,
    )  # fmt: skip
    verdict = doc["verdict"]
    assert verdict["acked"] > 1000, (verdict, stderr[-3000:])
    assert verdict["lost"] == 0, verdict["examples"]
    assert code == 0, (verdict, stderr[-3000:])
    saved = json.loads((tmp_path / "report" / "verdict.json").read_text())
    (kill,) = saved["faults"]
    assert kill["kind"] == "kill" and kill["target"] == "agent 1"
    assert 9 < kill["start_s"] < kill["end_s"] < 30
    assert not saved["run"]["notes"], saved["run"]["notes"]  # no agent died unplanned
    assert (tmp_path / "report" / "timeline.png").stat().st_size > 0


@pytest.mark.timeout(120)
def test_verify_an_agent_started_by_broker_command_with_a_kill(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "shoal.cli", "agent", "--data-dir", str(tmp_path / "agent"),
        "--kafka-port", str(port), "--http-port", str(free_port()), "--flush-interval-ms", "10",
    ]  # fmt: skip
    code, doc, stderr = _verify(
        ["--broker-command", shlex.join(command), "--bootstrap", f"127.0.0.1:{port}",
         "--partitions", "4", "--duration-s", "16", "--faults", "kill:6s:2s"],
        tmp_path / "report", 100,
    )  # fmt: skip
    verdict = doc["verdict"]
    assert verdict["acked"] > 1000, (verdict, stderr[-3000:])
    assert verdict["lost"] == 0, verdict["examples"]
    assert code == 0, (verdict, stderr[-3000:])
    run = doc["run"]
    assert run["target"]["broker_starts"] == 2 and not run["notes"], run
    (kill,) = json.loads((tmp_path / "report" / "verdict.json").read_text())["faults"]
    assert kill["kind"] == "kill" and 6 <= kill["start_s"] < kill["end_s"] < 16
    assert "--- start 2:" in (tmp_path / "report" / "target" / "broker.log").read_text()
