"""The test harness starts an agent even when a port it chose is taken before the agent binds
it (a CI run failed with "agent exited early with code 1" that way), and a restart keeps its
ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess


def _hold(port: int) -> socket.socket:
    """Bound, not listening: the agent's bind fails and nothing answers a connect."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    return sock


def test_a_port_taken_before_the_first_start_moves_the_agent(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent")
    taken = agent.kafka_port
    with _hold(taken):
        agent.start()
        try:
            assert agent.kafka_port != taken
            assert "address already in use" in agent.log_tail().lower()
            with socket.create_connection(("127.0.0.1", agent.kafka_port), timeout=5):
                pass
        finally:
            agent.stop()


def test_a_restart_keeps_its_ports_and_fails_on_a_taken_one(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent").start()
    port = agent.kafka_port
    assert agent.stop() == 0
    with _hold(port), pytest.raises(RuntimeError, match=r"(?i)address already in use"):
        agent.start()
    assert agent.kafka_port == port


def test_fixed_ports_are_not_moved(tmp_path: Path) -> None:
    probe = AgentProcess(tmp_path / "probe")
    fixed = AgentProcess(tmp_path / "agent", kafka_port=probe.kafka_port, http_port=probe.http_port)
    with _hold(fixed.kafka_port), pytest.raises(RuntimeError, match=r"(?i)address already in use"):
        fixed.start()
    with pytest.raises(ValueError, match="both ports or neither"):
        AgentProcess(tmp_path / "half", kafka_port=probe.kafka_port)
