"""KafkaJS (node) against a real agent: idempotent produce with keys, headers and timestamps,
a consumer group reading everything back, committed offsets and ListOffsets checked.

KafkaJS is installed from the npm registry into .cache/node on first use (pinned version);
node itself comes with the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "compat" / "kafkajs" / "roundtrip.js"
NODE_DIR = REPO / ".cache" / "node"
KAFKAJS_VERSION = "2.2.4"
RECORDS = 20_000
PARTITIONS = 8


@pytest.fixture(scope="session")
def kafkajs() -> Path:
    modules = NODE_DIR / "node_modules"
    package = modules / "kafkajs" / "package.json"
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are part of this machine kind; they are missing"
    if not package.exists() or json.loads(package.read_text())["version"] != KAFKAJS_VERSION:
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
             f"kafkajs@{KAFKAJS_VERSION}"],
            check=True, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return modules


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_kafkajs_roundtrip_with_a_group(agent: AgentProcess, kafkajs: Path, codec: str) -> None:
    topic = f"kafkajs-{codec}-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        ["node", str(SCRIPT), agent.bootstrap, topic, str(RECORDS), str(PARTITIONS), codec],
        capture_output=True,
        timeout=240,
        env={**os.environ, "NODE_PATH": str(kafkajs), "KAFKAJS_NO_PARTITIONER_WARNING": "1"},
    )
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    assert result.returncode == 0 and lines, (
        f"node exited {result.returncode}\n{result.stdout.decode(errors='replace')[-3000:]}\n"
        f"{result.stderr.decode(errors='replace')[-3000:]}\n--- agent ---\n{agent.log_tail()}"
    )
    summary = json.loads(lines[-1])
    assert summary["problems"] == []
    assert summary["ok"] is True
    assert summary["produced"] == summary["consumed"] == RECORDS
    per_partition = RECORDS // PARTITIONS
    assert summary["highWatermarks"] == {str(p): per_partition for p in range(PARTITIONS)}
    assert summary["committedOffsets"] == summary["highWatermarks"]
