"""Start real `shoal agent` processes for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.common.ports import ADDRESS_IN_USE, free_port, free_ports

__all__ = ["AgentProcess", "free_port", "wait_for_membership", "wait_for_port"]

# Starts to try when the agent's port was taken between choosing it and the agent's bind.
START_ATTEMPTS = 3


def wait_for_port(
    port: int, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"agent exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout_s}s")


@dataclass
class AgentProcess:
    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    # 0: this harness chooses both ports (and chooses again if one is taken before the bind).
    kafka_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # Added to the agent's environment (object-store credentials of a test backend).
    env: dict[str, str] = field(default_factory=dict)
    ports_chosen: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.ports_chosen = self.kafka_port == 0 and self.http_port == 0
        if self.ports_chosen:
            self.kafka_port, self.http_port = free_ports(2)
        elif 0 in (self.kafka_port, self.http_port):
            raise ValueError("give both ports or neither")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def serves_kafka(self) -> bool:
        """False for an agent started with --roles lacking `proxy`."""
        args = self.extra_args
        if "--roles" not in args:
            return True
        roles = args[args.index("--roles") + 1].split(",")
        return "proxy" in roles

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> AgentProcess:
        """Start the agent and wait for its Kafka port. When a port this harness chose was taken
        before the agent's first bind, starts again on fresh ports; a restart keeps its ports
        (clients hold them), so there a taken port fails the start."""
        may_move = self.ports_chosen and self.proc is None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._spawn()
                # A jobs-only agent opens no Kafka listener; its HTTP port says it is up.
                wait_for_port(self.kafka_port if self.serves_kafka else self.http_port,
                              proc=self.proc)  # fmt: skip
                return self
            except RuntimeError as exc:
                taken = ADDRESS_IN_USE in self.log_tail().lower()
                if not (taken and may_move and attempt < START_ATTEMPTS):
                    raise RuntimeError(f"{exc}; log tail:\n{self.log_tail()}") from None
                self.kafka_port, self.http_port = free_ports(2)
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "agent.log"
        args = [
            sys.executable,
            "-m",
            "shoal.cli",
            "agent",
            "--kafka-port",
            str(self.kafka_port),
            "--http-port",
            str(self.http_port),
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        env.update(self.env)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def counter(self, name: str, **labels: str) -> float:
        """Sum of the samples of metric `name` whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(
            sample.value
            for family in text_string_to_metric_families(self.metrics())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def status(self) -> dict[str, Any]:
        """The agent's /v1/status document."""
        with urllib.request.urlopen(f"{self.http}/v1/status", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def live_agents(self) -> int:
        """Agents in this agent's membership view (all zones)."""
        return sum(len(members) for members in self.status()["cluster"]["zones"].values())

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss_bytes(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def wait_for_membership(agents: list[AgentProcess], timeout_s: float = 60.0) -> None:
    """Until every agent's view holds all of them: before that, Metadata names the agents
    known so far and partition leaders move as the views fill in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(a.live_agents() == len(agents) for a in agents):
            return
        time.sleep(0.1)
    seen = [a.live_agents() for a in agents]
    raise AssertionError(f"the agents did not all see each other: {seen}")
