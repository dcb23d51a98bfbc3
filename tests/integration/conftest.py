from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.backends import Backend, open_backend, selected_backends
from tests.s3_server import S3Server, start_moto


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the session (started on first use); tests use their own prefix."""
    server = start_moto(tmp_path_factory.mktemp("moto-session"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=selected_backends())
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The single-agent suite runs once per backend (`embedded`, `s3-pg`)."""
    return str(request.param)


@pytest.fixture
def backend(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A fresh instance of the backend: own bucket prefix and database on `s3-pg`."""
    with open_backend(backend_kind, request) as b:
        yield b


@pytest.fixture
def agent(tmp_path: Path, backend: Backend) -> Iterator[AgentProcess]:
    """A real agent process on free ports, on the test's backend, data dir under tmp_path."""
    proc = AgentProcess(
        tmp_path / "agent", [*backend.args, "--flush-interval-ms", "20"], env=backend.env
    ).start()
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
