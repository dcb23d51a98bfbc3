from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    """A real agent process on free ports with embedded stores under tmp_path."""
    proc = AgentProcess(tmp_path / "agent", ["--flush-interval-ms", "20"]).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[type[AgentProcess]]:
    started: list[AgentProcess] = []

    class Factory(AgentProcess):
        def start(self) -> AgentProcess:
            started.append(self)
            return super().start()

    yield Factory
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
